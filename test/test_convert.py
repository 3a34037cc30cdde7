"""Image messages -> numpy without DDS or cv_bridge: every encoding and every fault."""

from __future__ import annotations

import array
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from superglue_ros.io.images import (
    BAD_INPUT_KINDS,
    BadImageError,
    array_to_image_fields,
    compressed_to_array,
    image_to_array,
)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
GRAY = RNG.integers(0, 256, size=(5, 7), dtype=np.uint8)


def raw_msg(
    pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False
) -> SimpleNamespace:
    """An Image-like message of pixels [H, W, C] (any dtype) with pad bytes after every row."""
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    if pixels.dtype.itemsize > 1:
        rows = rows.astype(pixels.dtype.newbyteorder(">" if bigendian else "<"))
    rows = rows.view(np.uint8).reshape(height, -1)
    padded = np.concatenate([rows, np.full((height, pad), 0xAB, np.uint8)], axis=1)
    return SimpleNamespace(
        encoding=encoding,
        height=height,
        width=width,
        step=padded.shape[1],
        is_bigendian=int(bigendian),
        data=array.array("B", padded.tobytes()),
    )


@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize(
    ("encoding", "make", "expected"),
    [
        ("mono8", lambda: GRAY[:, :, None], lambda: GRAY),
        ("rgb8", lambda: RGB, lambda: RGB),
        ("bgr8", lambda: RGB[:, :, ::-1], lambda: RGB),
        ("rgba8", lambda: np.dstack([RGB, np.full(GRAY.shape, 9, np.uint8)]), lambda: RGB),
        (
            "bgra8",
            lambda: np.dstack([RGB[:, :, ::-1], np.full(GRAY.shape, 9, np.uint8)]),
            lambda: RGB,
        ),
    ],
)
def test_every_8bit_encoding_with_and_without_row_padding(encoding, make, expected, pad) -> None:
    out = image_to_array(raw_msg(make(), encoding, pad=pad))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected())
    assert out.flags.c_contiguous


@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_keeps_the_top_byte_in_either_byte_order(bigendian: bool) -> None:
    values = (GRAY.astype(np.uint16) << 8) | 0x7F
    out = image_to_array(raw_msg(values[:, :, None], "mono16", pad=2, bigendian=bigendian))
    np.testing.assert_array_equal(out, GRAY)


def test_result_is_a_copy_not_a_view_of_the_message() -> None:
    msg = raw_msg(GRAY[:, :, None], "mono8")
    out = image_to_array(msg)
    msg.data[0] ^= 0xFF
    assert out[0, 0] == GRAY[0, 0]


def test_last_row_without_padding_is_accepted() -> None:
    msg = raw_msg(RGB, "rgb8", pad=4)
    msg.data = msg.data[:-4]
    np.testing.assert_array_equal(image_to_array(msg), RGB)


def test_rosbags_style_numpy_data_is_accepted() -> None:
    msg = raw_msg(RGB, "rgb8")
    msg.data = np.frombuffer(msg.data, np.uint8).copy()
    np.testing.assert_array_equal(image_to_array(msg), RGB)


def bad(msg: SimpleNamespace) -> BadImageError:
    with pytest.raises(BadImageError) as info:
        image_to_array(msg)
    assert info.value.kind in BAD_INPUT_KINDS
    return info.value


def test_unsupported_encoding() -> None:
    error = bad(raw_msg(RGB, "yuv422"))
    assert error.kind == "unsupported_encoding" and "yuv422" in error.reason


def test_zero_size() -> None:
    msg = raw_msg(RGB, "rgb8")
    msg.height, msg.data = 0, array.array("B")
    assert bad(msg).kind == "empty_image"


@pytest.mark.parametrize("step", [20, 0])
def test_step_smaller_than_a_row(step: int) -> None:
    msg = raw_msg(RGB, "rgb8")
    msg.step = step  # a row of 7 rgb8 pixels is 21 bytes
    error = bad(msg)
    assert error.kind == "bad_step" and "21" in error.reason


def test_odd_step_for_16_bit_pixels() -> None:
    msg = raw_msg(GRAY.astype(np.uint16)[:, :, None], "mono16", pad=1)
    assert bad(msg).kind == "bad_step"


