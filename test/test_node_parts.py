"""The node's parts on their own: mailbox, diagnostics, outputs, and the node in-process.

The in-process node runs on its own rclpy context with no other participant, so
these tests reach paths the DDS tests cannot provoke on demand: a frame whose
processing fails (counted, ERROR diagnostics, the next frame still served) and
the run-time changes of the node's own parameters.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from superglue_ros.ros.diagnostics import ERROR, OK, STATS_WINDOW_S, WARN, Stats, build_status
from superglue_ros.ros.mailbox import FrameMailbox

from conftest import require_module
from synthetic import orb_pipeline, sequence, translation


# ------------------------------------------------------------------ mailbox
def test_mailbox_keeps_only_the_newest_frame_and_says_when_it_dropped_one() -> None:
    mailbox = FrameMailbox()
    assert mailbox.take(0.0) is None
    assert mailbox.put("a") is False
    assert mailbox.put("b") is True  # "a" was never taken: dropped
    pending = mailbox.take(0.0)
    assert pending is not None and pending.msg == "b"
    assert pending.received <= time.monotonic()
    assert mailbox.take(0.0) is None


def test_mailbox_close_wakes_a_waiting_worker() -> None:
    mailbox = FrameMailbox()
    woke: list[float] = []

    def worker() -> None:
        start = time.monotonic()
        mailbox.take(30.0)
        woke.append(time.monotonic() - start)

    thread = threading.Thread(target=worker)
    thread.start()
    time.sleep(0.1)
    mailbox.close()
    thread.join(timeout=5)
    assert woke and woke[0] < 5.0 and mailbox.closed
    assert mailbox.take(30.0) is None  # closed: no waiting


def test_mailbox_wakes_the_worker_when_a_frame_arrives() -> None:
    mailbox = FrameMailbox()
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(mailbox.take(30.0)))
    thread.start()
    time.sleep(0.1)
    mailbox.put("frame")
    thread.join(timeout=5)
    assert got and got[0].msg == "frame"


# -------------------------------------------------------------- diagnostics
def test_status_levels() -> None:
    stats = Stats()
    stats.frame_received(dropped=False)
    stats.frame_processed(True, 1, 12.0, {"frontend": 3.0, "total": 10.0})
    level, message, values = build_status(stats.snapshot(), "orb + mnn", camera_info=False)
    assert level == OK and "frames/s" in message
    assert values["frames_processed"] == "1" and values["keyframes_created"] == "1"
    assert values["keyframes_buffered"] == "1" and values["camera_info"] == "missing"
    assert values["latency_ms.mean"] == "12.0" and values["stage_ms.frontend"] == "3.0"
    assert values["backend"] == "orb + mnn"

    for _ in range(3):
        stats.frame_received(dropped=True)
    level, message, _ = build_status(stats.snapshot(), "b", True)
    assert (level, message) == (WARN, "dropping most frames")

    stats.bad_input("bad_step")
    stats.bad_input("bad_step")
    level, message, values = build_status(stats.snapshot(), "b", True)
    assert (level, message) == (WARN, "2 bad images skipped")
    assert values["bad_input.bad_step"] == "2" and values["bad_inputs"] == "2"

    stats.processing_error()
    level, message, values = build_status(stats.snapshot(), "b", True)
    assert (level, message) == (ERROR, "processing errors")  # the worst wins
    assert values["processing_errors"] == "1"


def test_rates_and_latencies_cover_the_recent_window_only() -> None:
    stats = Stats()
    for latency in (10.0, 30.0):
        stats.frame_processed(False, 0, latency, {})
    now = time.monotonic()
    assert stats.snapshot(now).latencies_ms == [10.0, 30.0]
    later = stats.snapshot(now + STATS_WINDOW_S + 1.0)
    assert later.latencies_ms == [] and later.rate_hz == 0.0
    assert later.processed == 2  # totals stay
    _, _, values = build_status(later, "b", True)
    assert values["latency_ms.mean"] == "nan"


# ------------------------------------------------------------------ outputs
class FakePublisher:
    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.sent: list[Any] = []
        self.subscribers = 0

    def publish(self, msg: Any) -> None:
        self.sent.append(msg)

    def get_subscription_count(self) -> int:
        return self.subscribers


class FakeNode:
    """Stands in for rclpy's Node: create_publisher records what is published."""

    def __init__(self) -> None:
        self.publishers: dict[str, FakePublisher] = {}

    def create_publisher(self, _cls: type, topic: str, _qos: Any) -> FakePublisher:
        self.publishers[topic] = FakePublisher(topic)
        return self.publishers[topic]


