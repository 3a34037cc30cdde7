"""``matcher_node``: SuperPoint + SuperGlue keyframe matching on a live image topic.

Subscribes ``image`` (sensor_msgs/Image, or sensor_msgs/CompressedImage on
``<image>/compressed`` with ``image_transport: compressed``) and ``camera_info``.
Publishes ``correspondences`` (every processed frame), ``keyframes`` (keyframes
only; reliable, transient local), ``features_vins`` (VINS feature-tracker
format, once camera_info is known), ``matches_image`` (only while subscribed)
and ``/diagnostics``.

The image callback only stores the newest frame in a one-slot mailbox; a worker
thread runs the pipeline. A frame still waiting when the next arrives is
dropped and counted, so a slow model never queues frames or blocks the executor.

Exit status: 0 after a clean shutdown (SIGINT/SIGTERM), 2 for a bad parameter,
3 when the model weights are missing, 1 for any other start-up failure.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Point32
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, ChannelFloat32, CompressedImage, Image, PointCloud

from superglue_ros.io.images import BadImageError, array_to_image_fields, decode_image
from superglue_ros.io.stamps import stamp_to_ns
from superglue_ros.ros import convert, qos
from superglue_ros.ros.draw import draw_matches
from superglue_ros.ros.params import (
    PIPELINE_NAMES,
    ParameterError,
    check_runtime_change,
    declare_all,
    undeclared_overrides,
)
from superglue_ros.ros.vins import CameraModel, VinsTracker

NODE_NAME = "matcher_node"
EXIT_BAD_PARAMETER = 2
EXIT_MISSING_WEIGHTS = 3
EXIT_STARTUP_FAILED = 1
WORKER_JOIN_TIMEOUT_S = 3.0
STATS_WINDOW_S = 5.0  # rates and latencies in /diagnostics cover this many seconds


class StartupError(RuntimeError):
    """The node cannot start; ``exit_code`` is the process's exit status."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Pending:
    """The newest received frame, waiting for the worker."""

    msg: Any  # sensor_msgs Image or CompressedImage
    received: float  # time.monotonic()


@dataclass
class Stats:
    """Counters for /diagnostics: totals since start, rates and latencies over a recent window."""

    received: int = 0
    processed: int = 0
    dropped: int = 0
    keyframes: int = 0
    processing_errors: int = 0
    time_jumps: int = 0
    bad_inputs: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # (monotonic time done, latency ms, stage timings ms) of recently processed frames
    recent: deque[tuple[float, float, dict[str, float]]] = field(default_factory=deque)
    started: float = field(default_factory=time.monotonic)

    def trim(self, now: float) -> None:
        while self.recent and self.recent[0][0] < now - STATS_WINDOW_S:
            self.recent.popleft()


def load_pipeline(params: dict[str, Any]) -> Any:
    """Pipeline.from_params with the node's start-up errors turned into StartupError."""
    from superglue_ros.pipeline.pipeline import Pipeline

    try:
        return Pipeline.from_params(params)
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
            f"cannot load the {params.get('frontend')}/{params.get('matcher')} backend: {error}",
            EXIT_STARTUP_FAILED,
        ) from error