def test_truncated_data() -> None:
    msg = raw_msg(RGB, "rgb8")
    msg.data = msg.data[:-30]
    error = bad(msg)
    assert error.kind == "truncated_data" and str(len(msg.data)) in error.reason


def test_too_much_data() -> None:
    msg = raw_msg(RGB, "rgb8")
    msg.data.extend(b"\x00" * 50)
    assert bad(msg).kind == "oversized_data"


def compressed(data: bytes, fmt: str) -> SimpleNamespace:
    return SimpleNamespace(format=fmt, data=array.array("B", data))


@pytest.mark.parametrize(("fmt", "ext"), [("png", ".png"), ("rgb8; jpeg compressed bgr8", ".jpg")])
def test_compressed_colour(fmt: str, ext: str) -> None:
    image = cv2.resize(RGB, (64, 48), interpolation=cv2.INTER_NEAREST)
    ok, data = cv2.imencode(ext, image[:, :, ::-1])
    assert ok
    out = compressed_to_array(compressed(data.tobytes(), fmt))
    assert out.shape == (48, 64, 3)
    tolerance = 0 if ext == ".png" else 40
    assert np.abs(out.astype(int) - image.astype(int)).mean() <= max(tolerance / 4, 0)


def test_compressed_gray_and_16_bit_png() -> None:
    ok, data = cv2.imencode(".png", GRAY)
    np.testing.assert_array_equal(compressed_to_array(compressed(data.tobytes(), "png")), GRAY)
    ok, data = cv2.imencode(".png", GRAY.astype(np.uint16) << 8)
    np.testing.assert_array_equal(compressed_to_array(compressed(data.tobytes(), "png")), GRAY)


def test_corrupt_compressed() -> None:
    ok, data = cv2.imencode(".png", GRAY)
    with pytest.raises(BadImageError) as info:
        compressed_to_array(compressed(b"\x89PNG garbage" + data.tobytes()[40:], "png"))
    assert info.value.kind == "corrupt_compressed"


def test_empty_compressed() -> None:
    with pytest.raises(BadImageError) as info:
        compressed_to_array(compressed(b"", "jpeg"))
    assert info.value.kind == "empty_image"


def test_compressed_depth_is_unsupported() -> None:
    with pytest.raises(BadImageError) as info:
        compressed_to_array(compressed(b"xx", "16UC1; compressedDepth png"))
    assert info.value.kind == "unsupported_encoding"


@pytest.mark.parametrize("encoding", ["mono8", "rgb8", "bgr8"])
def test_array_to_image_fields_round_trip(encoding: str) -> None:
    image = GRAY if encoding == "mono8" else RGB
    fields = array_to_image_fields(image, encoding)
    msg = SimpleNamespace(**fields)
    out = image_to_array(msg)
    expected = RGB[:, :, ::-1] if encoding == "bgr8" else image
    np.testing.assert_array_equal(out, expected)


def test_fill_message_builds_correspondences() -> None:
    """The generic builder turns correspondences_fields into a typed rclpy message."""
    pytest.importorskip("superglue_ros_msgs", reason="needs the built interface package")
    from superglue_ros_msgs.msg import Correspondences

    from superglue_ros.io.messages import correspondences_fields
    from superglue_ros.pipeline.types import Features, FrameResult, KeyframeMatch
    from superglue_ros.ros.convert import fill_message

    features = Features(
        keypoints=np.array([[1.5, 2.5], [3.0, 4.0]], np.float32),
        scores=np.array([0.5, 0.25], np.float32),
        descriptors=np.eye(2, 4, dtype=np.float32),
        image_size=(48, 64),
    )
    match = KeyframeMatch(
        7, 1_500_000_001, np.array([1], np.int32), np.array([3], np.int32), np.ones(1, np.float32)
    )
    result = FrameResult(9, 2_000_000_003, False, features, np.array([11, 12]), [match], [4])
    msg = fill_message(Correspondences(), correspondences_fields(result, "cam", True))
    assert msg.header.frame_id == "cam" and msg.header.stamp.nanosec == 3
    assert list(msg.features.keypoints) == [1.5, 2.5, 3.0, 4.0]
    assert list(msg.features.track_ids) == [11, 12] and msg.features.descriptor_dim == 4
    assert msg.matches[0].keyframe_id == 7 and list(msg.matches[0].keyframe_indices) == [3]
    assert msg.matches[0].keyframe_stamp.sec == 1 and list(msg.evicted_keyframe_ids) == [4]


