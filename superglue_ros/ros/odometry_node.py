"""``odometry_node``: the reference back-end on live matcher output, a worked example of
consuming the Correspondences messages.

Subscribes ``correspondences`` (every frame; or ``keyframes`` with
``keyframes_only: true``) and ``camera_info``; publishes ``odometry``
(nav_msgs/Odometry, one per frame with a pose) and ``path`` (nav_msgs/Path, the
whole trajectory with keyframes at their bundle-adjusted values). With
``close_loops`` (default true) it also subscribes ``loop_closures``
(superglue_ros_msgs/LoopClosure, reliable, transient local: the matcher's accepted
loops with ``loop_closure.enabled``) and closes each loop in the back-end's pose graph
(odometry/loops.py) when its query keyframe has been processed: a loop that comes
before its keyframe's correspondences waits for them; the back-end refuses a loop
whose query is no longer its newest keyframe, and the node logs why. Poses are the
camera (optical axes) in ``world_frame``, the first pose the identity. They are in
metres when the messages carry per-keypoint depths (the matcher's ``input: stereo``
or ``rgbd``): the map starts from the first keyframe's depths and bundle adjustment
keeps them. Mono messages give a trajectory up to scale (arbitrary, and it may
drift). Lost tracking is logged with its reason and the back-end re-initialises by
itself.

Each message is processed in the subscription callback (bundle adjustment takes
tens to hundreds of milliseconds on a CPU); messages wait in the subscription's
queue meanwhile. A bad message is logged, counted and skipped.

Exit status: 0 after SIGINT/SIGTERM (however many: signals after the first are
ignored while the node shuts down, as for matcher_node), 2 for a bad parameter.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry, Path
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo

from superglue_ros.io.stamps import stamp_fields
from superglue_ros.odometry import (
    LOST,
    CameraIntrinsics,
    PoseEstimate,
    VisualOdometry,
    observation_from_message,
)
from superglue_ros.odometry.loops import LoopObservation, loop_from_message
from superglue_ros.odometry.trajectory import quaternion_xyzw
from superglue_ros.pipeline.params import ParameterError
from superglue_ros.ros import qos, shutdown
from superglue_ros.ros.odometry_params import ODOMETRY_SPECS, split
from superglue_ros.ros.params import declare_specs

NODE_NAME = "odometry_node"
EXIT_BAD_PARAMETER = 2
MAX_PENDING_LOOPS = 100  # loops waiting for their query keyframe (the oldest are dropped)


def _msg_class(name: str) -> type:
    import superglue_ros_msgs.msg as msgs

    return getattr(msgs, name)


def pose_fields(pose: np.ndarray, target: Any) -> Any:
    """Fill a geometry_msgs/Pose from a [4, 4] camera-to-world matrix; returns target."""
    x, y, z = (float(v) for v in pose[:3, 3])
    qx, qy, qz, qw = (float(v) for v in quaternion_xyzw(pose[:3, :3]))
    target.position.x, target.position.y, target.position.z = x, y, z
    target.orientation.x, target.orientation.y = qx, qy
    target.orientation.z, target.orientation.w = qz, qw
    return target


def stamp_msg(stamp_ns: int) -> Any:
    from builtin_interfaces.msg import Time

    return Time(**stamp_fields(stamp_ns))


class BadParameterError(ValueError):
    """A parameter of the node is bad (logged by the node before it is raised)."""


class OdometryNode(Node):
    """See the module docstring. Raises BadParameterError from the constructor."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        try:
            self._setup()
        except (ValueError, ParameterException) as error:
            self.get_logger().fatal(f"bad parameters: {error}")
            self.destroy_node()
            raise BadParameterError(str(error)) from error
        except BaseException:
            self.destroy_node()
            raise

    def _setup(self) -> None:
        values, errors = declare_specs(self, ODOMETRY_SPECS.values())
        if errors:
            raise ParameterError(errors)
        settings, self._conf = split(values)
        self._world_frame = str(settings["world_frame"])
        self._max_path = int(settings["max_path_poses"])
        self._odometry: VisualOdometry | None = None
        self._camera: CameraIntrinsics | None = None
        self._camera_frame = "camera"
        self._logged: set[str] = set()
        self.skipped = 0
        self._pending_loops: list[LoopObservation] = []  # their query keyframe not seen yet
        self._last_frame_id = -1
        self.loops_closed = 0

        depth = int(settings["input_qos_depth"])
        correspondences = _msg_class("Correspondences")
        if settings["keyframes_only"]:
            topic, profile = "keyframes", qos.keyframes_qos(depth)
        else:
            topic, profile = "correspondences", qos.output_qos(depth)
        self._sub = self.create_subscription(correspondences, topic, self._on_frame, profile)
        self._sub_info = self.create_subscription(
            CameraInfo, "camera_info", self._on_camera_info, qos.image_qos("best_effort", 5)
        )
        if settings["close_loops"]:
            self._sub_loops = self.create_subscription(
                _msg_class("LoopClosure"), "loop_closures", self._on_loop, qos.keyframes_qos(depth)
            )
        self._pub_odometry = self.create_publisher(Odometry, "odometry", qos.output_qos(100))
        self._pub_path = self.create_publisher(Path, "path", qos.output_qos(1))
        self.get_logger().info(f"odometry from {self.resolve_topic_name(topic)}")

    def _log_once(self, kind: str, message: str) -> None:
        if kind not in self._logged:
            self._logged.add(kind)
            self.get_logger().warning(message + " (logged once)")

    def _on_camera_info(self, msg: CameraInfo) -> None:
        k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
        if k[0, 0] <= 0 or k[1, 1] <= 0 or msg.width == 0 or msg.height == 0:
            self._log_once("camera_info", "camera_info has no usable K or size; ignored")
            return
        if any(abs(float(d)) > 1e-9 for d in msg.d):
            self._log_once(
                "distortion", "camera_info has distortion; keypoints are used as if undistorted"
            )
        self._camera = CameraIntrinsics.from_matrix(k, int(msg.width), int(msg.height))

    def _on_frame(self, msg: Any) -> None:
        if self._camera is None:
            self.skipped += 1
            self._log_once("no_camera", "no camera_info yet: frames are skipped until one comes")
            return
        try:
            frame = observation_from_message(msg)
            if self._odometry is None:
                height, width = frame.image_size
                camera = self._camera.scaled_to(width, height)
                self._odometry = VisualOdometry(camera, self._conf)
            estimates = self._odometry.process(frame)
        except ValueError as error:
            self.skipped += 1
            self._log_once("bad_message", f"skipping a bad correspondences message: {error}")
            return
        self._camera_frame = msg.header.frame_id or self._camera_frame
        self._last_frame_id = max(self._last_frame_id, frame.frame_id)
        self._publish(estimates)
        if frame.is_keyframe:
            pending = self._pending_loops
            self._pending_loops = [loop for loop in pending if loop.query_id > frame.frame_id]
            self._close_loops([loop for loop in pending if loop.query_id <= frame.frame_id])

    def _on_loop(self, msg: Any) -> None:
        if not msg.accepted:
            return  # a refused candidate (the service's answers are not published)
        try:
            loop = loop_from_message(msg)
        except ValueError as error:
            self.skipped += 1
            self._log_once("bad_loop", f"skipping a bad loop_closures message: {error}")
            return
        if self._odometry is None or loop.query_id > self._last_frame_id:
            self._pending_loops = [*self._pending_loops, loop][-MAX_PENDING_LOOPS:]
            return
        self._close_loops([loop])

    def _close_loops(self, loops: list[LoopObservation]) -> None:
        if not loops or self._odometry is None:
            return
        closed_before = len(self._odometry.loop_closures)
        for reason in self._odometry.close_loops(loops):
            self.get_logger().info(f"{reason}; not closed")
        closed = self._odometry.loop_closures[closed_before:]
        for loop in closed:
            self.get_logger().info(
                f"closed loop {loop.query_id}-{loop.match_id} ({loop.inliers} inliers)"
            )
        if closed:
            self.loops_closed += len(closed)
            self._publish_path(self._odometry)

    def _publish(self, estimates: list[PoseEstimate]) -> None:
        published = False
        said: set[str] = set()  # an initialisation gives both its keyframes the same reason
        for estimate in estimates:
            if estimate.state == LOST:
                self.get_logger().warning(
                    f"tracking lost at frame {estimate.frame_id}: {estimate.reason}; "
                    "re-initialising"
                )
            elif estimate.reason.startswith("initialised") and estimate.reason not in said:
                said.add(estimate.reason)
                self.get_logger().info(estimate.reason)
            if estimate.pose is None:
                continue
            odometry = Odometry()
            odometry.header.stamp = stamp_msg(estimate.stamp_ns)
            odometry.header.frame_id = self._world_frame
            odometry.child_frame_id = self._camera_frame
            pose_fields(estimate.pose, odometry.pose.pose)
            self._pub_odometry.publish(odometry)
            published = True
        if published and self._odometry is not None:
            self._publish_path(self._odometry)

    def _publish_path(self, odometry: VisualOdometry) -> None:
        trajectory = sorted(odometry.trajectory(), key=lambda item: item[1])
        if self._max_path > 0:
            trajectory = trajectory[-self._max_path :]
        path = Path()
        path.header.frame_id = self._world_frame
        path.header.stamp = stamp_msg(trajectory[-1][1])
        for _, stamp, pose in trajectory:
            stamped = PoseStamped()
            stamped.header.stamp = stamp_msg(stamp)
            stamped.header.frame_id = self._world_frame
            pose_fields(pose, stamped.pose)
            path.poses.append(stamped)
        self._pub_path.publish(path)


def main(args: list[str] | None = None) -> int:
    """Run the node until SIGINT/SIGTERM; returns the process exit status."""
    stop = shutdown.init(args)
    try:
        node = OdometryNode()
    except BadParameterError:  # logged by the node
        rclpy.try_shutdown()
        stop.ignore_from_now()
        return EXIT_BAD_PARAMETER
    shutdown.spin_then_destroy(node, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
