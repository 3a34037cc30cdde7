"""Keyframe decisions and the keyframe buffer, on synthetic frames with ORB + MNN."""

from __future__ import annotations

import numpy as np
import pytest

from superglue_ros.pipeline import Features, KeyframeMatch, KeyframePolicy
from superglue_ros.pipeline.keyframes import Keyframe, KeyframeBuffer

from synthetic import orb_pipeline, sequence, textured_image, translation


@pytest.fixture(scope="module")
def small_motion():
    """Frames 0..6 drifting 2 px right and 1 px down per frame."""
    return sequence([translation(2 * i, i) for i in range(7)])


def test_first_frame_is_keyframe(small_motion):
    result = orb_pipeline().process(small_motion.images[0], 0)
    assert result.is_keyframe
    assert result.keyframe_reason == "first frame"
    assert result.matches == []
    assert result.frame_id == 0


def test_small_motion_is_not_keyframe(small_motion):
    pipeline = orb_pipeline()
    pipeline.process(small_motion.images[0], 0)
    result = pipeline.process(small_motion.images[1], 1)
    assert not result.is_keyframe
    assert result.keyframe_reason == ""
    assert len(result.matches) == 1
    assert result.matches[0].keyframe_id == 0
    assert len(result.matches[0].frame_indices) >= 80
    assert [k.keyframe_id for k in pipeline.keyframes] == [0]


def test_large_motion_is_keyframe_for_parallax():
    frames = sequence([translation(0, 0), translation(60, 0)])
    pipeline = orb_pipeline({"keyframes.max_parallax_px": 40.0})
    pipeline.process(frames.images[0], 0)
    result = pipeline.process(frames.images[1], 1)
    assert result.is_keyframe
    assert result.keyframe_reason.startswith("large parallax"), result.keyframe_reason
    assert [k.keyframe_id for k in pipeline.keyframes] == [1, 0]


def test_unrelated_image_is_keyframe_for_few_matches(small_motion):
    # The ratio test drops the chance matches plain MNN finds between unrelated images.
    pipeline = orb_pipeline({"keyframes.min_matches": 80, "mnn.ratio_test": 0.8})
    pipeline.process(small_motion.images[0], 0)
    result = pipeline.process(textured_image(240, 320, seed=99), 1)
    assert result.is_keyframe
    assert result.keyframe_reason.startswith("few matches ("), result.keyframe_reason
    assert result.keyframe_reason.endswith(" < 80)")


def test_low_match_ratio_is_keyframe(small_motion):
    pipeline = orb_pipeline({"keyframes.min_matches": 0, "keyframes.min_match_ratio": 0.99})
    pipeline.process(small_motion.images[0], 0)
    result = pipeline.process(small_motion.images[1], 1)
    assert result.is_keyframe
    assert result.keyframe_reason.startswith("low match ratio"), result.keyframe_reason


def test_max_frames_between_forces_keyframe(small_motion):
    pipeline = orb_pipeline({"keyframes.max_frames_between": 3})
    results = [pipeline.process(image, i) for i, image in enumerate(small_motion.images)]
    assert [r.is_keyframe for r in results] == [True, False, False, True, False, False, True]
    assert results[3].keyframe_reason == "3 frames since the last keyframe (max 3)"
    assert [k.keyframe_id for k in pipeline.keyframes] == [6, 3, 0]


def test_buffer_evicts_oldest_and_reports_ids(small_motion):
    # min_matches above any count: every frame becomes a keyframe.
    pipeline = orb_pipeline({"keyframes.buffer_size": 2, "keyframes.min_matches": 100000})
    results = [pipeline.process(image, i) for i, image in enumerate(small_motion.images[:5])]
    assert all(r.is_keyframe for r in results)
    assert [r.evicted_keyframe_ids for r in results] == [[], [], [0], [1], [2]]
    assert [k.keyframe_id for k in pipeline.keyframes] == [4, 3]
    # Matches go to the keyframes buffered before the frame, newest first.
    assert [[m.keyframe_id for m in r.matches] for r in results] == [
        [],
        [0],
        [1, 0],
        [2, 1],
        [3, 2],
    ]


def test_match_arrays_are_flat_and_typed(small_motion):
    pipeline = orb_pipeline()
    first = pipeline.process(small_motion.images[0], 10)
    result = pipeline.process(small_motion.images[1], 20)
    match = result.matches[0]
    assert match.keyframe_stamp_ns == 10
    assert match.frame_indices.dtype == np.int32
    assert match.keyframe_indices.dtype == np.int32
    assert match.scores.dtype == np.float32
    assert len(match.frame_indices) == len(match.keyframe_indices) == len(match.scores)
    assert match.frame_indices.max() < len(result.features)
    assert match.keyframe_indices.max() < len(first.features)
    assert len(np.unique(match.keyframe_indices)) == len(match.keyframe_indices)


class CountingMatcher:
    """Records how often, and with how many keyframes, the matcher is called."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: list[int] = []

    def match(self, frame, keyframes):
        self.calls.append(len(keyframes))
        return self.inner.match(frame, keyframes)


def test_matcher_called_once_per_frame_with_all_keyframes(small_motion):
    pipeline = orb_pipeline({"keyframes.buffer_size": 3, "keyframes.min_matches": 100000})
    counting = CountingMatcher(pipeline.matcher)
    pipeline.matcher = counting
    for i, image in enumerate(small_motion.images[:5]):
        pipeline.process(image, i)
    assert counting.calls == [1, 2, 3, 3]  # no call for the first frame


def features_at(points: list[tuple[float, float]]) -> Features:
    keypoints = np.array(points, dtype=np.float32).reshape(-1, 2)
    return Features(
        keypoints=keypoints,
        scores=np.ones(len(keypoints), np.float32),
        descriptors=np.zeros((len(keypoints), 32), np.uint8),
        image_size=(100, 100),
    )


def identity_match(count: int) -> KeyframeMatch:
    indices = np.arange(count, dtype=np.int32)
    return KeyframeMatch(0, 0, indices, indices, np.ones(count, np.float32))


def test_policy_uses_median_displacement():
    keyframe_features = features_at([(10, 10), (20, 20), (30, 30)])
    newest = Keyframe(0, 0, keyframe_features, np.arange(3))
    # Displacements 1, 5 and 50 px: the median (5) ignores the outlier.
    frame = features_at([(11, 10), (25, 20), (80, 30)])
    policy = KeyframePolicy(min_matches=0, min_match_ratio=0.0, max_parallax_px=5.0)
    assert policy.decide(frame, newest, identity_match(3), 1) == ""
    policy.update_params({"keyframes.max_parallax_px": 4.5})
    assert policy.decide(frame, newest, identity_match(3), 1) == (
        "large parallax (5.0 px > 4.5 px)"
    )


def test_buffer_clear_reports_ids_oldest_first():
    buffer = KeyframeBuffer(3)
    for keyframe_id in range(3):
        assert buffer.add(Keyframe(keyframe_id, 0, features_at([]), np.zeros(0))) == []
    assert buffer.clear() == [0, 1, 2]
    assert len(buffer) == 0 and buffer.keyframes == []