@pytest.fixture
def ros_messages() -> None:
    require_module("rclpy", "the outputs build rclpy messages")
    require_module("superglue_ros_msgs", "needs the built interface package")


def header(stamp_ns: int) -> Any:
    from std_msgs.msg import Header

    msg = Header(frame_id="cam")
    msg.stamp.sec, msg.stamp.nanosec = divmod(stamp_ns, 10**9)
    return msg


def test_outputs_draw_against_the_newest_keyframe_only(ros_messages: None) -> None:
    from superglue_ros.ros.outputs import Outputs

    node = FakeNode()
    outputs = Outputs(node, depth=5, vins_min_track_length=2)  # type: ignore[arg-type]
    drawings = node.publishers["matches_image"]
    drawings.subscribers = 1
    frames = sequence([translation(0, 0), translation(3, 1), translation(6, 2)]).images
    pipeline = orb_pipeline()
    results = [pipeline.process(image, i * 10**8) for i, image in enumerate(frames)]
    assert results[0].is_keyframe and not results[1].is_keyframe
    height, width = frames[0].shape[:2]

    outputs.publish(results[0], frames[0], header(0), camera=None)
    outputs.publish(results[1], frames[1], header(10**8), camera=None)
    assert outputs.keyframe_for_drawing(results[1]).keyframe_id == results[0].frame_id
    # the first frame alone; then keyframe and frame side by side
    assert [(d.height, d.width) for d in drawings.sent] == [(height, width), (height, 2 * width)]
    assert len(node.publishers["correspondences"].sent) == 2
    assert [c.frame_id for c in node.publishers["keyframes"].sent] == [results[0].frame_id]
    assert node.publishers["features_vins"].sent == []  # no camera: no VINS output

    outputs.publish_descriptors = False
    outputs.reset()  # the buffer was cleared: no keyframe to draw against
    outputs.publish(results[2], frames[2], header(2 * 10**8), camera=None)
    assert (drawings.sent[-1].height, drawings.sent[-1].width) == (height, width)
    last = node.publishers["correspondences"].sent[-1]
    assert last.features.descriptor_dim == 0 and len(last.features.descriptors) == 0
    assert last.header.stamp.nanosec == 2 * 10**8


def test_a_new_keyframe_is_drawn_against_the_previous_one(ros_messages: None) -> None:
    from superglue_ros.ros.outputs import Outputs

    node = FakeNode()
    outputs = Outputs(node, depth=5, vins_min_track_length=2)  # type: ignore[arg-type]
    node.publishers["matches_image"].subscribers = 1
    frames = sequence([translation(0, 0), translation(3, 1), translation(6, 2)]).images
    pipeline = orb_pipeline({"keyframes.min_matches": 100000})  # every frame a keyframe
    for index, image in enumerate(frames):
        result = pipeline.process(image, index * 10**8)
        assert result.is_keyframe
        if index:
            assert outputs.keyframe_for_drawing(result).keyframe_id == index - 1
        outputs.publish(result, image, header(index * 10**8), camera=None)
    height, width = frames[0].shape[:2]
    sizes = [(d.height, d.width) for d in node.publishers["matches_image"].sent]
    assert sizes == [(height, width), (height, 2 * width), (height, 2 * width)]


def test_no_drawing_without_a_subscriber(ros_messages: None) -> None:
    from superglue_ros.ros.outputs import Outputs

    node = FakeNode()
    outputs = Outputs(node, depth=5, vins_min_track_length=2)  # type: ignore[arg-type]
    frames = sequence([translation(0, 0)]).images
    result = orb_pipeline().process(frames[0], 0)
    outputs.publish(result, frames[0], header(0), camera=None)
    assert node.publishers["matches_image"].sent == []
    assert len(node.publishers["correspondences"].sent) == 1