# ---------------------------------------------------------------------------
# VINS feature-tracker format


def vins_result(frame_id: int, stamp_ns: int, keypoints, track_ids):
    from superglue_ros.pipeline.types import Features, FrameResult

    keypoints = np.asarray(keypoints, np.float32).reshape(-1, 2)
    features = Features(
        keypoints, np.ones(len(keypoints), np.float32), np.zeros((len(keypoints), 2)), (480, 640)
    )
    return FrameResult(frame_id, stamp_ns, False, features, np.asarray(track_ids), [], [])


def camera(d=(0.0, 0.0, 0.0, 0.0, 0.0), model="plumb_bob"):
    from superglue_ros.ros.vins import CameraModel

    info = SimpleNamespace(
        k=[500.0, 0, 320.0, 0, 400.0, 240.0, 0, 0, 1],
        d=list(d),
        distortion_model=model,
        width=640,
        height=480,
    )
    return CameraModel.from_msg(info)


def test_vins_normalised_coordinates_velocity_and_track_length() -> None:
    from superglue_ros.ros.vins import VINS_CHANNELS, VinsTracker

    tracker = VinsTracker(min_track_length=2)
    cam = camera()
    first = tracker.update(vins_result(0, 0, [[320, 240], [820, 240]], [5, 6]), cam)
    assert len(first) == 0  # nothing tracked yet
    second = tracker.update(
        vins_result(1, 500_000_000, [[370, 240], [10, 10], [820, 640]], [5, 7, 6]), cam
    )
    assert second.ids.tolist() == [5, 6]
    np.testing.assert_allclose(second.normalised, [[0.1, 0.0], [1.0, 1.0]])
    # 0.1 normalised units in 0.5 s; track 6 moved (1, 0) -> (1, 1)
    np.testing.assert_allclose(second.velocity, [[0.2, 0.0], [0.0, 2.0]])
    channels = second.channels()
    assert list(channels) == list(VINS_CHANNELS)
    np.testing.assert_allclose(channels["u_of_point"], [370, 820])
    tracker.reset()
    assert len(tracker.update(vins_result(2, 0, [[370, 240]], [5]), cam)) == 0


def test_vins_undistorts_plumb_bob() -> None:
    cam = camera(d=(-0.3, 0.1, 0.0, 0.0, 0.0))
    ideal = np.array([[0.4, -0.3]])
    r2 = (ideal**2).sum()
    distorted = ideal * (1 - 0.3 * r2 + 0.1 * r2 * r2)
    pixels = distorted * [500.0, 400.0] + [320.0, 240.0]
    np.testing.assert_allclose(cam.normalise(pixels), ideal, atol=1e-4)
    assert camera(d=(0.0,) * 5).normalise(pixels) == pytest.approx(distorted, abs=1e-9)


def test_camera_without_intrinsics_is_ignored() -> None:
    from superglue_ros.ros.vins import CameraModel

    info = SimpleNamespace(k=[0.0] * 9, d=[], distortion_model="", width=0, height=0)
    assert CameraModel.from_msg(info) is None


