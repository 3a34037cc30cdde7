"""Messages -> stereo / RGB-D frames (io/frames.py, io/images.py decode_depth), without ROS."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from superglue_ros.io.frames import (
    IMAGE_TOPICS,
    calibration_from_camera_infos,
    decode_frame,
    synchroniser_for,
)
from superglue_ros.io.images import (
    BadImageError,
    decode_depth,
    depth_image_fields,
    image_fields,
)
from superglue_ros.pipeline.params import validate
from superglue_ros.pipeline.stereo import NotRectifiedError

IDENTITY = np.eye(3).reshape(-1)


def message(fields: dict) -> SimpleNamespace:
    fields = dict(fields)
    fields["header"] = SimpleNamespace(**fields["header"])
    return SimpleNamespace(**fields)


def float_depth(depth: np.ndarray, bigendian: bool = False) -> SimpleNamespace:
    dtype = ">f4" if bigendian else "<f4"
    data = np.ascontiguousarray(depth, dtype=dtype).view(np.uint8).reshape(-1)
    return SimpleNamespace(
        encoding="32FC1",
        height=depth.shape[0],
        width=depth.shape[1],
        step=4 * depth.shape[1],
        is_bigendian=int(bigendian),
        data=data,
    )


def test_depth_messages_decode_in_their_units() -> None:
    millimetres = np.array([[0, 1200], [65535, 7]], dtype=np.uint16)
    decoded = decode_depth(message(depth_image_fields(millimetres, 0, "cam")))
    np.testing.assert_array_equal(decoded.depth, millimetres)
    assert decoded.depth.dtype == np.uint16
    metres = np.array([[np.nan, 1.25], [0.0, 3.5]], dtype=np.float32)
    for bigendian in (False, True):
        got = decode_depth(float_depth(metres, bigendian))
        np.testing.assert_array_equal(got.depth, metres)
        assert got.depth.dtype == np.float32


def test_bad_depth_messages_say_what_is_wrong() -> None:
    good = float_depth(np.ones((2, 3), np.float32))
    with pytest.raises(BadImageError, match="depth encoding 'rgb8'"):
        decode_depth(SimpleNamespace(**{**vars(good), "encoding": "rgb8"}))
    with pytest.raises(BadImageError, match="truncated_data"):
        decode_depth(SimpleNamespace(**{**vars(good), "data": good.data[:-1]}))
    with pytest.raises(BadImageError, match="bad_step"):
        decode_depth(SimpleNamespace(**{**vars(good), "step": 8}))


def test_frames_of_each_mode() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    depth = np.full((3, 4), 1500, np.uint16)
    left, right = message(image_fields(gray, 5, "l")), message(image_fields(gray[::-1], 5, "r"))
    info = SimpleNamespace(r=IDENTITY, p=[300.0, 0, 2, 0, 0, 300.0, 1.5, 0, 0, 0, 1, 0])
    right_info = SimpleNamespace(r=IDENTITY, p=[300.0, 0, 2, -30.0, 0, 300.0, 1.5, 0, 0, 0, 1, 0])
    calibration = calibration_from_camera_infos(info, right_info)
    assert calibration.baseline_m == pytest.approx(0.1)
    image, companions = decode_frame("stereo", [left, right], calibration)
    np.testing.assert_array_equal(image, gray)
    np.testing.assert_array_equal(companions.right.image, gray[::-1])
    with pytest.raises(ValueError, match="camera_info"):
        decode_frame("stereo", [left, right], None)
    _, companions = decode_frame("rgbd", [left, message(depth_image_fields(depth, 5, "d"))])
    np.testing.assert_allclose(companions.depth.metres(), 1.5)
    image, companions = decode_frame("mono", [left])
    assert companions.right is None and companions.depth is None
    rotated = SimpleNamespace(r=[0, -1, 0, 1, 0, 0, 0, 0, 1], p=right_info.p)
    with pytest.raises(NotRectifiedError, match="right camera_info R"):
        calibration_from_camera_infos(info, rotated)


def test_synchroniser_follows_the_sync_parameters() -> None:
    assert synchroniser_for(validate({})) is None
    sync = synchroniser_for(validate({"input": "rgbd", "sync.slop_s": 0.02, "sync.queue_size": 3}))
    assert sync is not None
    assert (sync.num_topics, sync.policy, sync.queue_size, sync.slop_ns) == (
        len(IMAGE_TOPICS["rgbd"]),
        "approximate",
        3,
        20_000_000,
    )
