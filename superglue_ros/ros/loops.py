"""The node's loop-closure outputs: the ``loop_closures`` topic and the ``match_keyframes`` service.

Both carry superglue_ros_msgs/LoopClosure; the service answers from the node's
buffer and keyframe map (or two images) with the same matcher and thresholds
as the loops it publishes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from rclpy.node import Node

from superglue_ros.io.images import BadImageError, decode_image
from superglue_ros.io.messages import DESCRIPTOR_KIND_CODES, descriptors_as_float
from superglue_ros.io.stamps import header_fields, stamp_fields
from superglue_ros.pipeline.loop_closure import LoopCandidate
from superglue_ros.pipeline.pipeline import Pipeline
from superglue_ros.pipeline.types import Features
from superglue_ros.ros import convert, qos


def loop_closure_fields(candidate: LoopCandidate, camera_frame: str) -> dict[str, Any]:
    """superglue_ros_msgs/LoopClosure fields of one verified candidate."""
    verification = candidate.verification
    has_pose = verification.rotation is not None and verification.translation is not None
    return {
        "header": header_fields(candidate.query_stamp_ns, camera_frame),
        "query_keyframe_id": max(candidate.query_id, 0),
        "query_stamp": stamp_fields(candidate.query_stamp_ns),
        "match_keyframe_id": max(candidate.match_id, 0),
        "match_stamp": stamp_fields(candidate.match_stamp_ns),
        "retrieval_score": float(candidate.score),
        "query_indices": candidate.query_indices.astype(np.int32),
        "match_indices": candidate.match_indices.astype(np.int32),
        "scores": candidate.match_scores.astype(np.float32),
        "inliers": [bool(v) for v in verification.inlier_mask],
        "num_inliers": verification.inliers,
        "inlier_ratio": float(verification.inlier_ratio),
        "coverage": float(verification.coverage),
        "accepted": bool(verification.accepted),
        "reason": verification.reason,
        "has_pose": has_pose,
        "rotation": np.asarray(verification.rotation if has_pose else np.eye(3)).reshape(9),
        "translation": np.asarray(verification.translation if has_pose else np.zeros(3)),
        "pose_inliers": int(verification.pose_inliers),
    }


def image_features_fields(features: Features, camera_frame: str) -> dict[str, Any]:
    """superglue_ros_msgs/Features fields of an image the service extracted (no tracks)."""
    height, width = features.image_size
    descriptors = descriptors_as_float(features.descriptors)
    return {
        "header": header_fields(0, camera_frame),
        "image_width": int(width),
        "image_height": int(height),
        "keypoints": np.ascontiguousarray(features.keypoints, np.float32).reshape(-1),
        "scores": np.ascontiguousarray(features.scores, np.float32),
        "track_ids": np.full(len(features), -1, np.int64),
        "descriptor_kind": DESCRIPTOR_KIND_CODES[features.descriptor_kind],
        "descriptor_dim": int(descriptors.shape[1]) if descriptors.ndim == 2 else 0,
        "descriptors": descriptors.reshape(-1),
    }


class LoopOutputs:
    """The publisher and the service; pipeline calls go through the node's pipeline lock."""

    def __init__(
        self,
        node: Node,
        depth: int,
        pipeline: Callable[[], Pipeline | None],
        lock: threading.Lock,
    ) -> None:
        import superglue_ros_msgs.msg as msgs
        import superglue_ros_msgs.srv as srvs

        self._msg = msgs.LoopClosure
        self._pub = node.create_publisher(
            msgs.LoopClosure, "loop_closures", qos.keyframes_qos(depth)
        )
        self._srv = node.create_service(srvs.MatchKeyframes, "match_keyframes", self._on_request)
        self._pipeline = pipeline
        self._lock = lock
        self._logger = node.get_logger()

    def publish(self, loops: list[LoopCandidate], camera_frame: str) -> None:
        for loop in loops:
            self._pub.publish(
                convert.fill_message(self._msg(), loop_closure_fields(loop, camera_frame))
            )
            self._logger.info(
                f"loop closure: keyframe {loop.query_id} <-> {loop.match_id} "
                f"({loop.verification.inliers} inliers, ratio {loop.verification.inlier_ratio:.2f})"
            )

    def _on_request(self, request: Any, response: Any) -> Any:
        pipeline = self._pipeline()
        if pipeline is None:
            response.success, response.message = False, "the node is shutting down"
            return response
        try:
            if request.use_images:
                images = decode_image(request.query_image), decode_image(request.match_image)
                with self._lock:
                    query = pipeline.frontend.extract(images[0])
                    match = pipeline.frontend.extract(images[1])
                    result = pipeline.match_features(query, match)
                frame = request.query_image.header.frame_id
                convert.fill_message(response.query_features, image_features_fields(query, frame))
                convert.fill_message(response.match_features, image_features_fields(match, frame))
            else:
                with self._lock:
                    result = pipeline.match_keyframes(
                        int(request.query_keyframe_id), int(request.match_keyframe_id)
                    )
                frame = ""
        except BadImageError as error:
            response.success, response.message = False, f"bad image: {error.reason}"
            return response
        except (KeyError, ValueError) as error:
            response.success, response.message = False, str(error).strip("'\"")
            return response
        convert.fill_message(response.result, loop_closure_fields(result, frame))
        response.success = True
        verdict = "accepted" if result.accepted else f"refused: {result.verification.reason}"
        response.message = (
            f"{len(result.query_indices)} matches, {result.verification.inliers} inliers, {verdict}"
        )
        return response
