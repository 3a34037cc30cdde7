"""What every layout reader returns: streams with their calibration, frames, IMU samples."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..stamps import header_fields

Intrinsics = tuple[float, float, float, float]  # fx, fy, cx, cy


class DatasetError(ValueError):
    """A dataset folder that cannot be imported; the message names the file."""


@dataclass
class Stream:
    """One camera stream and its calibration, as its sensor_msgs/CameraInfo will say.

    name: the key of Frame.files ("left", "right", "color", "depth").
    kind: "image" (mono8 / rgb8) or "depth" (16UC1, millimetres).
    k: [3, 3]; r: [3, 3] rectification; p: [3, 4] projection (a rectified right
    camera has p[0, 3] = -fx * baseline, as ROS stereo drivers publish it).
    depth_per_mm: for a depth stream, file units per millimetre (TUM RGB-D: 5,
    its PNGs hold 5000 a metre); the bag gets millimetres.
    register_from: for a depth stream registered on import (registration.py), the
    [3, 3] K of the depth camera its files were taken with; k is the colour camera's.
    """

    name: str
    topic: str
    frame_id: str
    kind: str
    width: int
    height: int
    k: np.ndarray
    p: np.ndarray
    r: np.ndarray = field(default_factory=lambda: np.eye(3))
    d: tuple[float, ...] = ()
    distortion_model: str = "plumb_bob"
    depth_per_mm: float = 1.0
    register_from: np.ndarray | None = None

    def camera_info_fields(self, stamp_ns: int) -> dict[str, Any]:
        """sensor_msgs/CameraInfo fields of this stream at stamp_ns."""
        return {
            "header": header_fields(stamp_ns, self.frame_id),
            "height": self.height,
            "width": self.width,
            "distortion_model": self.distortion_model,
            "d": np.asarray(self.d, dtype=np.float64),
            "k": np.asarray(self.k, dtype=np.float64).reshape(-1),
            "r": np.asarray(self.r, dtype=np.float64).reshape(-1),
            "p": np.asarray(self.p, dtype=np.float64).reshape(-1),
            "binning_x": 0,
            "binning_y": 0,
            "roi": {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False},
        }


@dataclass
class Frame:
    """One time step: its index in the dataset, its stamp, one file per stream.

    pose: [4, 4] camera-to-world of the primary (left / colour) camera, or None
    where the dataset has none for this stamp.
    """

    index: int
    stamp_ns: int
    files: dict[str, Path]
    pose: np.ndarray | None


@dataclass
class ImuSample:
    """sensor_msgs/Imu content: stamp, angular velocity (rad/s), linear acceleration (m/s^2)."""

    stamp_ns: int
    angular_velocity: tuple[float, float, float]
    linear_acceleration: tuple[float, float, float]


@dataclass
class Dataset:
    """A dataset sequence ready to be written: primary is the stream the poses are of."""

    layout: str
    root: Path
    streams: list[Stream]
    frames: list[Frame]
    primary: str
    imu: list[ImuSample] = field(default_factory=list)
    imu_topic: str = "/imu/data"
    imu_frame_id: str = "imu"
    notes: list[str] = field(default_factory=list)  # what a user should know (printed)

    def stream(self, name: str) -> Stream:
        return next(s for s in self.streams if s.name == name)


def select(dataset: Dataset, first: int | None, last: int | None, every: int = 1) -> Dataset:
    """Frames with first <= index <= last (inclusive), then every Nth of them from the first.

    IMU samples are kept between the first and last kept frame's stamps.
    """
    if every < 1:
        raise DatasetError(f"--every must be at least 1, got {every}")
    if first is not None and last is not None and first > last:
        raise DatasetError(f"--first {first} is after --last {last}")
    indices = [f.index for f in dataset.frames]
    kept = [
        f
        for f in dataset.frames
        if (first is None or f.index >= first) and (last is None or f.index <= last)
    ][::every]
    if not kept:
        raise DatasetError(
            f"no frame of {dataset.root} in the range asked for (--first {first}, --last {last}); "
            f"its frames are {indices[0]} to {indices[-1]}"
        )
    start, end = kept[0].stamp_ns, kept[-1].stamp_ns
    imu = [s for s in dataset.imu if start <= s.stamp_ns <= end]
    return replace(dataset, frames=kept, imu=imu)
