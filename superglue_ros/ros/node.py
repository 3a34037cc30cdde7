"""``matcher_node``: SuperPoint + SuperGlue keyframe matching on a live image topic.

Subscribes ``image`` (sensor_msgs/Image, or sensor_msgs/CompressedImage on
``<image>/compressed`` with ``image_transport: compressed``) and ``camera_info``
(unless remapped, the one beside the image topic: ``image:=/cam/image_raw``
-> ``/cam/camera_info``).
Publishes ``correspondences`` (every processed frame), ``keyframes`` (keyframes
only; reliable, transient local), ``features_vins`` (VINS feature-tracker
format, once camera_info is known), ``matches_image`` (only while subscribed)
and ``/diagnostics``. With ``loop_closure.enabled`` it also publishes
``loop_closures`` (superglue_ros_msgs/LoopClosure, reliable, transient local: each
accepted loop of a new keyframe against the keyframe map) and serves
``match_keyframes`` (superglue_ros_msgs/MatchKeyframes: two keyframe ids or two
images, matched and verified); ``map.save_path`` is written at shutdown.

With ``input: stereo`` it subscribes ``left/image_rect`` and ``right/image_rect``
with ``left/camera_info`` and ``right/camera_info`` (a rectified pair: refused,
frame by frame and counted, when the camera_info says otherwise); with ``input:
rgbd`` ``color/image_raw``, ``aligned_depth_to_color/image_raw`` (16UC1 or 32FC1)
and ``color/camera_info``. Their images are paired by the synchroniser
(pipeline/synchroniser.py, the ``sync.*`` parameters) before the mailbox; the
ones left without a partner are counted in /diagnostics (``frames_unpaired``).

The image callback only stores the newest frame in a one-slot mailbox; a worker
thread runs the pipeline. A frame still waiting when the next arrives is
dropped and counted, so a slow model never queues frames or blocks the executor.

Exit status: 0 after a clean shutdown (SIGINT/SIGTERM, however many: signals
after the first are ignored while the node shuts down), 2 for a bad parameter,
3 when the model weights are missing, 1 for any other start-up failure.
"""

from __future__ import annotations

import sys
import threading
import time
from functools import partial
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import qos_policy_name_from_kind
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from superglue_ros.io.frames import (
    CAMERA_INFO_TOPICS,
    IMAGE_TOPICS,
    camera_info_key,
    decode_frame,
    stereo_input_from_camera_infos,
    synchroniser_for,
)
from superglue_ros.io.images import BadImageError
from superglue_ros.io.stamps import stamp_to_ns
from superglue_ros.io.topics import camera_info_topic_for, double_rectification_warning
from superglue_ros.pipeline.params import Config
from superglue_ros.pipeline.pipeline import Pipeline, checked_depth_range
from superglue_ros.pipeline.rectify import StereoRectification
from superglue_ros.pipeline.stereo import NotRectifiedError
from superglue_ros.pipeline.synchroniser import SyncedSet
from superglue_ros.pipeline.types import StereoCalibration
from superglue_ros.ros import qos, qos_watch, shutdown
from superglue_ros.ros.diagnostics import Stats, build_status
from superglue_ros.ros.loops import LoopOutputs
from superglue_ros.ros.mailbox import FrameMailbox, Pending
from superglue_ros.ros.outputs import Outputs
from superglue_ros.ros.params import (
    PIPELINE_NAMES,
    ParameterError,
    check_runtime_change,
    declare_all,
    undeclared_overrides,
)
from superglue_ros.ros.vins import CameraModel

try:  # Iron and newer
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

NODE_NAME = "matcher_node"
EXIT_BAD_PARAMETER = 2
EXIT_MISSING_WEIGHTS = 3
EXIT_STARTUP_FAILED = 1
WORKER_JOIN_TIMEOUT_S = 3.0
WORKER_POLL_S = 0.5  # how often an idle worker looks whether the node is stopping


