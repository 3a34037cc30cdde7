"""QoS that keeps the node silent is said, once, in the log and /diagnostics (over real DDS).

- A reliable publisher of 640x480 RGB frames and the node on best_effort (the
  sensor-data default): large best-effort samples are fragmented and can be lost
  whole. Whatever happens on this machine, the node either processes frames or
  warns, naming image_reliability.
- A matched publisher that sends nothing, with use_sim_time and no /clock: the
  starvation warning comes, and /diagnostics is published at all (wall-clock timer).
- A best-effort publisher and the node on reliable: incompatible QoS, said once.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from ros_helpers import (
    NodeProcess,
    diagnostics_values,
    image_msg,
    probe,  # noqa: F401  (fixture)
    reliable,
    wait_subscribed,
    wait_until,
)

pytestmark = pytest.mark.slow

BASE = {"frontend": "orb", "matcher": "mnn", "diagnostics_period": 0.2}
WARNING = "QoS is the likely cause"


def best_effort(depth: int = 5):
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT)


def test_large_reliable_images_into_best_effort(ros_env, tmp_path, probe) -> None:  # noqa: F811
    import superglue_ros_msgs.msg as msgs
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    params = {**BASE, "image_reliability": "best_effort", "image_starvation_warning": 2.0}
    corrs = probe.collect("correspondences", msgs.Correspondences, reliable(100))
    diagnostics = probe.collect("/diagnostics", DiagnosticArray, reliable(100))
    publisher = probe.publisher("image", Image, reliable(5))
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    with NodeProcess(ros_env, tmp_path, params) as node:
        wait_subscribed(publisher, node)
        for index in range(40):  # 4 s at 10 Hz
            publisher.publish(image_msg(frame, 10**9 + index * 10**8))
            time.sleep(0.1)
        time.sleep(1.0)
        values = diagnostics_values(diagnostics)
        log = node.output()
    processed = int(values.get("frames_processed", 0))
    received = values.get("frames_received")
    print(f"reliable 640x480 RGB -> best_effort: {received} of 40 received, {processed} processed")
    if processed == 0:  # starved: it must say so, naming the parameter
        assert WARNING in log and "image_reliability:=reliable" in log, log
        assert "image_reliability:=reliable" in values.get("qos_warning", ""), values
    else:
        assert len(corrs) > 0
    # The warning is raised only while nothing has arrived: the first /diagnostics
    # that carries it was built from the same counters.
    warned = [diagnostics_values([array]) for array in diagnostics]
    warned = [v for v in warned if "qos_warning" in v]
    assert (WARNING in log) == bool(warned)
    if warned:
        assert warned[0]["frames_received"] == "0", warned[0]


def test_silent_publisher_with_sim_time_warns_in_diagnostics(ros_env, tmp_path, probe) -> None:  # noqa: F811
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    params = {**BASE, "image_starvation_warning": 1.0, "use_sim_time": True}
    diagnostics = probe.collect("/diagnostics", DiagnosticArray, reliable(100))
    publisher = probe.publisher("image", Image, reliable(5))  # matched, never publishes
    with NodeProcess(ros_env, tmp_path, params) as node:
        wait_subscribed(publisher, node)
        # No /clock: a timer on the ROS clock would never fire; this one runs on wall time.
        wait_until(lambda: "qos_warning" in diagnostics_values(diagnostics), 10, "warning", node)
        values = diagnostics_values(diagnostics)
        assert "image_reliability:=reliable" in values["qos_warning"]
        wait_until(lambda: len(diagnostics) >= 5, 5, "more diagnostics", node)
        log = node.output()
    assert log.count(WARNING) == 1, log  # once, not every diagnostics period
    status = [s for s in diagnostics[-1].status if "matcher_node" in s.name][0]
    assert status.level == status.WARN and "QoS" in status.message


def test_incompatible_qos_is_reported(ros_env, tmp_path, probe) -> None:  # noqa: F811
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    params = {**BASE, "image_reliability": "reliable"}
    diagnostics = probe.collect("/diagnostics", DiagnosticArray, reliable(100))
    with NodeProcess(ros_env, tmp_path, params) as node:
        wait_until(lambda: "listening on" in node.output(), 20, "the node to start", node)
        probe.publisher("image", Image, best_effort())
        wait_until(lambda: "incompatible" in node.output(), 10, "the QoS event", node)
        wait_until(
            lambda: "RELIABILITY" in diagnostics_values(diagnostics).get("qos_warning", ""),
            5,
            "the warning in /diagnostics",
            node,
        )
        log = node.output()
    assert "image_reliability:=best_effort" in log and log.count("incompatible") == 1, log
