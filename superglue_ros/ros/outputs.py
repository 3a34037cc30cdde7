"""What the node publishes for each processed frame, and the publishers it goes out on.

correspondences (every frame), keyframes (keyframes only; reliable, transient
local), features_vins (VINS feature-tracker format, once camera_info is known)
and matches_image (a drawing, only computed while someone subscribes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image, PointCloud

from superglue_ros.io.images import array_to_image_fields
from superglue_ros.io.messages import correspondences_fields
from superglue_ros.io.stamps import stamp_to_ns
from superglue_ros.pipeline.types import FrameResult
from superglue_ros.ros import convert, qos
from superglue_ros.ros.draw import draw_matches
from superglue_ros.ros.vins import CameraModel, VinsTracker, point_cloud_bytes


def correspondences_class() -> type:
    import superglue_ros_msgs.msg as msgs

    return msgs.Correspondences


@dataclass(frozen=True)
class KeyframeView:
    """The newest keyframe as the drawing needs it: its id, image and keypoints."""

    keyframe_id: int
    image: np.ndarray
    keypoints: np.ndarray  # [M, 2] float32


class Outputs:
    """The node's output publishers; publish() sends one frame's results on all of them."""

    def __init__(
        self, node: Node, depth: int, vins_min_track_length: int, vins_format: str = "mono"
    ) -> None:
        msg_class = correspondences_class()
        self._corr = node.create_publisher(msg_class, "correspondences", qos.output_qos(depth))
        self._keyframes = node.create_publisher(msg_class, "keyframes", qos.keyframes_qos(depth))
        self._vins_pub = node.create_publisher(PointCloud, "features_vins", qos.output_qos(depth))
        self._image = node.create_publisher(Image, "matches_image", qos.output_qos(1))
        self.vins = VinsTracker(min_track_length=vins_min_track_length, format=vins_format)
        self.publish_descriptors = True
        # Only the newest keyframe is ever drawn: keep its image, not a copy of the buffer.
        self._newest_keyframe: KeyframeView | None = None

    def reset(self) -> None:
        """Forget tracks and the kept keyframe (the pipeline's buffer was cleared)."""
        self.vins.reset()
        self._newest_keyframe = None

    def publish(
        self,
        result: FrameResult,
        image: np.ndarray,
        header: Any,
        camera: CameraModel | None,
        right_camera: CameraModel | None = None,
    ) -> None:
        """Send result on every output; header is the input image's (stamp and frame id);
        right_camera: stereo's right camera, for features_vins' right points."""
        fields = correspondences_fields(result, header.frame_id, self.publish_descriptors)
        out = convert.fill_message(correspondences_class()(), fields)
        self._corr.publish(out)
        if result.is_keyframe:
            self._keyframes.publish(out)
        if camera is not None:
            self._publish_vins(result, camera, header, right_camera)
        if self._image.get_subscription_count() > 0:
            self._publish_drawing(image, result, header)  # against the previous keyframe
        if result.is_keyframe:
            keypoints = np.asarray(result.features.keypoints, np.float32)
            self._newest_keyframe = KeyframeView(result.frame_id, image, keypoints)

    def _publish_vins(
        self,
        result: FrameResult,
        camera: CameraModel,
        header: Any,
        right_camera: CameraModel | None,
    ) -> None:
        features = self.vins.update(result, camera, right_camera)
        # serialized directly: a list of Point32 messages costs ~10 ms per frame
        cloud = point_cloud_bytes(stamp_to_ns(header.stamp), header.frame_id, features)
        self._vins_pub.publish(cloud)

    def keyframe_for_drawing(self, result: FrameResult) -> KeyframeView | None:
        """The kept keyframe when it is the one result's first matches are to, else None."""
        kept = self._newest_keyframe
        if kept is None or not result.matches or result.matches[0].keyframe_id != kept.keyframe_id:
            return None
        return kept

    def _publish_drawing(self, image: np.ndarray, result: FrameResult, header: Any) -> None:
        keyframe = self.keyframe_for_drawing(result)
        canvas = draw_matches(
            image,
            result,
            keyframe.image if keyframe else None,
            keyframe.keypoints if keyframe else None,
        )
        out = convert.fill_message(Image(), array_to_image_fields(canvas, "bgr8"))
        out.header = header
        self._image.publish(out)
