"""Features in the VINS-Mono / VINS-Fusion feature-tracker format (no rclpy needed).

VINS's estimator subscribes to ``/feature_tracker/feature``, a
``sensor_msgs/PointCloud`` whose points are normalised image coordinates
(x, y, 1) of the undistorted features, one point per feature and camera. The
channels differ between the two estimators:

``mono`` (VINS-Mono's estimator_node): five channels, ``id_of_point``,
``u_of_point``, ``v_of_point`` (pixels), ``velocity_x_of_point`` and
``velocity_y_of_point`` (normalised-plane velocity per second, against the
previous frame); one camera.

``fusion`` (VINS-Fusion's rosNodeTest feature_callback): channel 0 the feature
id, 1 the camera id (0 left, 1 right), 2-3 the pixel u, v, 4-5 the velocity. Its
callback also reads channels 6-8 (a ground-truth point, for debugging only)
whenever there are more than five, so they are sent, as zeros. Stereo features
come twice, the left point first, then the right one with the same id, in the
right camera's rectified normalised coordinates; the estimator triangulates
them with its cam0/cam1 extrinsics.

As VINS's own tracker does, only features seen before (track length >=
``min_track_length``) are sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from superglue_ros.pipeline.types import FrameResult

VINS_CHANNELS = (
    "id_of_point",
    "u_of_point",
    "v_of_point",
    "velocity_x_of_point",
    "velocity_y_of_point",
)
VINS_FUSION_CHANNELS = (
    "id_of_point",
    "camera_id",
    "u_of_point",
    "v_of_point",
    "velocity_x_of_point",
    "velocity_y_of_point",
    "ground_truth_x",
    "ground_truth_y",
    "ground_truth_z",
)
VINS_FORMATS = ("mono", "fusion")


@dataclass
class CameraModel:
    """Intrinsics from sensor_msgs/CameraInfo."""

    k: np.ndarray  # [3, 3] float64
    d: np.ndarray  # [n] float64
    distortion_model: str
    width: int
    height: int

    @classmethod
    def from_msg(cls, msg: Any) -> CameraModel | None:
        """None when the message carries no usable intrinsics (K zero or singular)."""
        k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
        if k[0, 0] <= 0 or k[1, 1] <= 0 or abs(np.linalg.det(k)) < 1e-12:
            return None
        d = np.asarray(msg.d, dtype=np.float64).reshape(-1)
        return cls(k, d, str(msg.distortion_model), int(msg.width), int(msg.height))

    @classmethod
    def rectified_from_msg(cls, msg: Any) -> CameraModel | None:
        """The camera of a rectified image (image_rect): P's left 3 x 3, no distortion;
        None when P is unset."""
        k = np.asarray(msg.p, dtype=np.float64).reshape(3, 4)[:, :3].copy()
        if k[0, 0] <= 0 or k[1, 1] <= 0 or abs(np.linalg.det(k)) < 1e-12:
            return None
        return cls(k, np.zeros(0), "plumb_bob", int(msg.width), int(msg.height))

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """[N, 2] pixels -> [N, 2] undistorted normalised coordinates (x/z, y/z)."""
        points = np.ascontiguousarray(pixels, dtype=np.float64).reshape(-1, 1, 2)
        if points.shape[0] == 0:
            return np.zeros((0, 2), np.float64)
        distorted = self.d.size > 0 and bool(np.any(self.d != 0))
        if distorted and self.distortion_model in ("plumb_bob", "rational_polynomial"):
            return cv2.undistortPoints(points, self.k, self.d).reshape(-1, 2)
        if distorted and self.distortion_model == "equidistant":
            return cv2.fisheye.undistortPoints(points, self.k, self.d[:4]).reshape(-1, 2)
        homogeneous = np.concatenate([points.reshape(-1, 2), np.ones((points.shape[0], 1))], 1)
        rays = homogeneous @ np.linalg.inv(self.k).T
        return rays[:, :2] / rays[:, 2:3]


@dataclass
class VinsFeatures:
    """One frame's VINS features, parallel [L] arrays."""

    ids: np.ndarray
    pixels: np.ndarray  # [L, 2]
    normalised: np.ndarray  # [L, 2]
    velocity: np.ndarray  # [L, 2]
    camera_ids: np.ndarray | None = None  # [L] 0 left, 1 right: the fusion format

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def channels(self) -> dict[str, np.ndarray]:
        """Channel name -> float32 values, in the estimator's order (module docstring)."""
        motion = (self.pixels[:, 0], self.pixels[:, 1], self.velocity[:, 0], self.velocity[:, 1])
        if self.camera_ids is None:
            pairs = zip(VINS_CHANNELS, (self.ids, *motion), strict=True)
        else:
            zeros = np.zeros(len(self))  # the ground-truth channels (module docstring)
            values = (self.ids, self.camera_ids, *motion, zeros, zeros, zeros)
            pairs = zip(VINS_FUSION_CHANNELS, values, strict=True)
        return {name: np.asarray(v, np.float32) for name, v in pairs}


