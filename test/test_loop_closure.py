"""Loop closure with ORB + MNN: found on a ring that returns to its start, refused on aliasing.

The ring (test/loop_scene.py) is a strip of walls the camera slides along; two
views overlap when their positions on the ring differ by less than a view width.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from superglue_ros.pipeline import Pipeline
from superglue_ros.pipeline.loop_closure import LoopParams, camera_matrix, verify
from superglue_ros.pipeline.place_recognition import (
    Vocabulary,
    VocabularyError,
    vocabulary_from_images,
)
from superglue_ros.tools.cli import main as cli_main

from loop_scene import VIEW_WIDTH, RingSequence, ring_sequence
from synthetic import orb_pipeline, textured_image

pytestmark = pytest.mark.slow  # three runs round the ring (ORB, a few seconds each)


@pytest.fixture(scope="module")
def orb_vocabulary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Trained on other pictures than the ring's (other seeds)."""
    training = [textured_image(240, 320, 5000 + i) for i in range(16)]
    vocabulary = vocabulary_from_images(training, orb_pipeline().frontend, 128, seed=0)
    return vocabulary.save(tmp_path_factory.mktemp("vocabulary") / "orb.npz")


def loop_pipeline(vocabulary: Path, **params: object) -> Pipeline:
    return orb_pipeline(
        {"loop_closure.enabled": True, "loop_closure.vocabulary": str(vocabulary), **params}
    )


def run(pipeline: Pipeline, seq: RingSequence) -> list:
    results = [
        pipeline.process(image, stamp)
        for image, stamp in zip(seq.images, seq.stamps_ns, strict=True)
    ]
    return results


@pytest.fixture(scope="module")
def ring_runs(orb_vocabulary: Path) -> dict[bool, tuple[RingSequence, Pipeline, list]]:
    runs = {}
    for repeat in (False, True):
        seq = ring_sequence(repeat=repeat)
        pipeline = loop_pipeline(orb_vocabulary)
        runs[repeat] = (seq, pipeline, run(pipeline, seq))
    return runs


@pytest.mark.parametrize("repeat", [False, True])
def test_the_loop_between_the_last_and_the_first_frames_is_found(ring_runs, repeat) -> None:
    seq, pipeline, results = ring_runs[repeat]
    frames = len(seq.images)
    loops = [c for r in results for c in r.loops]
    closing = [c for c in loops if c.query_id >= 0.9 * frames and c.match_id < 0.1 * frames]
    assert closing, "no loop between the last and the first frames"
    for loop in closing:
        # a loop is found where views overlap, and the matches say so
        assert seq.distance_px(loop.query_id, loop.match_id) < VIEW_WIDTH / 2
        assert loop.verification.inliers >= pipeline.loops.params.min_inliers
        assert len(loop.query_indices) == len(loop.match_indices) == len(loop.match_scores)
    # retrieval, matching and verification are timed per query
    timed = [r for r in results if r.loop_candidates]
    assert timed and all(r.loop_timings_ms["total"] > 0 for r in timed)
    assert all("loop_closure" in r.timings_ms for r in timed)


@pytest.mark.parametrize("repeat", [False, True])
def test_no_loop_between_places_that_do_not_overlap(ring_runs, repeat) -> None:
    """Every accepted loop joins views that overlap by at least a third, also where a wall
    repeats (aliasing: a third of the view alike, the views themselves far apart)."""
    seq, _, results = ring_runs[repeat]
    loops = [c for r in results for c in r.loops]
    assert loops
    far = [c for c in loops if seq.distance_px(c.query_id, c.match_id) >= 2 / 3 * VIEW_WIDTH]
    assert not far, [(c.query_id, c.match_id, c.verification.inlier_ratio) for c in far]


def test_aliasing_is_geometrically_consistent_and_refused_by_the_coverage(ring_runs) -> None:
    """The measurement: a repeated wall gives candidates with enough RANSAC inliers (a
    plane is consistent with itself) and inlier ratio, which only the coverage refuses."""
    seq, pipeline, results = ring_runs[True]
    params = pipeline.loops.params
    aliased = [
        c
        for r in results
        for c in r.loop_candidates
        if seq.distance_px(c.query_id, c.match_id) >= VIEW_WIDTH
        and c.verification.inliers >= params.min_inliers
        and c.verification.inlier_ratio >= params.min_inlier_ratio
    ]
    assert aliased, "the repeated wall gave no consistent candidate: the test shows nothing"
    assert all(not c.accepted and "cover" in c.verification.reason for c in aliased)
    true_loops = [c for r in results for c in r.loops]
    worst_true = min(c.verification.coverage for c in true_loops)
    best_aliased = max(c.verification.coverage for c in aliased)
    # the repeated wall is a third of the view
    assert best_aliased < params.min_coverage <= worst_true


