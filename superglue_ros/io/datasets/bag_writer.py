"""A :class:`~superglue_ros.io.datasets.Dataset` as a rosbag2: every stream it has.

Per frame, in stamp order: each camera's sensor_msgs/Image (mono8 / rgb8, or
16UC1 millimetres for depth) and its sensor_msgs/CameraInfo on the topic beside
it (``<namespace>/camera_info``), all with the frame's stamp; IMU samples
(sensor_msgs/Imu, orientation unknown: orientation_covariance[0] = -1) are
interleaved by stamp. Topics are offered reliable, keep-last 10, volatile.
write_stream_bag is that writer for any frames (generate room's rendered ones too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
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


def stream_pixels(stream: Stream, path: Path) -> np.ndarray:
    """The image of stream in path as the bag holds it: uint8 gray / RGB, or uint16
    millimetres for depth (registered to the colour camera where the stream says)."""
    if stream.kind == "depth":
        pixels = read_depth(path, stream.depth_per_mm)
        if stream.register_from is not None:
            pixels = register_depth(
                pixels, stream.register_from, stream.k, (stream.height, stream.width)
            )
    else:
        try:
            pixels = image_files.read_image(path)
        except ValueError as error:
            raise DatasetError(str(error)) from error
    height, width = pixels.shape[:2]
    if (width, height) != (stream.width, stream.height):
        raise DatasetError(
            f"{path} is {width}x{height}, the stream's other images {stream.width}x{stream.height}"
        )
    return pixels


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
    frames = (
        (frame.stamp_ns, {s.name: stream_pixels(s, frame.files[s.name]) for s in dataset.streams})
        for frame in dataset.frames
    )
    total = len(dataset.frames)
    return write_stream_bag(
        output,
        dataset.streams,
        frames,
        storage,
        imu=dataset.imu,
        imu_topic=dataset.imu_topic,
        imu_frame_id=dataset.imu_frame_id,
        progress=None if progress is None else lambda done: progress(done, total),
    )


def write_stream_bag(
    output: Path,
    streams: Sequence[Stream],
    frames: Iterable[tuple[int, Mapping[str, np.ndarray]]],
    storage: str = "mcap",
    imu: Sequence[ImuSample] = (),
    imu_topic: str = "",
    imu_frame_id: str = "",
    progress: Callable[[int], None] | None = None,
) -> dict[str, int]:
    """A new bag at output: per frame, (stamp ns, the pixels of each stream by name),
    each stream's Image and CameraInfo at the stamp, IMU samples (in stamp order)
    interleaved by stamp; returns the message count per topic.

    The one writer of camera bags (bag from-dataset, generate room). progress: called
    with the number of frames written. A failure part-way removes what was written.
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
            for stream in streams
        ]
        imu_conn = connection(imu_topic, IMU) if imu else None

        def write(conn: Any, msgtype: str, fields: dict[str, Any], stamp: int) -> None:
            rosbag.write_message(writer, typestore, conn, stamp, msgtype, fields)
            counts[conn.topic] += 1

        samples = iter(imu)
        pending = next(samples, None)
        for done, (stamp, pixels) in enumerate(frames, start=1):
            while imu_conn is not None and pending is not None and pending.stamp_ns <= stamp:
                write(imu_conn, IMU, imu_fields(pending, imu_frame_id), pending.stamp_ns)
                pending = next(samples, None)
            for stream, image_conn, info_conn in cameras:
                if stream.kind == "depth":
                    fields = images.depth_image_fields(pixels[stream.name], stamp, stream.frame_id)
                else:
                    fields = images.image_fields(pixels[stream.name], stamp, stream.frame_id)
                write(image_conn, rosbag.IMAGE, fields, stamp)
                write(info_conn, rosbag.CAMERA_INFO, stream.camera_info_fields(stamp), stamp)
            if progress is not None:
                progress(done)
        while imu_conn is not None and pending is not None:
            write(imu_conn, IMU, imu_fields(pending, imu_frame_id), pending.stamp_ns)
            pending = next(samples, None)
    return counts