@dataclass
class VinsTracker:
    """Keeps what per-track velocities and track lengths need between frames."""

    min_track_length: int = 2
    forget_after_frames: int = 1000
    format: str = "mono"  # VINS_FORMATS
    # the previous frame's track ids (sorted) and their normalised coordinates
    _previous_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _previous_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    _previous_stamp_ns: int | None = None
    # the same for the right camera's observations (stereo, fusion format)
    _previous_right_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _previous_right_points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    _observations: dict[int, int] = field(default_factory=dict)  # id -> times seen
    _last_seen: dict[int, int] = field(default_factory=dict)  # id -> frame counter
    _frames: int = 0

    def reset(self) -> None:
        self._previous_ids = np.zeros(0, np.int64)
        self._previous_points = np.zeros((0, 2))
        self._previous_stamp_ns = None
        self._previous_right_ids = np.zeros(0, np.int64)
        self._previous_right_points = np.zeros((0, 2))
        self._observations.clear()
        self._last_seen.clear()

    def update(
        self, result: FrameResult, camera: CameraModel, right_camera: CameraModel | None = None
    ) -> VinsFeatures:
        """Features of this frame that have been seen at least min_track_length times;
        in the fusion format with right_camera and stereo right_x, their right points too."""
        if self.format not in VINS_FORMATS:
            raise ValueError(f"VINS format must be one of {', '.join(VINS_FORMATS)}")
        self._frames += 1
        ids = np.asarray(result.track_ids, dtype=np.int64)
        pixels = np.asarray(result.features.keypoints, dtype=np.float64).reshape(-1, 2)
        normalised = camera.normalise(pixels)
        dt = None
        if self._previous_stamp_ns is not None and result.stamp_ns > self._previous_stamp_ns:
            dt = (result.stamp_ns - self._previous_stamp_ns) * 1e-9
        velocity = _velocity(ids, normalised, self._previous_ids, self._previous_points, dt)
        tracks = ids.tolist()
        seen_before = self._observations.get
        counts = np.array([seen_before(track, 0) + 1 for track in tracks], np.int64)
        self._observations.update(zip(tracks, counts.tolist(), strict=True))
        self._last_seen.update(dict.fromkeys(tracks, self._frames))
        self._previous_ids, self._previous_points = _sorted_by_id(ids, normalised)
        self._previous_stamp_ns = result.stamp_ns
        if self._frames % 100 == 0:
            self._forget()
        keep = counts >= self.min_track_length
        left = VinsFeatures(ids[keep], pixels[keep], normalised[keep], velocity[keep])
        if self.format == "mono":
            return left
        left.camera_ids = np.zeros(len(left), np.int64)
        if right_camera is None or result.right_x is None:
            return left
        # A rectified pair: the right point is on the left one's row, at right_x (uR).
        stereo = np.isfinite(np.asarray(result.right_x, np.float64))
        right_pixels = np.stack([np.asarray(result.right_x, np.float64), pixels[:, 1]], 1)
        right_normalised = right_camera.normalise(right_pixels[stereo])
        right_ids = ids[stereo]
        right_velocity = _velocity(
            right_ids, right_normalised, self._previous_right_ids, self._previous_right_points, dt
        )
        self._previous_right_ids, self._previous_right_points = _sorted_by_id(
            right_ids, right_normalised
        )
        sent = keep[stereo]
        return VinsFeatures(
            np.concatenate([left.ids, right_ids[sent]]),
            np.concatenate([left.pixels, right_pixels[stereo][sent]]),
            np.concatenate([left.normalised, right_normalised[sent]]),
            np.concatenate([left.velocity, right_velocity[sent]]),
            np.concatenate([left.camera_ids, np.ones(int(sent.sum()), np.int64)]),
        )

    def _forget(self) -> None:
        oldest = self._frames - self.forget_after_frames
        for track in [t for t, seen in self._last_seen.items() if seen < oldest]:
            del self._last_seen[track]
            self._observations.pop(track, None)


def _sorted_by_id(ids: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(ids, kind="stable")
    return ids[order], points[order]


def _velocity(
    ids: np.ndarray,
    points: np.ndarray,
    previous_ids: np.ndarray,
    previous_points: np.ndarray,
    dt: float | None,
) -> np.ndarray:
    """[N, 2] normalised-plane velocity of each id against the previous frame (0 if new)."""
    velocity = np.zeros_like(points)
    if dt is None or not len(previous_ids):
        return velocity
    # arrays, not a per-point loop: this runs for every frame (~1000 points)
    at = np.searchsorted(previous_ids, ids).clip(max=len(previous_ids) - 1)
    seen = previous_ids[at] == ids
    velocity[seen] = (points[seen] - previous_points[at[seen]]) / dt
    return velocity


def _cdr_string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return np.uint32(len(raw)).astype("<u4").tobytes() + raw + b"\0" * (-len(raw) % 4)


def point_cloud_bytes(stamp_ns: int, frame_id: str, features: VinsFeatures) -> bytes:
    """The serialized sensor_msgs/PointCloud of features (CDR, little endian), for
    ``publisher.publish(bytes)``.

    Building 1000 geometry_msgs/Point32 objects and having rclpy serialize them
    takes tens of milliseconds per frame; these arrays take a fraction of one. Every
    field is 4-byte aligned: header (int32 sec, uint32 nanosec, string frame_id),
    points (count, then x y z float32 each: normalised x, y and 1), channels (count,
    then per channel its name and its float32 values).
    """
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    xyz = np.ones((len(features), 3), "<f4")
    xyz[:, :2] = features.normalised
    parts = [
        b"\x00\x01\x00\x00",  # encapsulation: CDR little endian
        np.array([sec], "<i4").tobytes(),
        np.array([nanosec], "<u4").tobytes(),
        _cdr_string(frame_id),
        np.array([len(xyz)], "<u4").tobytes(),
        xyz.tobytes(),
    ]
    channels = features.channels()
    parts.append(np.array([len(channels)], "<u4").tobytes())
    for name, values in channels.items():
        parts += [_cdr_string(name), np.array([len(values)], "<u4").tobytes()]
        parts.append(np.ascontiguousarray(values, "<f4").tobytes())
    return b"".join(parts)