def test_without_the_coverage_aliasing_would_be_accepted(orb_vocabulary: Path) -> None:
    seq = ring_sequence(repeat=True, frames=120)
    pipeline = loop_pipeline(orb_vocabulary, **{"loop_closure.min_coverage": 0.0})
    loops = [c for r in run(pipeline, seq) for c in r.loops]
    assert any(seq.distance_px(c.query_id, c.match_id) >= VIEW_WIDTH for c in loops)


def test_match_keyframes_verifies_two_keyframes_of_the_map(ring_runs) -> None:
    seq, pipeline, results = ring_runs[False]
    loop = next(c for r in results for c in r.loops)
    again = pipeline.match_keyframes(loop.query_id, loop.match_id)
    assert again.accepted and again.query_stamp_ns == seq.stamps_ns[loop.query_id]
    assert again.match_stamp_ns == seq.stamps_ns[loop.match_id]
    with pytest.raises(KeyError, match="not in the map"):
        pipeline.match_keyframes(loop.query_id, 10**6)
    far = pipeline.match_images(seq.images[0], seq.images[len(seq.images) // 2])
    assert not far.accepted


def two_views(outliers: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple]:
    """Pixels of 3-D points in two cameras (x_query = R x_match + t) and some outliers."""
    rng = np.random.default_rng(seed)
    points = rng.uniform((-2, -1.5, 4), (2, 1.5, 8), (200, 3))
    angle = np.deg2rad(8.0)
    rotation = np.array(
        [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
    )
    translation = np.array([0.5, 0.05, 0.1])
    camera = camera_matrix(400.0, 400.0, 320.0, 240.0)

    def project(p: np.ndarray) -> np.ndarray:
        pixels = (camera @ p.T).T
        return pixels[:, :2] / pixels[:, 2:]

    match = project(points)
    query = project((rotation @ points.T).T + translation)
    query[:outliers] = rng.uniform((0, 0), (640, 480), (outliers, 2))
    return query, match, camera, (rotation, translation / np.linalg.norm(translation))


def test_verification_recovers_the_relative_pose_and_is_deterministic() -> None:
    query, match, camera, (rotation, direction) = two_views(outliers=40)
    params = LoopParams(min_inliers=40, min_inlier_ratio=0.25)
    first = verify(query, match, 200, params, camera)
    assert first.accepted and first.rotation is not None and first.translation is not None
    # the 40 outliers are out, the 160 exact points in (a random outlier may fit by chance)
    assert 160 <= first.inliers <= 165 and first.inlier_mask[40:].all()
    angle = np.rad2deg(np.arccos(np.clip((np.trace(first.rotation.T @ rotation) - 1) / 2, -1, 1)))
    assert angle < 0.5
    assert float(first.translation @ direction) > np.cos(np.deg2rad(2.0))
    second = verify(query, match, 200, params, camera)
    np.testing.assert_array_equal(first.inlier_mask, second.inlier_mask)
    # without a camera matrix: the fundamental matrix, inliers and no pose
    uncalibrated = verify(query, match, 200, params)
    assert uncalibrated.rotation is None and uncalibrated.inliers >= 150
    refused = verify(query, match, 1000, params, camera)
    assert not refused.accepted and "inlier ratio" in refused.reason


def test_coverage_counts_the_cells_with_keypoints_that_hold_an_inlier() -> None:
    from superglue_ros.pipeline.loop_closure import GRID, coverage

    size = (240, 320)
    ys, xs = np.mgrid[0:GRID, 0:GRID]
    centres = np.stack([(xs.ravel() + 0.5) * 320 / GRID, (ys.ravel() + 0.5) * 240 / GRID], 1)
    assert coverage(centres, centres, size) == 1.0
    left_quarter = centres[centres[:, 0] < 80]
    assert coverage(left_quarter, centres, size) == pytest.approx(0.25)
    # cells without keypoints do not count: the inliers cover all the textured half
    assert coverage(left_quarter, centres[centres[:, 0] < 80], size) == 1.0


def test_vocabulary_files(orb_vocabulary: Path, tmp_path: Path) -> None:
    vocabulary = Vocabulary.load(orb_vocabulary)
    assert vocabulary.size == 128 and vocabulary.descriptor_dim == 32
    words, weights = vocabulary.bow(
        orb_pipeline().frontend.extract(textured_image(240, 320)).descriptors, "binary"
    )
    assert np.isclose(np.linalg.norm(weights), 1.0) and len(words) == len(set(words.tolist()))
    with pytest.raises(VocabularyError, match="made for binary descriptors of 32 columns"):
        vocabulary.bow(np.zeros((5, 128), np.float32), "float_unit")
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(orb_vocabulary.read_bytes()[:100])
    with pytest.raises(VocabularyError, match="damaged"):
        Vocabulary.load(damaged)
    with pytest.raises(ValueError, match="vocabulary build"):
        orb_pipeline({"loop_closure.enabled": True})


def test_vocabulary_build_command(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for i in range(6):
        cv2.imwrite(str(images / f"{i:03d}.png"), textured_image(240, 320, 7000 + i))
    out = tmp_path / "orb.npz"
    assert (
        cli_main(
            ["vocabulary", "build", str(images), str(out), "--frontend", "orb", "--words", "64"]
        )
        == 0
    )
    built = Vocabulary.load(out)
    assert built.size == 64 and built.descriptor_kind == "binary" and "6 images" in built.trained_on
    assert (
        cli_main(["vocabulary", "build", str(tmp_path / "none"), str(out), "--frontend", "orb"])
        == 2
    )


def test_relocalisation_in_yesterdays_map(orb_vocabulary: Path, tmp_path: Path) -> None:
    """Today's run starts halfway round the ring: its first keyframes find loops into the
    map saved yesterday, at the place they show."""
    yesterday = ring_sequence()
    first = loop_pipeline(orb_vocabulary, **{"map.save_path": str(tmp_path / "map.npz")})
    run(first, yesterday)
    saved = first.save_map()
    today = loop_pipeline(orb_vocabulary, **{"map.load_path": saved})
    loaded_ids = {k.keyframe_id for k in today.map}
    start = len(yesterday.images) // 2
    results = run(
        today,
        RingSequence(
            yesterday.images[start : start + 12],
            yesterday.stamps_ns[:12],
            yesterday.positions_px,
            yesterday.strip_length_px,
            None,
        ),
    )
    assert all(r.frame_id not in loaded_ids for r in results)  # ids continue after the map's
    loops = [(r.frame_id, c) for r in results for c in r.loops]
    assert loops and loops[0][0] - results[0].frame_id < 8  # relocalised within a few frames
    for frame_id, loop in loops:
        assert loop.match_id in loaded_ids
        where = start + frame_id - results[0].frame_id
        assert yesterday.distance_px(where, loop.match_id) < VIEW_WIDTH / 2


def test_the_recent_window_is_this_sessions_newest_keyframes(orb_vocabulary: Path) -> None:
    from superglue_ros.pipeline.keyframe_map import KeyframeMap, MapKeyframe
    from superglue_ros.pipeline.loop_closure import LoopDetector

    vocabulary = Vocabulary.load(orb_vocabulary)
    features = orb_pipeline().frontend.extract(textured_image(240, 320, 1))
    bow = vocabulary.bow(features.descriptors, features.descriptor_kind)
    keyframes = KeyframeMap(100)
    for i in range(10):
        keyframes.add(MapKeyframe.compact(i, i, features, np.arange(len(features)), None, bow))
    detector = LoopDetector(keyframes, vocabulary, LoopParams(top_k=32, exclude_recent=3))
    assert [k.keyframe_id for k, _ in detector.candidates(bow)] == list(range(7))
    # keyframes 0-7 came from a loaded map: only 8 and 9 are this session's recent ones
    detector.session_start_id = 8
    assert [k.keyframe_id for k, _ in detector.candidates(bow, exclude=[0])] == list(range(1, 8))
