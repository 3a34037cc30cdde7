"""The QoS warnings' logic without DDS: when starvation is said, and how /diagnostics shows it."""

from __future__ import annotations

from superglue_ros.ros.diagnostics import WARN, Stats, build_status
from superglue_ros.ros.qos_watch import StarvationWatch, incompatible_qos_message


def test_starvation_is_said_once_after_the_delay_with_the_right_advice() -> None:
    watch = StarvationWatch(after_s=3.0, reliability="best_effort", topic="/cam/image")
    assert watch.check(0.0, publishers=0, frames_received=0) is None  # nobody to wait for
    assert watch.check(1.0, publishers=1, frames_received=0) is None  # the clock starts here
    assert watch.check(3.9, publishers=1, frames_received=0) is None
    message = watch.check(4.1, publishers=1, frames_received=0)
    assert message and "/cam/image" in message and "image_reliability:=reliable" in message
    assert watch.check(9.0, publishers=1, frames_received=0) is None  # once
    reliable = StarvationWatch(after_s=1.0, reliability="reliable", topic="/cam/image")
    reliable.check(0.0, 1, 0)
    assert "image_reliability:=best_effort" in reliable.check(2.0, 1, 0)


def test_frames_or_a_publisher_leaving_reset_the_clock() -> None:
    watch = StarvationWatch(after_s=2.0, reliability="best_effort", topic="/image")
    watch.check(0.0, 1, 0)
    watch.check(1.5, 0, 0)  # the publisher went away
    assert watch.check(3.0, 1, 0) is None  # back at 3.0: only 0 s of silence so far
    assert watch.check(5.1, 1, 0) is not None
    fed = StarvationWatch(after_s=2.0, reliability="best_effort", topic="/image")
    fed.check(0.0, 1, 0)
    assert fed.check(10.0, 1, frames_received=3) is None  # frames came: no starvation


def test_diagnostics_show_the_warning() -> None:
    warning = incompatible_qos_message("/image", "RELIABILITY", 1, "reliable")
    level, message, values = build_status(Stats().snapshot(), "orb + mnn", False, [warning])
    assert level == WARN and "QoS" in message
    assert "RELIABILITY" in values["qos_warning"] and "best_effort" in values["qos_warning"]
    level, _, values = build_status(Stats().snapshot(), "orb + mnn", False)
    assert "qos_warning" not in values
