"""Messages -> pipeline frames for each ``input`` mode, shared by the node and replay.

A mono frame is one image message. A stereo or RGB-D frame is a set of messages
that the synchroniser (:mod:`superglue_ros.pipeline.synchroniser`) paired by
stamp; :func:`decode_frame` turns such a set into the image and the
:class:`~superglue_ros.pipeline.types.Companions` the pipeline takes. Topic names
follow the usual drivers (stereo_image_proc, realsense2_camera, ...), relative so
that a namespace or a remapping moves them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from superglue_ros.pipeline.rectify import RawCamera, StereoRectification, stereo_rectification
from superglue_ros.pipeline.stereo import stereo_calibration
from superglue_ros.pipeline.synchroniser import Synchroniser
from superglue_ros.pipeline.types import Companions, RightImage, StereoCalibration

from .images import decode_depth, decode_image

# Image topics per input mode, in synchroniser order (the first is the frame's image).
IMAGE_TOPICS: dict[str, tuple[str, ...]] = {
    "mono": ("image",),
    "stereo": ("left/image_rect", "right/image_rect"),
    "rgbd": ("color/image_raw", "aligned_depth_to_color/image_raw"),
}
# Camera info topics per mode: the first describes the frame's image (features_vins,
# odometry); stereo needs both for the rectified calibration.
CAMERA_INFO_TOPICS: dict[str, tuple[str, ...]] = {
    "mono": ("camera_info",),
    "stereo": ("left/camera_info", "right/camera_info"),
    "rgbd": ("color/camera_info",),
}
SYNC_S_TO_NS = 1e9


def synchroniser_for(params: Mapping[str, Any]) -> Synchroniser | None:
    """The synchroniser of the pipeline parameters' input mode (sync.*); None for mono."""
    mode = str(params["input"])
    if mode == "mono":
        return None
    return Synchroniser(
        num_topics=len(IMAGE_TOPICS[mode]),
        policy=str(params["sync.policy"]),
        queue_size=int(params["sync.queue_size"]),
        slop_ns=round(float(params["sync.slop_s"]) * SYNC_S_TO_NS),
    )


def calibration_from_camera_infos(left: Any, right: Any) -> StereoCalibration:
    """The rectified pair's calibration from two sensor_msgs/CameraInfo (r, p fields).

    Raises NotRectifiedError (a ValueError) saying why the pair is not rectified.
    """
    return stereo_calibration(
        np.asarray(left.r), np.asarray(left.p), np.asarray(right.r), np.asarray(right.p)
    )


def camera_info_key(info: Any) -> tuple:
    """What of a CameraInfo the stereo calibration depends on, comparable with ==."""
    arrays = (
        tuple(np.asarray(v, dtype=np.float64).tolist()) for v in (info.k, info.d, info.r, info.p)
    )
    return (int(info.width), int(info.height), str(info.distortion_model), *arrays)


def raw_camera(info: Any) -> RawCamera:
    """The raw camera a sensor_msgs/CameraInfo describes (K, D, R, P, size, model)."""
    return RawCamera.from_fields(
        info.width, info.height, info.k, info.d, info.r, info.p, info.distortion_model
    )


def stereo_input_from_camera_infos(
    left: Any, right: Any, rectify: bool
) -> tuple[StereoCalibration, StereoRectification | None]:
    """The pair's calibration, and with rectify how to rectify its raw images (None when
    they are rectified already). Raises NotRectifiedError saying why the pair cannot be
    used: not rectified (rectify False) or not rectifiable from its camera_info."""
    if not rectify:
        return calibration_from_camera_infos(left, right), None
    rectification = stereo_rectification(raw_camera(left), raw_camera(right))
    if rectification is None:
        return calibration_from_camera_infos(left, right), None
    return rectification.calibration, rectification


def decode_frame(
    mode: str,
    msgs: Sequence[Any],
    calibration: StereoCalibration | None = None,
    rectification: StereoRectification | None = None,
) -> tuple[np.ndarray, Companions]:
    """The frame image and its companions from one message set of IMAGE_TOPICS[mode] order.

    stereo needs calibration (stereo_input_from_camera_infos), and rectifies the raw
    pair first when given its rectification (whose calibration then applies). Raises
    BadImageError for a message that cannot be decoded, ValueError for a missing
    calibration or a wrongly sized image.
    """
    if len(msgs) != len(IMAGE_TOPICS[mode]):
        raise ValueError(f"input {mode} takes {len(IMAGE_TOPICS[mode])} messages, got {len(msgs)}")
    image = decode_image(msgs[0])
    if mode == "stereo":
        if calibration is None:
            raise ValueError("input stereo needs both camera_info messages first")
        right = decode_image(msgs[1])
        if rectification is not None:  # its calibration is the rectified images'
            image, right = rectification.apply(image, right)
            calibration = rectification.calibration
        return image, Companions(right=RightImage(right, calibration))
    if mode == "rgbd":
        return image, Companions(depth=decode_depth(msgs[1]))
    return image, Companions()