def test_vins_fusion_format_sends_both_cameras_of_a_stereo_frame() -> None:
    """VINS-Fusion's feature_callback layout: id, camera id, u, v, velocity, then the three
    ground-truth channels it reads; each stereo feature's left point, then its right one."""
    from superglue_ros.ros.vins import VINS_CHANNELS, VINS_FUSION_CHANNELS, CameraModel, VinsTracker

    left_cam = camera()  # fx 500, fy 400, cx 320, cy 240
    right_k = np.array([[500.0, 0, 300.0], [0, 400.0, 240.0], [0, 0, 1]])
    right_cam = CameraModel(right_k, np.zeros(0), "plumb_bob", 640, 480)
    nan = np.nan

    def frame(frame_id, stamp, keypoints, ids, right_x):
        result = vins_result(frame_id, stamp, keypoints, ids)
        result.right_x = np.asarray(right_x, np.float32)
        return result

    tracker = VinsTracker(min_track_length=2, format="fusion")
    first = frame(0, 0, [[320, 240], [420, 340], [500, 100]], [5, 6, 7], [300, nan, 450])
    assert len(tracker.update(first, left_cam, right_cam)) == 0
    second = frame(1, 500_000_000, [[330, 240], [420, 340], [500, 100]], [5, 6, 8], [305, 400, 460])
    features = tracker.update(second, left_cam, right_cam)
    # Track 8 is new: neither of its points goes out. Left points first.
    assert features.ids.tolist() == [5, 6, 5, 6]
    assert features.camera_ids.tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(features.pixels[2:], [[305, 240], [400, 340]])
    # The right camera's own intrinsics (cx 300); the row is the left point's.
    np.testing.assert_allclose(features.normalised[2:], [[0.01, 0.0], [0.2, 0.25]])
    # Track 5's right point moved 0.01 in 0.5 s; track 6 had no right point before.
    np.testing.assert_allclose(features.velocity[2:], [[0.02, 0.0], [0.0, 0.0]])
    channels = features.channels()
    assert list(channels) == list(VINS_FUSION_CHANNELS)
    assert channels["camera_id"].tolist() == [0, 0, 1, 1]
    assert not any(channels[name].any() for name in VINS_FUSION_CHANNELS[6:])

    # Without a right camera (mono or rgbd input) only camera 0; the mono format has no
    # camera id channel at all.
    alone = VinsTracker(min_track_length=1, format="fusion").update(second, left_cam)
    assert alone.camera_ids.tolist() == [0, 0, 0]
    mono = VinsTracker(min_track_length=1).update(second, left_cam, right_cam)
    assert mono.camera_ids is None and list(mono.channels()) == list(VINS_CHANNELS)


def test_rectified_camera_model_is_p_without_distortion() -> None:
    from superglue_ros.ros.vins import CameraModel

    info = SimpleNamespace(
        k=[510.0, 0, 321.0, 0, 410.0, 241.0, 0, 0, 1],
        d=[-0.3, 0.1, 0.0, 0.0, 0.0],
        p=[500.0, 0, 320.0, -60.0, 0, 400.0, 240.0, 0, 0, 0, 1, 0],
        distortion_model="plumb_bob",
        width=640,
        height=480,
    )
    model = CameraModel.rectified_from_msg(info)
    np.testing.assert_allclose(model.normalise(np.array([[370.0, 280.0]])), [[0.1, 0.1]])
    assert (
        CameraModel.rectified_from_msg(SimpleNamespace(**{**vars(info), "p": [0.0] * 12})) is None
    )


@pytest.mark.parametrize("frame_id", ["", "c", "cam", "camera", "optical_frame_left"])
@pytest.mark.parametrize("count", [0, 3])
@pytest.mark.parametrize("fusion", [False, True])
def test_vins_cloud_bytes_equal_the_message(frame_id, count, fusion) -> None:
    """point_cloud_bytes is what rclpy would serialize from the PointCloud built field by field."""
    pytest.importorskip("rclpy", reason="needs ROS 2 (make test installs it)")
    from geometry_msgs.msg import Point32
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import ChannelFloat32, PointCloud

    from superglue_ros.ros.vins import VinsFeatures, point_cloud_bytes

    rng = np.random.default_rng(count)
    features = VinsFeatures(
        ids=np.arange(count, dtype=np.int64) + 7,
        pixels=rng.random((count, 2)) * 600,
        normalised=rng.random((count, 2)) - 0.5,
        velocity=rng.random((count, 2)),
        camera_ids=(np.arange(count) % 2) if fusion else None,
    )
    expected = PointCloud()
    expected.header.stamp.sec, expected.header.stamp.nanosec = 12, 345_678_901
    expected.header.frame_id = frame_id
    points = features.normalised.astype(np.float32).tolist()  # Point32 holds float32
    expected.points = [Point32(x=x, y=y, z=1.0) for x, y in points]
    expected.channels = [
        ChannelFloat32(name=name, values=values.tolist())
        for name, values in features.channels().items()
    ]
    data = point_cloud_bytes(12_345_678_901, frame_id, features)
    assert deserialize_message(data, PointCloud) == expected
