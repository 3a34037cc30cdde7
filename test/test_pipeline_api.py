"""Pipeline behaviour seen by the shells: time jumps, bad images, run-time parameters."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from superglue_ros.pipeline import Pipeline

from synthetic import orb_pipeline, sequence, translation


@pytest.fixture(scope="module")
def frames():
    return sequence([translation(2 * i, i) for i in range(4)]).images


def every_frame_keyframe() -> Pipeline:
    # min_matches above any match count: every frame becomes a keyframe.
    return orb_pipeline({"keyframes.min_matches": 100000})


def test_time_jump_backwards_clears_buffer(frames):
    pipeline = every_frame_keyframe()
    for i, stamp in enumerate([100, 200, 300]):
        assert not pipeline.process(frames[i], stamp).buffer_cleared
    result = pipeline.process(frames[3], 150)
    assert result.buffer_cleared
    assert result.evicted_keyframe_ids == [0, 1, 2]
    assert result.matches == []
    assert result.is_keyframe
    assert result.keyframe_reason == "buffer reset after time jump backwards"
    assert [k.keyframe_id for k in pipeline.keyframes] == [3]
    assert pipeline.keyframes[0].stamp_ns == 150


def test_equal_stamps_do_not_clear(frames):
    pipeline = orb_pipeline()
    pipeline.process(frames[0], 100)
    result = pipeline.process(frames[1], 100)
    assert not result.buffer_cleared
    assert [m.keyframe_id for m in result.matches] == [0]


def test_reset_clears_buffer_but_ids_keep_counting(frames):
    pipeline = orb_pipeline()
    first = pipeline.process(frames[0], 100)
    pipeline.reset()
    assert pipeline.keyframes == []
    result = pipeline.process(frames[1], 50)  # an older stamp is no jump after a reset
    assert result.frame_id == 1
    assert result.is_keyframe and result.keyframe_reason == "buffer reset"
    assert not result.buffer_cleared and result.matches == []
    assert result.track_ids.min() > first.track_ids.max()


BAD_IMAGES = {
    "float image": (np.zeros((240, 320), np.float32), "uint8"),
    "four channels": (np.zeros((240, 320, 4), np.uint8), "channels"),
    "two channels": (np.zeros((240, 320, 2), np.uint8), "channels"),
    "empty": (np.zeros((0, 320), np.uint8), "empty"),
    "one dimension": (np.zeros(320, np.uint8), "[H, W]"),
    "four dimensions": (np.zeros((1, 240, 320, 3), np.uint8), "[H, W]"),
    "not an array": ([[0, 1], [2, 3]], "numpy array"),
}


@pytest.mark.parametrize("name", list(BAD_IMAGES))
def test_bad_image_raises_and_leaves_state_untouched(frames, name):
    image, message = BAD_IMAGES[name]
    pipeline = orb_pipeline()
    pipeline.process(frames[0], 100)
    next_track_id = pipeline.tracks.next_id
    # An earlier stamp would clear the buffer if the bad frame got that far.
    with pytest.raises(ValueError, match=re.escape(message)):
        pipeline.process(image, 50)
    assert [k.keyframe_id for k in pipeline.keyframes] == [0]
    assert pipeline.tracks.next_id == next_track_id
    result = pipeline.process(frames[1], 200)
    assert result.frame_id == 1
    assert not result.buffer_cleared


def test_color_and_single_channel_images_are_accepted(frames):
    gray = frames[0]
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    results = [orb_pipeline().process(image, 0) for image in (gray, gray[:, :, None], rgb)]
    for result in results[1:]:
        np.testing.assert_array_equal(result.features.keypoints, results[0].features.keypoints)


def test_runtime_threshold_update_changes_decisions(frames):
    pipeline = orb_pipeline()
    pipeline.process(frames[0], 0)
    assert not pipeline.process(frames[1], 1).is_keyframe
    pipeline.update_params({"keyframes.min_matches": 100000})
    assert pipeline.params["keyframes.min_matches"] == 100000
    result = pipeline.process(frames[2], 2)
    assert result.is_keyframe and result.keyframe_reason.startswith("few matches")


def test_runtime_ratio_test_reaches_the_matcher(frames):
    pipeline = orb_pipeline()
    pipeline.process(frames[0], 0)
    without = len(pipeline.process(frames[1], 1).matches[0].frame_indices)
    pipeline.update_params({"mnn.ratio_test": 0.5})
    with_ratio = len(pipeline.process(frames[1], 2).matches[0].frame_indices)
    assert with_ratio < without
    assert pipeline.description == "orb + mnn(ratio 0.5)"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"keyframes.buffer_size": 8}, "cannot be changed at run time"),
        ({"frontend": "sift"}, "cannot be changed at run time"),
        ({"keyframes.no_such_thing": 1}, "unknown parameter"),
        ({"keyframes.min_matches": 10, "keyframes.min_match_ratio": 1.5}, "min_match_ratio"),
    ],
)
def test_bad_runtime_update_is_rejected_whole(changes, message):
    pipeline = orb_pipeline()
    before = pipeline.params
    with pytest.raises(ValueError, match=message):
        pipeline.update_params(changes)
    assert pipeline.params == before
    assert pipeline.policy.min_matches == before["keyframes.min_matches"]


def test_from_params_validates():
    with pytest.raises(ValueError, match="keyframes.buffer_size"):
        Pipeline.from_params({"frontend": "orb", "matcher": "mnn", "keyframes.buffer_size": 0})
    with pytest.raises(ValueError, match="superpoint"):
        Pipeline.from_params({"frontend": "orb", "matcher": "superglue"})


def test_result_basics(frames):
    pipeline = orb_pipeline({"keyframes.buffer_size": 3})
    assert pipeline.description == "orb + mnn"
    assert pipeline.params["keyframes.buffer_size"] == 3
    result = pipeline.process(frames[0], 5)
    assert result.stamp_ns == 5
    assert set(result.timings_ms) == {"frontend", "matcher", "policy", "total"}
    assert result.timings_ms["total"] >= result.timings_ms["frontend"] > 0
    assert result.features.image_size == (240, 320)
    assert result.features.keypoints.dtype == np.float32
    keyframe = pipeline.keyframes[0]
    assert keyframe.features is result.features
    np.testing.assert_array_equal(keyframe.track_ids, result.track_ids)


def test_import_needs_neither_torch_nor_ros():
    code = (
        "import sys, superglue_ros.pipeline as p; "
        "p.Pipeline.from_params({'frontend': 'orb', 'matcher': 'mnn'}); "
        "loaded = {'torch', 'rclpy'} & set(sys.modules); "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