# ------------------------------------------------------------ node in-process
def local_context(monkeypatch: pytest.MonkeyPatch) -> Any:
    """An rclpy context of its own, discovery on this machine (skips without ROS)."""
    require_module("rclpy", "needs rclpy")
    require_module("superglue_ros_msgs", "needs the built interface package")
    import rclpy
    from rclpy.context import Context

    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    context = Context()
    rclpy.init(context=context, domain_id=90 + threading.get_native_id() % 10)
    return context


@pytest.fixture
def node_in_process(monkeypatch: pytest.MonkeyPatch) -> Any:
    context = local_context(monkeypatch)
    import rclpy
    from rclpy.parameter import Parameter

    from superglue_ros.ros.node import MatcherNode

    overrides = [
        Parameter("frontend", value="orb"),
        Parameter("matcher", value="mnn"),
        Parameter("diagnostics_period", value=60.0),
    ]
    node = MatcherNode(context=context, parameter_overrides=overrides)
    try:
        yield node
    finally:
        node.close()
        node.destroy_node()
        rclpy.try_shutdown(context=context)


def wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_a_failing_frame_is_counted_and_the_next_is_served(node_in_process: Any) -> None:
    from diagnostic_msgs.msg import DiagnosticStatus

    from superglue_ros.ros.player import image_message

    node = node_in_process
    frames = sequence([translation(0, 0), translation(2, 1)]).images
    real_process = node._pipeline.process
    calls: list[int] = []

    def fail_once(image: np.ndarray, stamp_ns: int, companions: Any = None) -> Any:
        calls.append(stamp_ns)
        if len(calls) == 1:
            raise RuntimeError("injected fault")
        return real_process(image, stamp_ns, companions)

    node._pipeline.process = fail_once
    sent: list[Any] = []
    node._pub_diag = SimpleNamespace(publish=sent.append)
    node._on_image(image_message(frames[0], 10**9, "cam"))
    wait_for(lambda: node._stats.snapshot().processing_errors == 1, "the error to be counted")
    node._on_image(image_message(frames[1], 2 * 10**9, "cam"))
    wait_for(lambda: node._stats.snapshot().processed == 1, "the next frame")
    assert calls == [10**9, 2 * 10**9]
    node._on_diagnostics()
    (status,) = sent[-1].status
    assert status.level == DiagnosticStatus.ERROR and status.message == "processing errors"
    values = {kv.key: kv.value for kv in status.values}
    assert values["processing_errors"] == "1" and values["frames_processed"] == "1"


def test_node_parameters_change_at_run_time(node_in_process: Any) -> None:
    from rclpy.parameter import Parameter

    node = node_in_process
    assert node._outputs.publish_descriptors is True
    assert node._outputs.vins.min_track_length == 2
    result = node.set_parameters(
        [Parameter("publish_descriptors", value=False), Parameter("vins_min_track_length", value=5)]
    )
    assert all(r.successful for r in result), result
    rejected = node.set_parameters([Parameter("vins_min_track_length", value=0)])
    assert not rejected[0].successful and "vins_min_track_length" in rejected[0].reason
    frames = sequence([translation(0, 0)]).images
    node._process(_pending(frames[0]))  # the worker applies pending changes first
    assert node._outputs.publish_descriptors is False
    assert node._outputs.vins.min_track_length == 5


def _pending(image: np.ndarray) -> Any:
    from superglue_ros.ros.mailbox import Pending
    from superglue_ros.ros.player import image_message

    return Pending(image_message(image, 10**9, "cam"), time.monotonic())


