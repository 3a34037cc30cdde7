"""FrameResult -> message fields stays in step with msg/msg/*.msg."""

from __future__ import annotations

import re

import numpy as np

from superglue_ros.io.messages import correspondences_fields, stamp_fields
from superglue_ros.pipeline.types import Features, FrameResult, KeyframeMatch

from conftest import PROJECT_ROOT

MSG_DIR = PROJECT_ROOT / "msg" / "msg"


def msg_field_names(name: str) -> list[str]:
    names = []
    for line in (MSG_DIR / f"{name}.msg").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and "=" not in line:  # constants are no fields
            names.append(re.split(r"\s+", line)[1])
    return names


def make_result(descriptor_dtype: type = np.float32) -> FrameResult:
    rng = np.random.default_rng(0)
    features = Features(
        keypoints=rng.uniform(0, 100, (5, 2)).astype(np.float32),
        scores=rng.uniform(0, 1, 5).astype(np.float32),
        descriptors=rng.integers(0, 255, (5, 32)).astype(descriptor_dtype),
        image_size=(480, 640),
    )
    match = KeyframeMatch(
        keyframe_id=3,
        keyframe_stamp_ns=1_500_000_001,
        frame_indices=np.array([0, 4], np.int32),
        keyframe_indices=np.array([7, 2], np.int32),
        scores=np.array([0.9, 0.5], np.float32),
    )
    return FrameResult(
        frame_id=9,
        stamp_ns=2_000_000_005,
        is_keyframe=True,
        features=features,
        track_ids=np.arange(10, 15),
        matches=[match],
        evicted_keyframe_ids=[1],
    )


def test_keys_are_the_message_fields() -> None:
    fields = correspondences_fields(make_result(), "camera")
    assert list(fields) == msg_field_names("Correspondences")
    assert list(fields["features"]) == msg_field_names("Features")
    assert list(fields["matches"][0]) == msg_field_names("KeyframeMatches")


def test_values_keep_layout_and_types() -> None:
    result = make_result()
    fields = correspondences_fields(result, "camera")
    features = fields["features"]
    assert fields["header"] == {"stamp": {"sec": 2, "nanosec": 5}, "frame_id": "camera"}
    assert features["keypoints"].dtype == np.float32
    np.testing.assert_array_equal(features["keypoints"][2:4], result.features.keypoints[1])
    assert (features["image_width"], features["image_height"]) == (640, 480)
    assert features["descriptor_dim"] == 32
    np.testing.assert_array_equal(
        features["descriptors"].reshape(5, 32), result.features.descriptors
    )
    assert features["track_ids"].dtype == np.int64
    assert fields["matches"][0]["keyframe_stamp"] == {"sec": 1, "nanosec": 500_000_001}
    assert fields["matches"][0]["frame_indices"].dtype == np.int32
    assert fields["evicted_keyframe_ids"].tolist() == [1]


def test_descriptors_can_be_left_out_and_binary_ones_become_floats() -> None:
    assert correspondences_fields(make_result(), "c", False)["features"]["descriptor_dim"] == 0
    binary = correspondences_fields(make_result(np.uint8), "c")["features"]["descriptors"]
    assert binary.dtype == np.float32 and binary.max() > 1


def test_stamps_split_into_seconds_and_nanoseconds() -> None:
    assert stamp_fields(0) == {"sec": 0, "nanosec": 0}
    assert stamp_fields(1_341_847_980_722_988_000) == {"sec": 1_341_847_980, "nanosec": 722_988_000}


def msg_constants(name: str) -> dict[str, int]:
    constants = {}
    for line in (MSG_DIR / f"{name}.msg").read_text().splitlines():
        match = re.match(r"^\w+\s+(\w+)=(\d+)", line)
        if match:
            constants[match.group(1)] = int(match.group(2))
    return constants


def test_descriptor_kind_says_what_each_frontend_sends() -> None:
    """ORB: byte values as floats; SIFT: OpenCV's scale (norm ~512); learned: unit vectors."""
    from superglue_ros.pipeline.baselines import OrbFrontend, SiftFrontend

    from synthetic import textured_image

    constants = msg_constants("Features")
    image = textured_image(240, 320)
    result = make_result()
    expected = {
        OrbFrontend(300): "DESCRIPTOR_BINARY",
        SiftFrontend(300): "DESCRIPTOR_FLOAT_SIFT",
    }
    for frontend, constant in expected.items():
        result.features = frontend.extract(image)
        result.track_ids = np.arange(len(result.features))
        features = correspondences_fields(result, "c")["features"]
        assert features["descriptor_kind"] == constants[constant], constant
        rows = features["descriptors"].reshape(-1, features["descriptor_dim"])
        norms = np.linalg.norm(rows, axis=1)
        if constant == "DESCRIPTOR_BINARY":
            assert features["descriptor_dim"] == 32
            np.testing.assert_array_equal(rows, np.round(rows))
            assert rows.min() >= 0 and rows.max() <= 255 and norms.mean() > 100
        else:
            assert rows.min() >= 0 and np.all(np.abs(norms - 512) < 0.05 * 512)
    # the learned frontends' default: unit vectors (SuperPoint normalises its descriptors)
    assert (
        correspondences_fields(make_result(), "c")["features"]["descriptor_kind"]
        == (constants["DESCRIPTOR_FLOAT_UNIT"])
    )


def test_depths_and_right_x_are_empty_for_mono_and_n_values_with_nan_otherwise() -> None:
    mono = correspondences_fields(make_result(), "c")["features"]
    assert mono["depths"].size == 0 and mono["right_x"].size == 0
    result = make_result()
    result.depths = np.array([1.5, np.nan, 2.0, np.nan, 0.7], np.float64)
    result.right_x = np.array([10.0, np.nan, 20.0, np.nan, 30.0], np.float32)
    features = correspondences_fields(result, "c")["features"]
    assert features["depths"].dtype == np.float32 and features["right_x"].dtype == np.float32
    np.testing.assert_array_equal(features["depths"], result.depths.astype(np.float32))
    np.testing.assert_array_equal(features["right_x"], result.right_x)
