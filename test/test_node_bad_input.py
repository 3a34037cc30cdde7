"""Bad images over real DDS: each kind is skipped, logged once, counted in /diagnostics,
and the node goes on processing good frames. Raw and compressed transports, one node each."""

from __future__ import annotations

import array

import cv2
import pytest

from ros_helpers import (
    NodeProcess,
    diagnostics_values,
    image_msg,
    probe,  # noqa: F401  (fixture)
    reliable,
    sequence_frames,
    wait_subscribed,
    wait_until,
)

pytestmark = pytest.mark.slow

PARAMS = {
    "frontend": "orb",
    "matcher": "mnn",
    "image_reliability": "reliable",
    "image_qos_depth": 10,
    "diagnostics_period": 0.2,
}


def raw_bad_frames(good):
    """(kind, message) for every raw fault; each is a valid frame with one thing broken."""

    def variant(change):
        msg = image_msg(good, 2_000_000_000)
        change(msg)
        return msg

    def truncate(msg):
        msg.data = msg.data[: len(msg.data) // 2]

    def oversize(msg):
        msg.data.extend(array.array("B", bytes(1000)))

    def empty(msg):
        msg.height, msg.width, msg.step, msg.data = 0, 0, 0, array.array("B")

    def yuv(msg):
        msg.encoding = "yuv422"

    def step(msg):
        msg.step = msg.width  # rgb8 needs 3 bytes a pixel

    return [
        ("unsupported_encoding", variant(yuv)),
        ("unsupported_encoding", variant(yuv)),
        ("empty_image", variant(empty)),
        ("bad_step", variant(step)),
        ("truncated_data", variant(truncate)),
        ("oversized_data", variant(oversize)),
    ]


def compressed_msg(data: bytes, fmt: str, stamp_s: int):
    from sensor_msgs.msg import CompressedImage

    msg = CompressedImage(format=fmt)
    msg.data = array.array("B", data)
    msg.header.stamp.sec = stamp_s
    msg.header.frame_id = "cam"
    return msg


def send_and_count(probe, pub, msg, diagnostics, name, kind, node) -> None:  # noqa: F811
    before = int(diagnostics_values(diagnostics, name).get(f"bad_input.{kind}", 0))
    pub.publish(msg)
    wait_until(
        lambda: int(diagnostics_values(diagnostics, name).get(f"bad_input.{kind}", 0)) > before,
        10,
        f"{kind} to be counted",
        node,
    )


def test_bad_inputs_are_counted_and_skipped(ros_env, tmp_path, probe) -> None:  # noqa: F811
    import superglue_ros_msgs.msg as msgs
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CompressedImage, Image

    frames, _, _ = sequence_frames(3)
    good = frames[0]
    diagnostics = probe.collect("/diagnostics", DiagnosticArray, reliable(200))
    raw_out = probe.collect("/raw/correspondences", msgs.Correspondences, reliable(20))
    comp_out = probe.collect("/comp/correspondences", msgs.Correspondences, reliable(20))
    raw_pub = probe.publisher("/raw/image", Image, reliable(10))
    comp_pub = probe.publisher("/comp/image/compressed", CompressedImage, reliable(10))

    raw = NodeProcess(ros_env, tmp_path, PARAMS, ("-r", "__ns:=/raw"), name="raw")
    comp = NodeProcess(
        ros_env,
        tmp_path,
        {**PARAMS, "image_transport": "compressed"},
        ("-r", "__ns:=/comp"),
        name="comp",
    )
    with raw, comp:
        wait_subscribed(raw_pub, raw)
        wait_subscribed(comp_pub, comp)
        wait_until(lambda: probe.node.count_publishers("/raw/correspondences") > 0, 10, "pubs")

        expected: dict[str, int] = {}
        for kind, msg in raw_bad_frames(good):
            send_and_count(probe, raw_pub, msg, diagnostics, "/raw/matcher_node", kind, raw)
            expected[kind] = expected.get(kind, 0) + 1
        # good frames are still processed, with their stamps (one at a time: the node
        # keeps only the newest waiting frame)
        for i in (1, 2):
            raw_pub.publish(image_msg(frames[i], 3_000_000_000 + i))
            wait_until(lambda i=i: len(raw_out) == i, 20, "good raw frames", raw)
        assert [c.header.stamp.nanosec for c in raw_out] == [1, 2]

        ok, png = cv2.imencode(".png", good[:, :, ::-1])
        bad_compressed = [
            ("corrupt_compressed", compressed_msg(b"\x89PNG\r\n" + bytes(500), "png", 4)),
            ("corrupt_compressed", compressed_msg(png.tobytes()[:200], "png", 4)),
            ("empty_image", compressed_msg(b"", "jpeg", 4)),
            ("unsupported_encoding", compressed_msg(b"x", "16UC1; compressedDepth png", 4)),
        ]
        comp_expected: dict[str, int] = {}
        for kind, msg in bad_compressed:
            send_and_count(probe, comp_pub, msg, diagnostics, "/comp/matcher_node", kind, comp)
            comp_expected[kind] = comp_expected.get(kind, 0) + 1
        comp_pub.publish(compressed_msg(png.tobytes(), "png", 5))
        wait_until(lambda: len(comp_out) == 1, 10, "good compressed frame", comp)
        assert comp_out[0].header.stamp.sec == 5
        assert comp_out[0].features.image_width == good.shape[1]

        wait_until(
            lambda: (
                diagnostics_values(diagnostics, "/raw/matcher_node").get("frames_processed") == "2"
            ),
            5,
            "final diagnostics",
        )
        for name, counts in (
            ("/raw/matcher_node", expected),
            ("/comp/matcher_node", comp_expected),
        ):
            values = diagnostics_values(diagnostics, name)
            for kind, count in counts.items():
                assert values[f"bad_input.{kind}"] == str(count), (name, kind, values)
            assert values["bad_inputs"] == str(sum(counts.values()))
            assert values["processing_errors"] == "0"
        assert raw.alive() and comp.alive()
        for node in (raw, comp):
            code, _ = node.interrupt()
            assert code == 0, node.output()
    raw_log, comp_log = raw.output(), comp.output()
    # logged once per kind, with the reason
    assert raw_log.count("skipping bad image (unsupported_encoding)") == 1, raw_log
    assert "yuv422" in raw_log
    for kind in expected:
        assert f"skipping bad image ({kind})" in raw_log
    assert comp_log.count("skipping bad image (corrupt_compressed)") == 1, comp_log
    assert "Traceback" not in raw_log + comp_log