# --------------------------------------------------------------------- VINS
def test_vins_tracker_forgets_tracks_not_seen_for_a_while() -> None:
    """Long runs do not keep every track ever seen: every 100 frames, tracks unseen for
    forget_after_frames are dropped, and one seen again starts counting anew."""
    from superglue_ros.pipeline.types import Features, FrameResult
    from superglue_ros.ros.vins import CameraModel, VinsTracker

    camera = CameraModel(np.diag([500.0, 500.0, 1.0]), np.zeros(0), "plumb_bob", 640, 480)

    def frame(index: int, tracks: list[int]) -> FrameResult:
        count = len(tracks)
        features = Features(
            np.full((count, 2), 10.0, np.float32),
            np.ones(count, np.float32),
            np.zeros((count, 32), np.uint8),
            (480, 640),
        )
        return FrameResult(index, index * 10**8, False, features, np.array(tracks), [], [])

    tracker = VinsTracker(min_track_length=2, forget_after_frames=5)
    assert len(tracker.update(frame(1, [0, 1]), camera)) == 0  # seen once: not sent yet
    assert tracker.update(frame(2, [0, 1, 2]), camera).ids.tolist() == [0, 1]
    for index in range(3, 100):
        tracker.update(frame(index, [2]), camera)
    assert set(tracker._observations) == {0, 1, 2}  # nothing forgotten before frame 100
    tracker.update(frame(100, [2]), camera)
    assert set(tracker._observations) == {2}  # 0 and 1 unseen since frame 2: forgotten
    assert tracker.update(frame(101, [0, 2]), camera).ids.tolist() == [2]  # 0 counts anew
    assert tracker.update(frame(102, [0, 2]), camera).ids.tolist() == [0, 2]


# ------------------------------------------------------------------- player
def test_player_compressed_message_and_memory_source(ros_messages: None) -> None:
    from superglue_ros.io.images import decode_image
    from superglue_ros.io.stamps import stamp_to_ns
    from superglue_ros.ros.player import compressed_message, memory_source

    frames = sequence([translation(0, 0), translation(2, 0)]).images
    colour = np.dstack([frames[0], frames[1], frames[0]])
    png = compressed_message(colour, 1_500_000_001, "cam", fmt="png")
    assert png.format == "png" and png.header.frame_id == "cam"
    assert stamp_to_ns(png.header.stamp) == 1_500_000_001
    np.testing.assert_array_equal(decode_image(png), colour)  # lossless, RGB kept
    jpeg = compressed_message(frames[0], 0, "cam")
    assert jpeg.format == "jpeg"
    assert np.abs(decode_image(jpeg).astype(int) - frames[0]).mean() < 3.0

    source = memory_source(frames, rate_hz=4.0)
    assert source.count == 2 and source.camera_info is None
    first, second = list(source.frames()), list(source.frames())  # frames() can loop
    assert [f.stamp_ns for f in first] == [f.stamp_ns for f in second]
    assert first[1].stamp_ns - first[0].stamp_ns == 250_000_000
    assert all(f.image is g for f, g in zip(first, frames, strict=True))


def test_an_empty_depth_range_is_refused_at_run_time(node_in_process: Any) -> None:
    from rclpy.parameter import Parameter

    node = node_in_process
    (refused,) = node.set_parameters([Parameter("depth.max_m", value=0.05)])
    assert not refused.successful and "must be below 'depth.max_m'" in refused.reason
    (accepted,) = node.set_parameters([Parameter("depth.max_m", value=3.0)])
    assert accepted.successful, accepted.reason
    # checked against the pending changes too: 3.0 is not applied yet
    (refused,) = node.set_parameters([Parameter("depth.min_m", value=4.0)])
    assert not refused.successful


def test_stereo_with_a_slop_that_pairs_nothing_is_a_bad_parameter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    context = local_context(monkeypatch)
    import rclpy
    from rclpy.parameter import Parameter

    from superglue_ros.ros.node import EXIT_BAD_PARAMETER, MatcherNode, StartupError

    overrides = [
        Parameter("frontend", value="orb"),
        Parameter("matcher", value="mnn"),
        Parameter("input", value="stereo"),
        Parameter("sync.slop_s", value=0.0),
    ]
    try:
        with pytest.raises(StartupError, match="slop of 0 pairs nothing") as caught:
            MatcherNode(context=context, parameter_overrides=overrides)
        assert caught.value.exit_code == EXIT_BAD_PARAMETER
    finally:
        rclpy.try_shutdown(context=context)
