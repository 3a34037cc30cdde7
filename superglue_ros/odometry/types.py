"""What the back-end consumes and produces, as plain numpy data (no ROS, no torch).

The input is exactly what a ``superglue_ros_msgs/Correspondences`` message
carries, so the ROS node and the replay tool feed the back-end the same way:
both hand it the message (an rclpy message or a rosbags dataclass, they share
field names) through :func:`observation_from_message`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from superglue_ros.io.stamps import stamp_to_ns


@dataclass(frozen=True)
class CameraIntrinsics:
    """A pinhole camera of undistorted images; pixels with the origin at the top-left centre."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f"focal lengths must be positive, got fx={self.fx} fy={self.fy}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")

    @classmethod
    def from_matrix(cls, k: np.ndarray, width: int, height: int) -> CameraIntrinsics:
        """From a [3, 3] K (a CameraInfo's ``k``) and the image size."""
        k = np.asarray(k, dtype=np.float64).reshape(3, 3)
        return cls(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), width, height)

    @property
    def matrix(self) -> np.ndarray:
        """[3, 3] float64 K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled_to(self, width: int, height: int) -> CameraIntrinsics:
        """The same camera for images resized to width x height (pixel-corner convention)."""
        if (width, height) == (self.width, self.height):
            return self
        sx, sy = width / self.width, height / self.height
        return CameraIntrinsics(
            self.fx * sx,
            self.fy * sy,
            (self.cx + 0.5) * sx - 0.5,
            (self.cy + 0.5) * sy - 0.5,
            width,
            height,
        )


@dataclass
class KeyframeMatches:
    """The frame's matches to one buffered keyframe (KeyframeMatches.msg)."""

    keyframe_id: int
    frame_indices: np.ndarray  # [L] int32 into the frame's keypoints
    keyframe_indices: np.ndarray  # [L] int32 into the keyframe's keypoints
    scores: np.ndarray  # [L] float32


@dataclass
class FrameObservation:
    """One Correspondences message: a frame's keypoints, track ids and keyframe matches.

    keypoints: [N, 2] float64 pixels; track_ids: [N] int64 (landmark keys).
    matches: one entry per keyframe buffered before this frame, newest first.
    depths: [N] float64 metres along the optical axis, NaN where unknown (stereo or
    RGB-D input); None for mono input. right_x: [N] float64 x in the rectified right
    image, NaN where unknown (stereo input only); None otherwise.
    """

    frame_id: int
    stamp_ns: int
    is_keyframe: bool
    image_size: tuple[int, int]  # (height, width)
    keypoints: np.ndarray
    track_ids: np.ndarray
    matches: list[KeyframeMatches] = field(default_factory=list)
    evicted_keyframe_ids: list[int] = field(default_factory=list)
    depths: np.ndarray | None = None
    right_x: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float64).reshape(-1, 2)
        self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(-1)
        if len(self.track_ids) != len(self.keypoints):
            raise ValueError(
                f"frame {self.frame_id}: {len(self.keypoints)} keypoints but "
                f"{len(self.track_ids)} track ids"
            )
        for name in ("depths", "right_x"):
            values = getattr(self, name)
            if values is None:
                continue
            values = np.asarray(values, dtype=np.float64).reshape(-1)
            if len(values) != len(self.keypoints):
                raise ValueError(
                    f"frame {self.frame_id}: {len(self.keypoints)} keypoints but "
                    f"{len(values)} {name}"
                )
            setattr(self, name, values)
        if self.right_x is not None and self.depths is None:
            raise ValueError(f"frame {self.frame_id}: right_x without depths")
        for match in self.matches:
            if len(match.frame_indices) != len(match.keyframe_indices):
                raise ValueError(
                    f"frame {self.frame_id}: matches to keyframe {match.keyframe_id} have "
                    f"{len(match.frame_indices)} frame and {len(match.keyframe_indices)} "
                    "keyframe indices"
                )
            if len(match.frame_indices) and (
                int(np.min(match.frame_indices)) < 0
                or int(np.max(match.frame_indices)) >= len(self.keypoints)
            ):
                raise ValueError(
                    f"frame {self.frame_id}: a match to keyframe {match.keyframe_id} indexes "
                    f"past the frame's {len(self.keypoints)} keypoints"
                )

    @property
    def has_depth(self) -> bool:
        """The frame carries per-keypoint depths (stereo or RGB-D input)."""
        return self.depths is not None

    @property
    def front_end_reset(self) -> bool:
        """A keyframe matched against nothing: the front-end's keyframe buffer was empty.

        That is the first frame, or a reset (a time jump): no track id of this
        frame continues an earlier one.
        """
        return self.is_keyframe and not self.matches


def observation_from_message(message: Any) -> FrameObservation:
    """A FrameObservation from a Correspondences message (rclpy or rosbags).

    Raises ValueError when the message is inconsistent (array lengths, indices).
    """
    features = message.features
    keypoints = np.asarray(features.keypoints, dtype=np.float64)
    if keypoints.size % 2:
        raise ValueError(f"frame {message.frame_id}: odd number of keypoint coordinates")
    # Mono input sends empty arrays (and bags older than the fields have none).
    depths = np.asarray(getattr(features, "depths", ()), dtype=np.float64)
    right_x = np.asarray(getattr(features, "right_x", ()), dtype=np.float64)
    return FrameObservation(
        frame_id=int(message.frame_id),
        stamp_ns=stamp_to_ns(message.header.stamp),
        is_keyframe=bool(message.is_keyframe),
        image_size=(int(features.image_height), int(features.image_width)),
        keypoints=keypoints.reshape(-1, 2),
        track_ids=np.asarray(features.track_ids, dtype=np.int64),
        matches=[
            KeyframeMatches(
                keyframe_id=int(match.keyframe_id),
                frame_indices=np.asarray(match.frame_indices, dtype=np.int64),
                keyframe_indices=np.asarray(match.keyframe_indices, dtype=np.int64),
                scores=np.asarray(match.scores, dtype=np.float32),
            )
            for match in message.matches
        ],
        evicted_keyframe_ids=[int(i) for i in message.evicted_keyframe_ids],
        depths=depths if depths.size else None,
        right_x=right_x if right_x.size else None,
    )


@dataclass
class PoseEstimate:
    """The back-end's answer for one frame.

    pose: [4, 4] float64 camera-to-world (OpenCV camera axes: x right, y down,
    z forward), None when the frame has no pose. state: ``initializing``,
    ``tracking`` or ``lost``. reason: why there is no pose or what changed
    (empty when tracking normally).
    """

    frame_id: int
    stamp_ns: int
    is_keyframe: bool
    pose: np.ndarray | None
    state: str
    reason: str = ""
    inliers: int = 0  # PnP (or initialisation) inliers behind the pose

    def as_dict(self) -> Mapping[str, Any]:
        return {
            "frame_id": self.frame_id,
            "stamp_ns": self.stamp_ns,
            "is_keyframe": self.is_keyframe,
            "has_pose": self.pose is not None,
            "state": self.state,
            "reason": self.reason,
            "inliers": self.inliers,
        }
