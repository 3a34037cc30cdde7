"""A :class:`~superglue_ros.io.datasets.Dataset` as a rosbag2: every stream it has.

Per frame, in stamp order: each camera's sensor_msgs/Image (mono8 / rgb8, or
16UC1 millimetres for depth) and its sensor_msgs/CameraInfo on the topic beside
it (``<namespace>/camera_info``), all with the frame's stamp; IMU samples
(sensor_msgs/Imu, orientation unknown: orientation_covariance[0] = -1) are
interleaved by stamp. Topics are offered reliable, keep-last 10, volatile.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from superglue_ros.pipeline.depth import register_depth

from .. import image_files, images, rosbag
from ..rosbag2_writer import offered_qos
from ..stamps import header_fields
from .types import Dataset, DatasetError, ImuSample, Stream

IMU = "sensor_msgs/msg/Imu"
QOS_DEPTH = 10


def read_depth(path: Path, depth_per_mm: float) -> np.ndarray:
    """[H, W] uint16 millimetres of a 16-bit depth PNG holding depth_per_mm units a mm."""
    depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if depth is None:
        raise DatasetError(f"cannot read depth image {path}")
    if depth.dtype != np.uint16 or depth.ndim != 2:
        raise DatasetError(f"{path}: depth must be 16-bit single-channel, got {depth.dtype}")
    if depth_per_mm != 1.0:
        depth = np.round(depth / depth_per_mm).astype(np.uint16)
    return depth


def image_message_fields(stream: Stream, path: Path, stamp_ns: int) -> dict[str, Any]:
    if stream.kind == "depth":
        depth = read_depth(path, stream.depth_per_mm)
        if stream.register_from is not None:
            depth = register_depth(
                depth, stream.register_from, stream.k, (stream.height, stream.width)
            )
        fields = images.depth_image_fields(depth, stamp_ns, stream.frame_id)
    else:
        try:
            fields = images.image_fields(image_files.read_image(path), stamp_ns, stream.frame_id)
        except ValueError as error:
            raise DatasetError(str(error)) from error
    if (fields["width"], fields["height"]) != (stream.width, stream.height):
        raise DatasetError(
            f"{path} is {fields['width']}x{fields['height']}, the stream's other images "
            f"{stream.width}x{stream.height}"
        )
    return fields


def imu_fields(sample: ImuSample, frame_id: str) -> dict[str, Any]:
    def vector(values: tuple[float, float, float]) -> dict[str, float]:
        return dict(zip("xyz", (float(v) for v in values), strict=True))

    unknown = np.zeros(9)
    orientation_unknown = unknown.copy()
    orientation_unknown[0] = -1.0  # REP 145: no orientation estimate
    return {
        "header": header_fields(sample.stamp_ns, frame_id),
        "orientation": {"x": 0.0, "y": 0.0, "z": 0.0, "w": 1.0},
        "orientation_covariance": orientation_unknown,
        "angular_velocity": vector(sample.angular_velocity),
        "angular_velocity_covariance": unknown,
        "linear_acceleration": vector(sample.linear_acceleration),
        "linear_acceleration_covariance": unknown,
    }


def write_dataset_bag(
    dataset: Dataset,
    output: Path,
    storage: str = "mcap",
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Write dataset to a new bag at output; returns the message count per topic.

    A failure part-way removes what was written (output was a new folder).
    """
    typestore = rosbag.make_typestore()
    counts: dict[str, int] = {}
    with rosbag.new_bag(output, storage) as writer:
        qos = [offered_qos(depth=QOS_DEPTH)]

        def connection(topic: str, msgtype: str) -> Any:
            counts[topic] = 0
            return writer.add_connection(
                topic, msgtype, typestore=typestore, offered_qos_profiles=qos
            )

        cameras = [
            (
                stream,
                connection(stream.topic, rosbag.IMAGE),
                connection(rosbag.camera_info_topic_for(stream.topic), rosbag.CAMERA_INFO),
            )
            for stream in dataset.streams
        ]
        imu = connection(dataset.imu_topic, IMU) if dataset.imu else None

        def write(conn: Any, msgtype: str, fields: dict[str, Any], stamp: int) -> None:
            rosbag.write_message(writer, typestore, conn, stamp, msgtype, fields)
            counts[conn.topic] += 1

        samples = iter(dataset.imu)
        pending = next(samples, None)
        for done, frame in enumerate(dataset.frames, start=1):
            while imu is not None and pending is not None and pending.stamp_ns <= frame.stamp_ns:
                write(imu, IMU, imu_fields(pending, dataset.imu_frame_id), pending.stamp_ns)
                pending = next(samples, None)
            for stream, image_conn, info_conn in cameras:
                fields = image_message_fields(stream, frame.files[stream.name], frame.stamp_ns)
                write(image_conn, rosbag.IMAGE, fields, frame.stamp_ns)
                info = stream.camera_info_fields(frame.stamp_ns)
                write(info_conn, rosbag.CAMERA_INFO, info, frame.stamp_ns)
            if progress is not None:
                progress(done, len(dataset.frames))
        while imu is not None and pending is not None:
            write(imu, IMU, imu_fields(pending, dataset.imu_frame_id), pending.stamp_ns)
            pending = next(samples, None)
    return counts
