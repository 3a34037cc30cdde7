"""FrameResult -> the fields of ``superglue_ros_msgs`` messages, as plain data.

Both shells build their messages from this one mapping: the ROS node with
rclpy message classes, the replay tool with rosbags dataclasses. Keys and
nesting follow ``msg/msg/*.msg`` exactly; arrays keep the message's element type.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from superglue_ros.pipeline.types import (
    DESCRIPTOR_BINARY,
    DESCRIPTOR_FLOAT_SIFT,
    DESCRIPTOR_FLOAT_UNIT,
    FrameResult,
)

from .stamps import header_fields, stamp_fields

# Features.msg's DESCRIPTOR_* constants
DESCRIPTOR_KIND_CODES = {DESCRIPTOR_FLOAT_UNIT: 0, DESCRIPTOR_BINARY: 1, DESCRIPTOR_FLOAT_SIFT: 2}


def descriptors_as_float(descriptors: np.ndarray) -> np.ndarray:
    """[N, D] descriptors as float32 (binary descriptors keep their byte values)."""
    return np.ascontiguousarray(descriptors, dtype=np.float32)


def per_keypoint(values: np.ndarray | None) -> np.ndarray:
    """[N] float32 per-keypoint values (NaN where unknown), empty when the input has none."""
    if values is None:
        return np.zeros(0, np.float32)
    return np.ascontiguousarray(values, dtype=np.float32).reshape(-1)


def features_fields(
    result: FrameResult, camera_frame: str, include_descriptors: bool
) -> dict[str, Any]:
    """superglue_ros_msgs/Features fields of a processed frame."""
    features = result.features
    height, width = features.image_size
    descriptors = descriptors_as_float(features.descriptors)
    dim = int(descriptors.shape[1]) if include_descriptors and descriptors.ndim == 2 else 0
    return {
        "header": header_fields(result.stamp_ns, camera_frame),
        "frame_id": int(result.frame_id),
        "image_width": int(width),
        "image_height": int(height),
        "keypoints": np.ascontiguousarray(features.keypoints, dtype=np.float32).reshape(-1),
        "scores": np.ascontiguousarray(features.scores, dtype=np.float32),
        "track_ids": np.ascontiguousarray(result.track_ids, dtype=np.int64),
        "descriptor_kind": DESCRIPTOR_KIND_CODES[features.descriptor_kind],
        "descriptor_dim": dim,
        "descriptors": descriptors.reshape(-1) if dim else np.zeros(0, np.float32),
        "depths": per_keypoint(result.depths),
        "right_x": per_keypoint(result.right_x),
    }


def correspondences_fields(
    result: FrameResult, camera_frame: str, include_descriptors: bool = True
) -> dict[str, Any]:
    """superglue_ros_msgs/Correspondences fields of a processed frame."""
    return {
        "header": header_fields(result.stamp_ns, camera_frame),
        "frame_id": int(result.frame_id),
        "is_keyframe": bool(result.is_keyframe),
        "features": features_fields(result, camera_frame, include_descriptors),
        "matches": [
            {
                "keyframe_id": int(match.keyframe_id),
                "keyframe_stamp": stamp_fields(match.keyframe_stamp_ns),
                "frame_indices": np.ascontiguousarray(match.frame_indices, dtype=np.int32),
                "keyframe_indices": np.ascontiguousarray(match.keyframe_indices, dtype=np.int32),
                "scores": np.ascontiguousarray(match.scores, dtype=np.float32),
            }
            for match in result.matches
        ],
        "evicted_keyframe_ids": np.asarray(result.evicted_keyframe_ids, dtype=np.uint64),
    }
