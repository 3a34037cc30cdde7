"""The bench-lightglue command's stages: ALIKED / DISK + LightGlue timed per precision
on real or procedural frames, and the agreement of a precision's matches with fp32 by
position (tools/bench_lightglue.py documents what is timed).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from superglue_ros.evaluation.timing import median_ms, paired_median_ms

AGREE_PX = 1.0  # two matches agree when both endpoints lie this close (px, each axis)
SHARED_FREIBURG = Path(__file__).resolve().parents[2].parent / "shared/data/freiburg_sequence"


def load_frames(folder: Path | None, count: int, size: tuple[int, int]) -> tuple[list, str]:
    """count RGB frames of size (width, height), and where they come from."""
    import cv2

    from superglue_ros.io import image_files

    folder = folder or (SHARED_FREIBURG if SHARED_FREIBURG.is_dir() else None)
    if folder is None:
        from superglue_ros.evaluation.homography import make_sequence

        frames, _ = make_sequence(None, count, size, seed=0)
        return frames, "procedural homography sequence"
    paths = image_files.sort_by_stamp(image_files.list_images(folder))[: count * 2 : 2]
    if len(paths) < count:
        raise ValueError(f"{folder} holds fewer than {2 * count - 1} images")
    frames = []
    for path in paths:
        image = image_files.read_image(path)
        image = np.dstack([image] * 3) if image.ndim == 2 else image
        frames.append(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    return frames, f"{folder} (every second frame)"


def bench_precision(
    name: str, precision: str, frames: list, args: Any
) -> tuple[list[str], list[np.ndarray]]:
    """Table lines for one frontend + LightGlue at one precision, and the frame's
    matched positions per keyframe (see matched_positions)."""
    from superglue_ros.pipeline.registry import build_frontend, build_matcher

    params = {
        "frontend": name,
        "matcher": "lightglue",
        "device": args.device,
        "precision": precision,
        f"{name}.max_keypoints": args.keypoints,
    }
    frontend, matcher = build_frontend(params), build_matcher(params)
    features = [frontend.extract(f) for f in frames]
    extract_ms = median_ms(lambda: frontend.extract(frames[0]), args.repeats)
    frame, keyframes = features[-1], features[:-1][::-1][: args.keyframes]
    pair_ms = median_ms(lambda: matcher.match(frame, keyframes[:1]), args.repeats)
    matches = matcher.match(frame, keyframes)
    layers = list(matcher.last_layers)

    def run_as(batching: str) -> Callable[[], Any]:
        def run() -> None:
            matcher.batching = batching
            try:
                matcher.match(frame, keyframes)
            finally:
                matcher.batching = "auto"

        return run

    batched_ms, loop_ms = paired_median_ms(run_as("batched"), run_as("loop"), args.repeats)
    auto = (
        "batched"
        if [list(range(len(keyframes)))] == _auto_plan(matcher, frame, keyframes)
        else "loop"
    )
    count = [int((m.matches0 >= 0).sum()) for m in matches]
    lines = [
        f"{name} {precision}: extraction {extract_ms:.0f} ms ({len(frame)} keypoints)",
        f"{name} {precision}: lightglue one pair {pair_ms:.0f} ms",
        f"{name} {precision}: lightglue frame vs K={len(keyframes)}: batched {batched_ms:.0f}"
        f" ms, loop {loop_ms:.0f} ms (batched / loop {batched_ms / loop_ms:.2f}; auto runs "
        f"{auto}); layers per pair {layers}; matches {count}",
    ]
    return lines, [matched_positions(frame, k, m) for k, m in zip(keyframes, matches, strict=True)]


def _auto_plan(matcher: Any, frame: Any, keyframes: list) -> list[list[int]]:
    """The groups lightglue.batching auto forms for this frame on the matcher's device."""
    from superglue_ros.models.lightglue import plan_batches

    return plan_batches(
        matcher.device,
        "auto",
        len(frame),
        [len(k) for k in keyframes],
        matcher.memory_budget_mb * 2**20,
        int(matcher.model.conf["descriptor_dim"]),
        4,
    )


def matched_positions(frame: Any, keyframe: Any, matches: Any) -> np.ndarray:
    """[P, 4] float (x0, y0, x1, y1): the frame and keyframe keypoints of each match."""
    i = np.flatnonzero(matches.matches0 >= 0)
    j = matches.matches0[i]
    return np.hstack([frame.keypoints[i], keyframe.keypoints[j]]).astype(np.float64)


def agreement(ours: list[np.ndarray], reference: list[np.ndarray], tol: float = AGREE_PX) -> float:
    """Share of the reference's matches that ours also found, by position: a match
    counts when ours has one whose both keypoints lie within tol px (each axis),
    keyframe by keyframe (lists of matched_positions)."""
    from scipy.spatial import cKDTree

    found = 0
    for mine, theirs in zip(ours, reference, strict=True):
        if len(mine) and len(theirs):
            nearest, _ = cKDTree(mine).query(theirs, p=np.inf, distance_upper_bound=tol + 1e-9)
            found += int(np.isfinite(nearest).sum())
    return found / max(sum(len(r) for r in reference), 1)
