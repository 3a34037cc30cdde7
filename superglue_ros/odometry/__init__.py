"""A reference visual-odometry back-end over the matcher's Correspondences messages.

ROS-agnostic (numpy, OpenCV, GTSAM): the ROS node and the replay tool feed it the
same messages through :func:`observation_from_message`. Importing this package
needs neither ROS nor GTSAM; GTSAM is imported at the first bundle adjustment.
"""

from .backend import INITIALIZING, LOST, TRACKING, VisualOdometry, default_conf
from .types import (
    CameraIntrinsics,
    FrameObservation,
    KeyframeMatches,
    PoseEstimate,
    observation_from_message,
)

__all__ = [
    "INITIALIZING",
    "LOST",
    "TRACKING",
    "CameraIntrinsics",
    "FrameObservation",
    "KeyframeMatches",
    "PoseEstimate",
    "VisualOdometry",
    "default_conf",
    "observation_from_message",
]