class StartupError(RuntimeError):
    """The node cannot start; ``exit_code`` is the process's exit status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def load_pipeline(config: Config) -> Pipeline:
    """Pipeline.from_params with the node's start-up errors turned into StartupError."""
    try:
        return Pipeline.from_params(config)
    except FileNotFoundError as error:  # WeightsNotFoundError included
        raise StartupError(
            f"model weights not found: {error}\n"
            "Set the weights_dir parameter (or $SUPERGLUE_ROS_WEIGHTS) to a directory holding "
            "superpoint_v1.pth and superglue_indoor.pth / superglue_outdoor.pth "
            "(`superglue-ros weights --help` shows how to get them), or run the classical "
            "baseline with frontend:=orb matcher:=mnn.",
            EXIT_MISSING_WEIGHTS,
        ) from error
    except ValueError as error:
        raise StartupError(f"bad parameters: {error}", EXIT_BAD_PARAMETER) from error
    except ImportError as error:
        raise StartupError(
            f"cannot load the {config['frontend']}/{config['matcher']} backend: {error}",
            EXIT_STARTUP_FAILED,
        ) from error


class MatcherNode(Node):
    """See the module docstring. Raises StartupError from the constructor when it cannot run.

    Threads: the executor runs the callbacks (mailbox, camera info, parameters,
    diagnostics timer); one worker thread runs the pipeline and publishes.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        try:
            self._setup()
        except StartupError as error:
            self.get_logger().fatal(str(error))
            self.destroy_node()
            raise
        except BaseException:
            self.destroy_node()
            raise

    def _setup(self) -> None:
        try:
            settings = declare_all(self)
        except ParameterError as error:
            raise StartupError(str(error), EXIT_BAD_PARAMETER) from error
        for name in undeclared_overrides(self):
            self.get_logger().warning(f"ignoring unknown parameter '{name}' (a typo?)")
        node = settings.node
        self._pipeline: Pipeline | None = load_pipeline(settings.pipeline)
        self._backend = self._pipeline.description
        why = f" ({self._pipeline.network_choice})" if self._pipeline.network_choice else ""
        self.get_logger().info(f"backend: {self._backend}{why}")

        self._camera: CameraModel | None = None
        self._right_camera: CameraModel | None = None
        self._pending_changes: dict[str, Any] = {}
        self._changes_lock = threading.Lock()
        self._stats = Stats()
        self._logged_kinds: set[str] = set()
        self._mailbox = FrameMailbox()

        self._outputs = Outputs(
            self,
            node.integer("output_qos_depth"),
            node.integer("vins_min_track_length"),
            node.text("vins_format"),
        )
        self._outputs.publish_descriptors = node.flag("publish_descriptors")
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", qos.output_qos(10))
        # The pipeline is not thread-safe: the worker and the match_keyframes service take turns.
        self._pipeline_lock = threading.Lock()
        self._loops: LoopOutputs | None = None
        if self._pipeline.loops is not None:
            self._loops = LoopOutputs(
                self, node.integer("output_qos_depth"), lambda: self._pipeline, self._pipeline_lock
            )

        self._input = settings.pipeline.text("input")
        try:
            self._sync = synchroniser_for(settings.pipeline)
        except ValueError as error:
            raise StartupError(f"bad parameters: {error}", EXIT_BAD_PARAMETER) from error
        self._sync_lock = threading.Lock()
        self._infos: list[CameraInfo | None] = [None] * len(CAMERA_INFO_TOPICS[self._input])
        self._calibration: StereoCalibration | None = None
        self._rectify = settings.pipeline.flag("stereo.rectify")
        self._rectification: StereoRectification | None = None
        self._calibration_key: tuple = ()
        self._calibration_error = ""

        self._image_reliability = node.text("image_reliability")
        image_qos = qos.image_qos(self._image_reliability, node.integer("image_qos_depth"))
        events = SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos)
        topics = []
        self._sub_images = []
        for index, name in enumerate(IMAGE_TOPICS[self._input]):
            callback = self._on_image if self._sync is None else partial(self._on_synced, index)
            depth = self._input == "rgbd" and index == 1  # depth has no compressed stream here
            if node["image_transport"] == "compressed" and not depth:
                # image_transport's convention: the compressed stream of topic T is T/compressed.
                topic, kind = self.resolve_topic_name(name) + "/compressed", CompressedImage
            else:
                topic, kind = name, Image
            self._sub_images.append(
                self.create_subscription(kind, topic, callback, image_qos, event_callbacks=events)
            )
            topics.append(self.resolve_topic_name(topic))
        self._image_topics = topics
        self._image_topic = topics[0]
        self._qos_warnings: list[str] = []
        self._starvation = qos_watch.StarvationWatch(
            node.number("image_starvation_warning"), self._image_reliability, self._image_topic
        )
        info_topics = (
            [self._camera_info_topic()]
            if self._input == "mono"
            else list(CAMERA_INFO_TOPICS[self._input])
        )
        self._sub_infos = [
            self.create_subscription(
                CameraInfo, topic, partial(self._on_camera_info, index), image_qos
            )
            for index, topic in enumerate(info_topics)
        ]
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # A steady clock: /diagnostics keeps coming with use_sim_time and no /clock.
        self._diag_timer = self.create_timer(
            node.number("diagnostics_period"),
            self._on_diagnostics,
            clock=Clock(clock_type=ClockType.STEADY_TIME),
        )

        self._worker = threading.Thread(target=self._work, name="matcher_worker", daemon=True)
        self._worker.start()
        sync = "" if self._sync is None else f", paired by {self._sync.policy} time"
        self.get_logger().info(
            f"input {self._input}: listening on {', '.join(topics)} ({node['image_transport']}, "
            f"{node['image_reliability']}{sync}), camera info on "
            f"{', '.join(self.resolve_topic_name(t) for t in info_topics)}"
        )

    def _camera_info_topic(self) -> str:
        """camera_info as remapped; not remapped, the one beside the image topic
        (image:=/cam/image_raw -> /cam/camera_info), as camera drivers and bags put it."""
        if self.resolve_topic_name("camera_info") != self.resolve_topic_name(
            "camera_info", only_expand=True
        ):
            return "camera_info"
        return camera_info_topic_for(self.resolve_topic_name("image"))

    # -------------------------------------------------------------- callbacks
    def _on_image(self, msg: Image | CompressedImage) -> None:
        self._stats.frame_received(dropped=self._mailbox.put(msg))

    def _on_synced(self, index: int, msg: Image | CompressedImage) -> None:
        """One image of a stereo/rgbd set: complete sets go to the mailbox as one frame."""
        sync = self._sync
        if sync is None:  # subscribed only when there is one
            return
        with self._sync_lock:
            sets = sync.push(index, stamp_to_ns(msg.header.stamp), msg)
        for synced in sets:
            self._stats.frame_received(dropped=self._mailbox.put(synced))

    def _on_camera_info(self, index: int, msg: CameraInfo) -> None:
        self._infos[index] = msg
        # Stereo images are rectified: their camera is P's, without distortion.
        model = CameraModel.rectified_from_msg if self._input == "stereo" else CameraModel.from_msg
        if index == 1:
            self._right_camera = model(msg)
        if index == 0:
            camera = model(msg)
            if camera is None:
                self._log_once(
                    "camera_info", "camera_info has no usable K; features_vins stays off"
                )
            self._camera = camera
            pipeline = self._pipeline
            if camera is not None and pipeline is not None:  # loops get the essential matrix
                k = camera.k
                pipeline.set_camera(k[0, 0], k[1, 1], k[0, 2], k[1, 2])
        if self._input == "stereo" and all(info is not None for info in self._infos):
            # Drivers repeat camera_info with every image: rectification maps are only
            # recomputed when the calibration changes.
            key = tuple(camera_info_key(info) for info in self._infos)
            if key == self._calibration_key:
                return
            self._calibration_key = key
            try:
                self._calibration, self._rectification = stereo_input_from_camera_infos(
                    *self._infos, self._rectify
                )
                self._calibration_error = ""
                warning = double_rectification_warning(self._image_topics)
                if self._rectification is not None and warning is not None:
                    self._log_once("double_rectify", warning, counted=False)
            except NotRectifiedError as error:
                self._calibration, self._rectification = None, None
                self._calibration_error = str(error)
                self._log_once("not_rectified", f"refusing the stereo pair: {error}")

    def _on_set_parameters(self, parameters: list[Any]) -> SetParametersResult:
        changes: dict[str, Any] = {}
        for parameter in parameters:
            value, reason = check_runtime_change(parameter.name, parameter.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            changes[parameter.name] = value
        with self._changes_lock:
            pending = {**self._pending_changes, **changes}
            pipeline = self._pipeline
            if pipeline is not None:
                try:  # the checks across parameters (depth.min_m < depth.max_m)
                    checked_depth_range(
                        pipeline.config.with_changes(
                            {k: v for k, v in pending.items() if k in PIPELINE_NAMES}
                        )
                    )
                except ValueError as error:
                    return SetParametersResult(successful=False, reason=str(error))
            self._pending_changes = pending
        return SetParametersResult(successful=True)

    def _on_incompatible_qos(self, event: Any) -> None:
        policy = qos_policy_name_from_kind(event.last_policy_kind)
        message = qos_watch.incompatible_qos_message(
            self._image_topic, policy, int(event.total_count), self._image_reliability
        )
        self._qos_warning("incompatible_qos", message)

    def _qos_warning(self, kind: str, message: str) -> None:
        """A QoS problem: logged once per kind, shown in /diagnostics from now on."""
        if kind in self._logged_kinds:
            return
        self._logged_kinds.add(kind)
        self._qos_warnings.append(message)
        self.get_logger().warning(message)

    def _on_diagnostics(self) -> None:
        snapshot = self._stats.snapshot()
        if self._starvation.after_s > 0:
            publishers = self.count_publishers(self._image_topic)
            starving = self._starvation.check(time.monotonic(), publishers, snapshot.received)
            if starving:
                self._qos_warning("image_starvation", starving)
        level, message, values = build_status(
            snapshot, self._backend, self._camera is not None, self._qos_warnings
        )
        values["input"] = self._input
        if self._sync is not None:
            with self._sync_lock:
                unpaired = list(self._sync.unpaired)
            values["frames_unpaired"] = str(sum(unpaired))
            for topic, count in zip(self._image_topics, unpaired, strict=True):
                values[f"unpaired.{topic}"] = str(count)
        status = DiagnosticStatus(
            name=f"{self.get_fully_qualified_name()}: matching",
            hardware_id=self._backend,
            level=bytes([level]),
            message=message,
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._pub_diag.publish(array)

    # ----------------------------------------------------------------- worker
    def _work(self) -> None:
        while not self._mailbox.closed:
            pending = self._mailbox.take(WORKER_POLL_S)
            if pending is None:
                continue
            try:
                self._process(pending)
            except Exception as error:  # keep serving frames whatever one frame does
                if not rclpy.ok(context=self.context):
                    return
                self._stats.processing_error()
                self.get_logger().error(
                    f"processing a frame failed: {type(error).__name__}: {error}",
                    throttle_duration_sec=5.0,
                )

    def _apply_changes(self, pipeline: Pipeline) -> None:
        with self._changes_lock:
            changes, self._pending_changes = self._pending_changes, {}
        if not changes:
            return
        pipeline_changes = {k: v for k, v in changes.items() if k in PIPELINE_NAMES}
        if pipeline_changes:
            pipeline.update_params(pipeline_changes)
        if "publish_descriptors" in changes:
            self._outputs.publish_descriptors = bool(changes["publish_descriptors"])
        if "vins_min_track_length" in changes:
            self._outputs.vins.min_track_length = int(changes["vins_min_track_length"])
        self.get_logger().info(f"parameters changed: {changes}")

    def _bad_input(self, kind: str, reason: str) -> None:
        self._stats.bad_input(kind)
        self._log_once(kind, f"skipping bad image ({kind}): {reason}")

    def _log_once(self, kind: str, message: str, counted: bool = True) -> None:
        if kind not in self._logged_kinds:
            self._logged_kinds.add(kind)
            where = "; counted in /diagnostics" if counted else ""
            self.get_logger().warning(f"{message} (logged once{where})")

    def _process(self, pending: Pending) -> None:
        pipeline = self._pipeline
        if pipeline is None:  # closed
            return
        self._apply_changes(pipeline)
        msgs = pending.msg.items if isinstance(pending.msg, SyncedSet) else (pending.msg,)
        msg = msgs[0]
        if self._input == "stereo" and self._calibration is None:
            reason = self._calibration_error or "no camera_info on both left and right yet"
            self._bad_input(
                "not_rectified" if self._calibration_error else "no_camera_info", reason
            )
            return
        try:
            image, companions = decode_frame(
                self._input, msgs, self._calibration, self._rectification
            )
        except BadImageError as error:
            self._bad_input(error.kind, error.reason)
            return
        except ValueError as error:  # a raw stereo image of another size than its camera_info
            self._bad_input("not_rectified", str(error))
            return
        stamp_ns = stamp_to_ns(msg.header.stamp)
        try:
            with self._pipeline_lock:
                result = pipeline.process(image, stamp_ns, companions)
        except ValueError as error:
            self._bad_input("rejected_by_pipeline", str(error))
            return
        if result.buffer_cleared:
            self.get_logger().warning(
                f"time jumped backwards (stamp {stamp_ns * 1e-9:.3f} s is older than the previous "
                "frame; a bag looping?): keyframe buffer cleared"
            )
            self._outputs.reset()
            self._stats.time_jump()
        self._outputs.publish(result, image, msg.header, self._camera, self._right_camera)
        if self._loops is not None and result.loops:
            self._loops.publish(result.loops, msg.header.frame_id)
        latency_ms = 1e3 * (time.monotonic() - pending.received)
        self._stats.frame_processed(
            result.is_keyframe, len(pipeline.keyframes), latency_ms, result.timings_ms
        )

    # --------------------------------------------------------------- shutdown
    def _save_map(self) -> None:
        pipeline = self._pipeline
        if pipeline is None or pipeline.map is None or not pipeline.config.text("map.save_path"):
            return
        if not self._pipeline_lock.acquire(timeout=WORKER_JOIN_TIMEOUT_S):
            self.get_logger().error("keyframe map not saved: the pipeline is still busy")
            return
        try:
            path = pipeline.save_map()
            self.get_logger().info(f"keyframe map saved to {path}")
        except (OSError, ValueError) as error:
            self.get_logger().error(f"saving the keyframe map failed: {error}")
        finally:
            self._pipeline_lock.release()

    def close(self) -> None:
        """Stop the worker (waits for the frame in progress up to a few seconds), free the model."""
        self._mailbox.close()
        worker = getattr(self, "_worker", None)
        if worker is not None:
            worker.join(timeout=WORKER_JOIN_TIMEOUT_S)
            if worker.is_alive():
                self.get_logger().warning("worker still busy at shutdown; leaving it behind")
        self._save_map()
        self._pipeline = None
        self._outputs.reset()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()


def main(args: list[str] | None = None) -> int:
    """Run the node until SIGINT/SIGTERM; returns the process exit status."""
    stop = shutdown.init(args)
    try:
        node = MatcherNode()
    except StartupError as error:  # logged by the node
        rclpy.try_shutdown()
        stop.ignore_from_now()
        return error.exit_code
    shutdown.spin_then_destroy(node, stop, node.close)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
