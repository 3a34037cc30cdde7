"""matcher_node over real DDS with the classical baseline (ORB + MNN): outputs, run-time
parameters, a time jump and a clean SIGINT. The node runs as a separate process."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ros_helpers import (
    NodeProcess,
    camera_info_msg,
    check_frame_outputs,
    diagnostics_values,
    image_msg,
    probe,  # noqa: F401  (fixture)
    publish_lockstep,
    reliable,
    sequence_frames,
    stamp_ns,
    wait_subscribed,
    wait_until,
)

pytestmark = pytest.mark.slow

BASELINE = {
    "frontend": "orb",
    "matcher": "mnn",
    "image_reliability": "reliable",
    "image_qos_depth": 5,
    "diagnostics_period": 0.2,
    "keyframes.min_matches": 150,
}


def test_baseline_end_to_end(ros_env, tmp_path, probe) -> None:  # noqa: F811
    import superglue_ros_msgs.msg as msgs
    from diagnostic_msgs.msg import DiagnosticArray
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from sensor_msgs.msg import CameraInfo, Image, PointCloud

    frames, stamps, camera_yaml = sequence_frames()
    info = camera_info_msg(camera_yaml, frames[0].shape[1], frames[0].shape[0])
    corrs = probe.collect("correspondences", msgs.Correspondences, reliable(100))
    keyframes = probe.collect("keyframes", msgs.Correspondences, reliable(100, True))
    vins = probe.collect("features_vins", PointCloud, reliable(100))
    drawings = probe.collect("matches_image", Image, reliable(100))
    diagnostics = probe.collect("/diagnostics", DiagnosticArray, reliable(100))
    image_pub = probe.publisher("image", Image, reliable(5))
    info_pub = probe.publisher("camera_info", CameraInfo, reliable(5))

    with NodeProcess(ros_env, tmp_path, BASELINE) as node:
        wait_subscribed(image_pub, node)
        wait_until(lambda: probe.node.count_publishers("correspondences") > 0, 10, "publishers")
        # camera_info is another topic: make sure the node knows K before the first frame
        wait_until(lambda: info_pub.get_subscription_count() > 0, 10, "camera_info sub", node)
        info_pub.publish(info)
        time.sleep(0.5)  # let the output subscriptions match too
        publish_lockstep(node, image_pub, corrs, frames, stamps, info_pub, info)
        wait_until(lambda: len(vins) >= len(frames), 10, "features_vins", node)
        check_frame_outputs(corrs, keyframes, stamps, vins, info)

        # matches_image is drawn while subscribed: keyframe left, frame right
        # (depth-1 publisher: under load an older drawing may be replaced; the last one comes)
        wait_until(
            lambda: drawings and stamp_ns(drawings[-1].header.stamp) == stamps[-1],
            10,
            "the last frame's matches_image",
            node,
        )
        last = drawings[-1]
        assert last.encoding == "bgr8" and last.width == 2 * frames[0].shape[1]
        assert stamp_ns(last.header.stamp) == stamps[-1]

        # a late subscriber still gets the recent keyframes (transient local)
        late = probe.collect("keyframes", msgs.Correspondences, reliable(100, True))
        wait_until(lambda: len(late) >= len(keyframes), 10, "transient-local keyframes", node)
        assert [k.frame_id for k in late] == [k.frame_id for k in keyframes]

        # run-time parameters: thresholds accepted, read-only and out-of-range rejected
        client = probe.node.create_client(SetParameters, "/matcher_node/set_parameters")
        assert client.wait_for_service(timeout_sec=10)

        def set_param(name, value, kind):
            field = {
                ParameterType.PARAMETER_INTEGER: "integer_value",
                ParameterType.PARAMETER_DOUBLE: "double_value",
                ParameterType.PARAMETER_STRING: "string_value",
            }[kind]
            pv = ParameterValue(type=kind, **{field: value})
            future = client.call_async(
                SetParameters.Request(parameters=[Parameter(name=name, value=pv)])
            )
            wait_until(future.done, 10, f"set {name}", node)
            return future.result().results[0]

        # The newest keyframe's own image again: with the start-up thresholds it matches
        # itself perfectly and is no keyframe; after min_matches -> 100000 it must be one.
        newest = [c for c in corrs if c.is_keyframe][-1]
        same_image = frames[stamps.index(stamp_ns(newest.header.stamp))]
        publish_lockstep(node, image_pub, corrs, [same_image], [stamps[-1] + 10**8])
        assert not corrs[-1].is_keyframe
        ok = set_param("keyframes.min_matches", 100000, ParameterType.PARAMETER_INTEGER)
        assert ok.successful, ok.reason
        ro = set_param("frontend", "sift", ParameterType.PARAMETER_STRING)
        assert not ro.successful and "read-only" in ro.reason
        out = set_param("keyframes.min_match_ratio", 5.0, ParameterType.PARAMETER_DOUBLE)
        assert not out.successful and out.reason
        publish_lockstep(node, image_pub, corrs, [same_image], [stamps[-1] + 2 * 10**8])
        assert corrs[-1].is_keyframe, "the run-time min_matches change did not reach the pipeline"
        newest = corrs[-1]

        # a time jump backwards (a bag looping) clears the buffer and is reported
        publish_lockstep(node, image_pub, corrs, [frames[0]], [stamps[0]])
        jump = corrs[-1]
        assert jump.is_keyframe and not jump.matches
        assert set(jump.evicted_keyframe_ids) >= {newest.frame_id}
        assert jump.frame_id > corrs[-2].frame_id
        # /diagnostics is a periodic snapshot: it may predate the last frame's counters
        expected = {"time_jumps": "1", "frames_processed": str(len(frames) + 3)}
        wait_until(
            lambda: expected.items() <= diagnostics_values(diagnostics).items(), 5, "diag", node
        )
        values = diagnostics_values(diagnostics)
        assert values["bad_inputs"] == "0" and values["camera_info"] == "received"
        assert "orb" in values["backend"]

        code, seconds = node.interrupt()
        log = node.output()
        assert code == 0, log
        assert seconds < 5.0
    assert "time jumped backwards" in log
    assert "Traceback" not in log


def test_image_message_helper_matches_the_frame() -> None:
    """The test's own publisher helper sends what it is given (guards the checks above)."""
    pytest.importorskip("sensor_msgs")
    from superglue_ros.io.images import image_to_array

    frame = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = image_msg(frame, 5_000_000_007)
    np.testing.assert_array_equal(image_to_array(msg), frame)
    assert stamp_ns(msg.header.stamp) == 5_000_000_007
