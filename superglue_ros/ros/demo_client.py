"""The DDS side of ``make demo``: publish frames to the node in lock-step, print each result."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.qos import QoSProfile, ReliabilityPolicy

from superglue_ros.io.stamps import stamp_to_ns
from superglue_ros.ros.player import Frame, Player


class NodeGoneError(RuntimeError):
    """The node process ended while the demo was waiting for it."""


def run_lockstep(
    frames: list[np.ndarray],
    stamps_ns: list[int],
    camera_info: Any,
    namespace: str,
    node_alive: Callable[[], bool],
    startup_timeout_s: float = 180.0,
    frame_timeout_s: float = 120.0,
    out: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Publish each frame once the previous result is back; one printed line per frame.

    Returns one record per frame (frame id, keyframe, matches per keyframe, ms).
    """
    import superglue_ros_msgs.msg as msgs

    context = Context()
    rclpy.init(context=context)
    records: list[dict[str, Any]] = []
    try:
        with Player(
            f"{namespace}/image",
            f"{namespace}/camera_info",
            frame_id="camera",
            reliability="reliable",
            context=context,
            node_name="superglue_demo",
        ) as player:
            results: dict[int, Any] = {}

            def on_result(msg: Any) -> None:
                results[stamp_to_ns(msg.header.stamp)] = msg

            player.node.create_subscription(
                msgs.Correspondences,
                f"{namespace}/correspondences",
                on_result,
                QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
            )
            deadline = time.monotonic() + startup_timeout_s
            while player.image_pub.get_subscription_count() == 0:
                if not node_alive():
                    raise NodeGoneError("the node exited during start-up")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the node did not subscribe within {startup_timeout_s} s")
                player.spin_for(0.1)
            player.spin_for(0.5)  # let the result subscription match as well
            for image, stamp in zip(frames, stamps_ns, strict=True):
                start = time.monotonic()
                player.publish(Frame(stamp, image=image), camera_info)
                deadline = start + frame_timeout_s
                while stamp not in results:
                    if not node_alive():
                        raise NodeGoneError("the node exited")
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"no result for frame {stamp} in {frame_timeout_s} s")
                    player.spin_for(0.01)
                ms = 1e3 * (time.monotonic() - start)
                msg = results.pop(stamp)
                record = {
                    "frame_id": int(msg.frame_id),
                    "keyframe": bool(msg.is_keyframe),
                    "keypoints": len(msg.features.scores),
                    "matches": {int(m.keyframe_id): len(m.frame_indices) for m in msg.matches},
                    "ms": ms,
                }
                records.append(record)
                matches = (
                    " ".join(f"kf{k}:{n}" for k, n in record["matches"].items()) or "(none yet)"
                )
                kind = "KEYFRAME" if record["keyframe"] else "frame   "
                out(
                    f"frame {record['frame_id']:3d}  {kind}  {record['keypoints']:4d} kp"
                    f"  matches {matches}  {ms:7.1f} ms"
                )
    finally:
        rclpy.try_shutdown(context=context)
    return records
