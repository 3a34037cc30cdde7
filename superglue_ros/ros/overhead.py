"""The node's per-frame ROS work, timed on its own (part ``ros`` of ``superglue-ros bench``).

What matcher_node does around the pipeline for every frame, with the functions it
uses: the sensor_msgs/Image -> numpy conversion (``io.images.decode_image``), the
Correspondences message built from a FrameResult (``io.messages.correspondences_fields``
+ ``convert.fill_message``), publishing it over DDS to a subscriber in another
process on this machine, and the features_vins PointCloud (tracker update, message
as serialized bytes, publish; only sent when camera_info is known). The FrameResult
is a typical one: ``keypoints`` points with 256-d descriptors (sent, as ``publish_descriptors``
defaults to true) matched against ``keyframes`` keyframes.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

#: What the node does per frame with its default parameters (descriptors sent) and a
#: camera_info; building_and_publish_without_descriptors is timed on its own beside them.
DEFAULT_STEPS = ("image_conversion", "message_building", "publish", "features_vins")

SINK = """
import rclpy, sys
from rclpy.qos import QoSProfile
from sensor_msgs.msg import PointCloud
import superglue_ros_msgs.msg as msgs
from rclpy.executors import ExternalShutdownException
rclpy.init()
node = rclpy.create_node("superglue_ros_bench_sink")
prefix = sys.argv[1]
node.create_subscription(msgs.Correspondences, prefix + "/correspondences", lambda m: None, 10)
node.create_subscription(PointCloud, prefix + "/features_vins", lambda m: None, 10)
try:
    rclpy.spin(node)
except (KeyboardInterrupt, ExternalShutdownException):
    pass
"""


def typical_result(frame: int, keypoints: int, keyframes: int, seed: int = 0) -> Any:
    """A FrameResult like SuperPoint + SuperGlue's at 640 x 480 (about 60 % matched)."""
    from superglue_ros.pipeline.types import Features, FrameResult, KeyframeMatch

    rng = np.random.default_rng(seed + frame)
    descriptors = rng.standard_normal((keypoints, 256)).astype(np.float32)
    descriptors /= np.linalg.norm(descriptors, axis=1, keepdims=True)
    features = Features(
        keypoints=(rng.random((keypoints, 2)) * [640, 480]).astype(np.float32),
        scores=rng.random(keypoints).astype(np.float32),
        descriptors=descriptors,
        image_size=(480, 640),
    )
    matches = []
    for k in range(keyframes):
        chosen = np.sort(rng.choice(keypoints, size=int(0.6 * keypoints), replace=False))
        matches.append(
            KeyframeMatch(
                keyframe_id=frame - k - 1,
                keyframe_stamp_ns=(frame - k) * 33_000_000,
                frame_indices=chosen.astype(np.int32),
                keyframe_indices=rng.permutation(keypoints)[: len(chosen)].astype(np.int32),
                scores=rng.random(len(chosen)).astype(np.float32),
            )
        )
    return FrameResult(
        frame_id=frame,
        stamp_ns=(frame + 1) * 33_000_000,
        is_keyframe=False,
        features=features,
        track_ids=np.arange(keypoints, dtype=np.int64) + 3 * frame,
        matches=matches,
        evicted_keyframe_ids=[],
    )


def image_message(height: int, width: int, encoding: str = "rgb8") -> Any:
    from sensor_msgs.msg import Image

    from superglue_ros.io.images import array_to_image_fields
    from superglue_ros.ros import convert

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    message = convert.fill_message(Image(), array_to_image_fields(pixels, encoding))
    message.header.frame_id = "cam"
    return message


def camera_info(height: int, width: int) -> Any:
    from superglue_ros.ros.vins import CameraModel

    k = np.array([[525.0, 0, width / 2], [0, 525.0, height / 2], [0, 0, 1]])
    return CameraModel(k, np.zeros(5), "plumb_bob", width, height)


def measure(
    frames: int = 200,
    keypoints: int = 1024,
    keyframes: int = 4,
    height: int = 480,
    width: int = 640,
) -> dict[str, Any]:
    """Median milliseconds per frame of each step, and their sum (see the module doc)."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    import rclpy
    import superglue_ros_msgs.msg as msgs
    from sensor_msgs.msg import PointCloud

    from superglue_ros.io.images import decode_image
    from superglue_ros.io.messages import correspondences_fields
    from superglue_ros.ros import convert, qos
    from superglue_ros.ros.vins import VinsTracker, point_cloud_bytes

    results = [typical_result(i + keyframes, keypoints, keyframes) for i in range(8)]
    image = image_message(height, width)
    camera = camera_info(height, width)
    tracker = VinsTracker()
    prefix = f"/superglue_ros_bench_{os.getpid()}"
    rclpy.init()
    sink = subprocess.Popen([sys.executable, "-c", SINK, prefix], env=dict(os.environ))
    node = rclpy.create_node("superglue_ros_bench_source")
    try:
        pub_corr = node.create_publisher(
            msgs.Correspondences, prefix + "/correspondences", qos.output_qos(10)
        )
        pub_vins = node.create_publisher(PointCloud, prefix + "/features_vins", qos.output_qos(10))
        deadline = time.monotonic() + 60
        while pub_corr.get_subscription_count() < 1 or pub_vins.get_subscription_count() < 1:
            if time.monotonic() > deadline or sink.poll() is not None:
                raise RuntimeError("the bench's DDS subscriber did not connect within 60 s")
            time.sleep(0.05)

        state: dict[str, Any] = {}

        def convert_image() -> None:
            state["array"] = decode_image(image)

        def build_message() -> None:
            fields = correspondences_fields(state["result"], "cam", True)
            state["message"] = convert.fill_message(msgs.Correspondences(), fields)

        def publish() -> None:
            pub_corr.publish(state["message"])

        def without_descriptors() -> None:  # publish_descriptors: false
            fields = correspondences_fields(state["result"], "cam", False)
            pub_corr.publish(convert.fill_message(msgs.Correspondences(), fields))

        def vins() -> None:
            features = tracker.update(state["result"], camera)
            stamp_ns = state["result"].stamp_ns
            pub_vins.publish(point_cloud_bytes(stamp_ns, image.header.frame_id, features))

        steps: dict[str, Callable[[], None]] = {
            "image_conversion": convert_image,
            "message_building": build_message,
            "publish": publish,
            "features_vins": vins,
            "building_and_publish_without_descriptors": without_descriptors,
        }
        times: dict[str, list[float]] = {name: [] for name in steps}
        for frame in range(frames + 10):  # the first 10 frames are not timed
            state["result"] = results[frame % len(results)]
            for name, step in steps.items():
                start = time.perf_counter()
                step()
                if frame >= 10:
                    times[name].append(1e3 * (time.perf_counter() - start))
            time.sleep(0.002)  # let the subscriber take the message, as between frames
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        sink.terminate()
        sink.wait(timeout=10)
    medians = {f"{name}_ms": round(statistics.median(values), 3) for name, values in times.items()}
    default = sum(medians[f"{name}_ms"] for name in DEFAULT_STEPS)
    return {
        **medians,
        "total_ms": round(default, 3),
        "total_without_vins_ms": round(default - medians["features_vins_ms"], 3),
        "frames": frames,
        "keypoints": keypoints,
        "keyframes": keyframes,
        "image": f"{width}x{height} rgb8",
        "message_bytes": correspondences_bytes(state["message"]),
    }


def correspondences_bytes(message: Any) -> int:
    from rclpy.serialization import serialize_message

    return len(serialize_message(message))
