"""The replay report's recorder: bounded memory over long runs, same numbers as plain lists."""

from __future__ import annotations

import json
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from superglue_ros.evaluation import metrics
from superglue_ros.evaluation.report import Histogram, RunRecorder, read_per_frame
from superglue_ros.pipeline.types import Features, FrameResult, KeyframeMatch

BUFFER_SIZE = 3
KEYPOINTS = 120


def synthetic_results(frames: int, seed: int = 0) -> Iterator[FrameResult]:
    """FrameResults as the pipeline makes them: ids inherited only from buffered keyframes.

    Every 4th frame is a keyframe; the buffer keeps BUFFER_SIZE keyframes. A frame
    inherits about 60 % of its keypoints' track ids from the buffered keyframes
    (newest first), the others get fresh ids: new tracks start on every frame.
    """
    rng = np.random.default_rng(seed)
    next_id = 0
    buffer: list[tuple[int, np.ndarray, np.ndarray]] = []  # (id, points, track ids), newest first
    for frame_id in range(frames):
        points = rng.uniform(0, 640, (KEYPOINTS, 2)).astype(np.float32)
        track_ids = np.full(KEYPOINTS, -1, dtype=np.int64)
        matches = []
        for keyframe_id, keyframe_points, keyframe_tracks in buffer:
            count = int(rng.integers(10, 40))
            frame_indices = rng.choice(KEYPOINTS, count, replace=False).astype(np.int32)
            keyframe_indices = rng.choice(KEYPOINTS, count, replace=False).astype(np.int32)
            # a consistent motion for most of them, so RANSAC has something to find
            points[frame_indices] = keyframe_points[keyframe_indices] + (3.0, 1.0)
            free = track_ids[frame_indices] == -1
            track_ids[frame_indices[free]] = keyframe_tracks[keyframe_indices[free]]
            matches.append(
                KeyframeMatch(
                    keyframe_id,
                    keyframe_id * 1000,
                    frame_indices,
                    keyframe_indices,
                    np.full(count, 0.5, dtype=np.float32),
                )
            )
        # one id per keypoint: later duplicates start new tracks, like the pipeline's rule 2
        _, first = np.unique(track_ids, return_index=True)
        duplicate = np.ones(KEYPOINTS, dtype=bool)
        duplicate[first] = False
        track_ids[duplicate | (track_ids == -1)] = -1
        fresh = track_ids == -1
        track_ids[fresh] = np.arange(next_id, next_id + fresh.sum())
        next_id += int(fresh.sum())
        is_keyframe = frame_id % 4 == 0
        evicted: list[int] = []
        if is_keyframe:
            buffer.insert(0, (frame_id, points, track_ids))
            evicted = [b[0] for b in buffer[BUFFER_SIZE:]]
            del buffer[BUFFER_SIZE:]
        yield FrameResult(
            frame_id=frame_id,
            stamp_ns=frame_id * 1000,
            is_keyframe=is_keyframe,
            features=Features(
                points, np.ones(KEYPOINTS, np.float32), np.zeros((KEYPOINTS, 0)), (480, 640)
            ),
            track_ids=track_ids,
            matches=matches,
            evicted_keyframe_ids=evicted,
            keyframe_reason="max frames (4 >= 4)" if is_keyframe else "",
            timings_ms={"frontend": float(rng.uniform(1, 3)), "total": float(rng.uniform(3, 9))},
        )


def recorder(tmp_path: Path | None = None) -> RunRecorder:
    frames_path = tmp_path / "frames.jsonl" if tmp_path is not None else None
    return RunRecorder("syn", "synthetic", {}, None, "syn/correspondences", frames_path)


def test_recorder_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Live track ids never exceed what the buffered keyframes hold; memory stops growing."""
    # RANSAC's cost, not its memory, is what 4000 frames would spend time on
    monkeypatch.setattr(metrics, "inlier_ratio", lambda p0, p1, k: len(p0) / KEYPOINTS)
    run = recorder()
    results = synthetic_results(3000)
    tracemalloc.start()
    try:
        sizes = []
        for index, result in enumerate(results):
            run.add(result, 1.0)
            assert run.tracks.open_ids.size <= BUFFER_SIZE * KEYPOINTS
            if index + 1 in (1000, 3000):
                sizes.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert run.frames == 3000
    tracks = run.summary()["track_length"]["tracks"]
    assert tracks > 3000 * KEYPOINTS * 0.3  # many tracks seen, few kept
    # 2000 more frames (and > 70k more tracks) cost less than 64 KiB: the histograms'
    # new bins only (the old per-track Counter and per-frame list took megabytes).
    assert sizes[1] - sizes[0] < 64 * 1024, sizes


def test_summary_equals_statistics_of_every_value(tmp_path: Path) -> None:
    results = list(synthetic_results(300, seed=1))
    run = recorder(tmp_path)
    for index, result in enumerate(results):
        run.add(result, 2.0 + index % 3)
    run.close()
    summary = run.summary()

    lengths = Counter()
    for result in results:
        lengths.update(result.track_ids.tolist())
    expected = metrics.summary_stats(list(lengths.values()))
    assert summary["track_length"]["tracks"] == len(lengths)
    assert {k: summary["track_length"][k] for k in expected} == pytest.approx(expected)
    histogram = {str(k): v for k, v in sorted(Counter(lengths.values()).items())}
    assert summary["track_length"]["histogram"] == histogram

    records = [json.loads(line) for line in (tmp_path / "frames.jsonl").read_text().splitlines()]
    assert [r["frame_id"] for r in records] == list(range(300))
    keypoints = metrics.summary_stats([r["keypoints"] for r in records])
    assert summary["keypoints_per_frame"] == pytest.approx(keypoints)
    matched = [r for r in records if r["keyframes_matched"]]
    newest = metrics.summary_stats([r["matches_newest"] for r in matched])
    assert summary["matches_per_frame"]["newest_keyframe"] == pytest.approx(newest)
    ratios = [r["inlier_ratio"] for r in records if r["inlier_ratio"] is not None]
    assert len(ratios) > 250
    for key, value in metrics.summary_stats(ratios).items():
        assert summary["inlier_ratio"][key] == pytest.approx(value, abs=1e-4), key
    totals = [r["timings_ms"]["total"] for r in records]
    assert summary["latency_ms"]["total"]["p90"] == pytest.approx(
        np.percentile(totals, 90), abs=0.01
    )
    assert summary["frames"] == 300 and summary["keyframes"] == 75
    assert summary["keyframe_reasons"] == {"max frames": 75}
    assert summary["fps"] == pytest.approx(300 / sum(r["wall_ms"] for r in records) * 1e3)
    columns = read_per_frame(tmp_path / "frames.jsonl")
    assert columns["stamp_ns"].dtype == np.int64 and columns["is_keyframe"].sum() == 75


@pytest.mark.parametrize(
    "values", [[], [5], [1, 2, 2, 3, 10], list(range(7)) * 3 + [100], [0.25, 0.5, 0.125]]
)
def test_histogram_statistics_match_numpy(values: list[float]) -> None:
    histogram = Histogram(0.125)
    for value in values:
        histogram.add(value)
    histogram.add(float("nan"))  # skipped, like summary_stats skips non-finite values
    assert histogram.stats() == pytest.approx(metrics.summary_stats(values))