class MatcherNode(Node):
    """See the module docstring. Raises StartupError from the constructor when it cannot run."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        try:
            self._setup()
        except BaseException:
            self.destroy_node()
            raise

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        try:
            settings = declare_all(self)
        except ParameterError as error:
            raise StartupError(str(error), EXIT_BAD_PARAMETER) from error
        for name in undeclared_overrides(self):
            self.get_logger().warning(f"ignoring unknown parameter '{name}' (a typo?)")
        self._settings = settings
        node = settings.node
        self._pipeline = load_pipeline(settings.pipeline)
        self._backend = self._pipeline.description
        self.get_logger().info(f"backend: {self._backend}")

        self._publish_descriptors = bool(node["publish_descriptors"])
        self._vins = VinsTracker(min_track_length=int(node["vins_min_track_length"]))
        self._camera: CameraModel | None = None
        self._keyframe_images: dict[int, np.ndarray] = {}
        self._pending_changes: dict[str, Any] = {}
        self._changes_lock = threading.Lock()
        self._stats = Stats()
        self._stats_lock = threading.Lock()
        self._logged_kinds: set[str] = set()

        self._slot: Pending | None = None
        self._slot_cond = threading.Condition()
        self._stop = threading.Event()

        depth = int(node["output_qos_depth"])
        self._pub_corr = self.create_publisher(
            _msg_class("Correspondences"), "correspondences", qos.output_qos(depth)
        )
        self._pub_kf = self.create_publisher(
            _msg_class("Correspondences"), "keyframes", qos.keyframes_qos(depth)
        )
        self._pub_vins = self.create_publisher(PointCloud, "features_vins", qos.output_qos(depth))
        self._pub_image = self.create_publisher(Image, "matches_image", qos.output_qos(1))
        self._pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", qos.output_qos(10))

        image_qos = qos.image_qos(str(node["image_reliability"]), int(node["image_qos_depth"]))
        if node["image_transport"] == "compressed":
            # image_transport's convention: the compressed stream of topic T is T/compressed.
            topic = self.resolve_topic_name("image") + "/compressed"
            self._sub_image = self.create_subscription(
                CompressedImage, topic, self._on_compressed, image_qos
            )
        else:
            topic = "image"
            self._sub_image = self.create_subscription(Image, topic, self._on_image, image_qos)
        self._sub_info = self.create_subscription(
            CameraInfo, "camera_info", self._on_camera_info, image_qos
        )
        self.add_on_set_parameters_callback(self._on_set_parameters)
        period = float(node["diagnostics_period"])
        self._diag_timer = self.create_timer(period, self._on_diagnostics)

        self._worker = threading.Thread(target=self._work, name="matcher_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"listening on {self.resolve_topic_name(topic)} ({node['image_transport']}, "
            f"{node['image_reliability']})"
        )

    # -------------------------------------------------------------- callbacks
    def _store(self, msg: Any) -> None:
        pending = Pending(msg, time.monotonic())
        with self._slot_cond:
            dropped = self._slot is not None
            self._slot = pending
            self._slot_cond.notify()
        with self._stats_lock:
            self._stats.received += 1
            self._stats.dropped += int(dropped)

    def _on_image(self, msg: Image) -> None:
        self._store(msg)

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._store(msg)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        camera = CameraModel.from_msg(msg)
        if camera is None:
            self._log_once("camera_info", "camera_info has no usable K; features_vins stays off")
        self._camera = camera

    def _on_set_parameters(self, parameters: list[Any]) -> SetParametersResult:
        changes: dict[str, Any] = {}
        for parameter in parameters:
            value, reason = check_runtime_change(parameter.name, parameter.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
            changes[parameter.name] = value
        with self._changes_lock:
            self._pending_changes.update(changes)
        return SetParametersResult(successful=True)

    # ----------------------------------------------------------------- worker
    def _work(self) -> None:
        while not self._stop.is_set():
            with self._slot_cond:
                while self._slot is None and not self._stop.is_set():
                    self._slot_cond.wait(timeout=0.5)
                pending, self._slot = self._slot, None
            if pending is None:
                continue
            try:
                self._process(pending)
            except Exception as error:  # keep serving frames whatever one frame does
                if not rclpy.ok(context=self.context):
                    return
                with self._stats_lock:
                    self._stats.processing_errors += 1
                self.get_logger().error(
                    f"processing a frame failed: {type(error).__name__}: {error}",
                    throttle_duration_sec=5.0,
                )

    def _apply_changes(self) -> None:
        with self._changes_lock:
            changes, self._pending_changes = self._pending_changes, {}
        if not changes:
            return
        pipeline_changes = {k: v for k, v in changes.items() if k in PIPELINE_NAMES}
        if pipeline_changes:
            self._pipeline.update_params(pipeline_changes)
        if "publish_descriptors" in changes:
            self._publish_descriptors = bool(changes["publish_descriptors"])
        if "vins_min_track_length" in changes:
            self._vins.min_track_length = int(changes["vins_min_track_length"])
        self.get_logger().info(f"parameters changed: {changes}")

    def _bad_input(self, kind: str, reason: str) -> None:
        with self._stats_lock:
            self._stats.bad_inputs[kind] += 1
        self._log_once(kind, f"skipping bad image ({kind}): {reason}")

    def _log_once(self, kind: str, message: str) -> None:
        if kind not in self._logged_kinds:
            self._logged_kinds.add(kind)
            self.get_logger().warning(message + " (logged once; counted in /diagnostics)")

    def _process(self, pending: Pending) -> None:
        self._apply_changes()
        msg = pending.msg
        try:
            image = decode_image(msg)
        except BadImageError as error:
            self._bad_input(error.kind, error.reason)
            return
        stamp_ns = stamp_to_ns(msg.header.stamp)
        try:
            result = self._pipeline.process(image, stamp_ns)
        except ValueError as error:
            self._bad_input("rejected_by_pipeline", str(error))
            return
        frame_id = msg.header.frame_id
        if result.buffer_cleared:
            self.get_logger().warning(
                f"time jumped backwards (stamp {stamp_ns * 1e-9:.3f} s is older than the previous "
                "frame; a bag looping?): keyframe buffer cleared"
            )
            self._vins.reset()
            self._keyframe_images.clear()
            with self._stats_lock:
                self._stats.time_jumps += 1

        fields = convert_fields(result, frame_id, self._publish_descriptors)
        out = convert.fill_message(_msg_class("Correspondences")(), fields)
        self._pub_corr.publish(out)
        if result.is_keyframe:
            self._pub_kf.publish(out)
            self._keyframe_images[result.frame_id] = image
        buffered = {k.keyframe_id for k in self._pipeline.keyframes}
        for stale in [k for k in self._keyframe_images if k not in buffered]:
            del self._keyframe_images[stale]

        camera = self._camera
        if camera is not None:
            self._publish_vins(result, camera, msg.header)
        if self._pub_image.get_subscription_count() > 0:
            self._publish_drawing(image, result, msg.header)

        done = time.monotonic()
        latency_ms = 1e3 * (done - pending.received)
        with self._stats_lock:
            stats = self._stats
            stats.processed += 1
            stats.keyframes += int(result.is_keyframe)
            stats.recent.append((done, latency_ms, dict(result.timings_ms)))
            stats.trim(done)

    def _publish_vins(self, result: Any, camera: CameraModel, header: Any) -> None:
        features = self._vins.update(result, camera)
        cloud = PointCloud()
        cloud.header = header
        cloud.points = [
            Point32(x=float(x), y=float(y), z=1.0) for x, y in features.normalised.tolist()
        ]
        cloud.channels = [
            ChannelFloat32(name=name, values=convert.typed_array(values, "float"))
            for name, values in features.channels().items()
        ]
        self._pub_vins.publish(cloud)

    def _publish_drawing(self, image: np.ndarray, result: Any, header: Any) -> None:
        keyframe_image = keyframe_keypoints = None
        if result.matches:
            newest = result.matches[0].keyframe_id
            keyframe_image = self._keyframe_images.get(newest)
            for keyframe in self._pipeline.keyframes:
                if keyframe.keyframe_id == newest:
                    keyframe_keypoints = keyframe.features.keypoints
        canvas = draw_matches(image, result, keyframe_image, keyframe_keypoints)
        out = convert.fill_message(Image(), array_to_image_fields(canvas, "bgr8"))
        out.header = header
        self._pub_image.publish(out)

    # ------------------------------------------------------------ diagnostics
    def _on_diagnostics(self) -> None:
        now = time.monotonic()
        with self._stats_lock:
            stats = self._stats
            stats.trim(now)
            window = min(STATS_WINDOW_S, max(now - stats.started, 1e-3))
            rate = len(stats.recent) / window
            latencies = [latency for _, latency, _ in stats.recent]
            stages: dict[str, list[float]] = defaultdict(list)
            for _, _, timings in stats.recent:
                for stage, ms in timings.items():
                    stages[stage].append(ms)
            values = {
                "backend": self._backend,
                "frames_received": stats.received,
                "frames_processed": stats.processed,
                "frames_dropped": stats.dropped,
                "processing_errors": stats.processing_errors,
                "time_jumps": stats.time_jumps,
                "bad_inputs": sum(stats.bad_inputs.values()),
                **{f"bad_input.{k}": v for k, v in sorted(stats.bad_inputs.items())},
                "keyframes_created": stats.keyframes,
                "keyframes_buffered": len(self._keyframe_images),
                "processing_rate_hz": f"{rate:.2f}",
                "latency_ms.mean": f"{np.mean(latencies):.1f}" if latencies else "nan",
                "latency_ms.max": f"{np.max(latencies):.1f}" if latencies else "nan",
                **{f"stage_ms.{k}": f"{np.mean(v):.1f}" for k, v in sorted(stages.items())},
                "camera_info": "received" if self._camera is not None else "missing",
            }
            bad = sum(stats.bad_inputs.values())
        status = DiagnosticStatus(
            name=f"{self.get_fully_qualified_name()}: matching",
            hardware_id=self._backend,
            level=DiagnosticStatus.OK,
            message=f"{rate:.1f} frames/s",
        )
        if stats.processing_errors:
            status.level, status.message = DiagnosticStatus.ERROR, "processing errors"
        elif bad:
            status.level, status.message = DiagnosticStatus.WARN, f"{bad} bad images skipped"
        elif stats.received and stats.dropped > stats.processed:
            status.level, status.message = DiagnosticStatus.WARN, "dropping most frames"
        status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._pub_diag.publish(array)

    # --------------------------------------------------------------- shutdown
    def close(self) -> None:
        """Stop the worker (waits for the frame in progress up to a few seconds), free the model."""
        self._stop.set()
        with self._slot_cond:
            self._slot_cond.notify_all()
        worker = getattr(self, "_worker", None)
        if worker is not None:
            worker.join(timeout=WORKER_JOIN_TIMEOUT_S)
            if worker.is_alive():
                rclpy.logging.get_logger(f"superglue_ros.{NODE_NAME}").warning(
                    "worker still busy at shutdown; leaving it behind"
                )
        self._pipeline = None
        self._keyframe_images = {}
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()


def _msg_class(name: str) -> type:
    import superglue_ros_msgs.msg as msgs

    return getattr(msgs, name)


def convert_fields(result: Any, frame_id: str, include_descriptors: bool) -> dict[str, Any]:
    from superglue_ros.io.messages import correspondences_fields as fields_of

    return fields_of(result, frame_id, include_descriptors)


def main(args: list[str] | None = None) -> int:
    """Run the node until SIGINT/SIGTERM; returns the process exit status."""
    rclpy.init(args=args)
    # Not the node's own logger name: that one also goes to /rosout, gone at shutdown.
    logger = rclpy.logging.get_logger(f"superglue_ros.{NODE_NAME}")
    try:
        node = MatcherNode()
    except StartupError as error:
        logger.fatal(str(error))
        rclpy.try_shutdown()
        return error.exit_code
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        # The context may already be shut down (SIGINT): log without rosout.
        logger.info("shutting down")
        node.close()
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
