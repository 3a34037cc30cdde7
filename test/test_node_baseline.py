"""matcher_node over real DDS with the classical baseline (ORB + MNN): outputs, run-time
parameters, a time jump and a clean SIGINT. The node runs as a separate process."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ros_helpers import (
    NodeProcess,
    camera_info_msg,
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


def check_frame_outputs(corrs, keyframes, stamps, vins, info) -> None:
    """The checks (a) and (b) share: stamps, ids, indices, keyframes and the VINS stream."""
    assert [stamp_ns(c.header.stamp) for c in corrs] == stamps
    assert all(c.header.frame_id == "cam" and c.features.header.frame_id == "cam" for c in corrs)
    ids = [c.frame_id for c in corrs]
    assert ids == sorted(set(ids)), f"frame ids not strictly increasing: {ids}"
    assert corrs[0].is_keyframe and not corrs[0].matches
    by_id = {c.frame_id: c for c in corrs}
    buffered: list[int] = []
    for c in corrs:
        n = len(c.features.scores)
        assert len(c.features.keypoints) == 2 * n and len(c.features.track_ids) == n
        assert [m.keyframe_id for m in c.matches] == buffered, "matches = buffered keyframes"
        for m in c.matches:
            keyframe = by_id[m.keyframe_id]
            assert keyframe.is_keyframe
            assert stamp_ns(m.keyframe_stamp) == stamp_ns(keyframe.header.stamp)
            fi, ki = np.asarray(m.frame_indices), np.asarray(m.keyframe_indices)
            assert len(fi) == len(ki) == len(m.scores)
            assert fi.size == 0 or (fi.min() >= 0 and fi.max() < n)
            assert ki.size == 0 or (ki.min() >= 0 and ki.max() < len(keyframe.features.scores))
            assert np.all((np.asarray(m.scores) >= 0) & (np.asarray(m.scores) <= 1))
            assert len(set(fi.tolist())) == len(fi), "one match per frame keypoint and keyframe"
        if c.matches:  # matched keypoints inherit the newest keyframe's track ids
            m = c.matches[0]
            kf_tracks = np.asarray(by_id[m.keyframe_id].features.track_ids)
            same = (
                np.asarray(c.features.track_ids)[np.asarray(m.frame_indices)]
                == kf_tracks[np.asarray(m.keyframe_indices)]
            )
            assert same.mean() > 0.5
        evicted = list(c.evicted_keyframe_ids)
        buffered = [b for b in buffered if b not in evicted]
        if c.is_keyframe:
            buffered = [c.frame_id, *buffered]
    # keyframes topic: exactly the keyframe results, same content
    assert [k.frame_id for k in keyframes] == [c.frame_id for c in corrs if c.is_keyframe]
    assert all(k.is_keyframe for k in keyframes)
    assert [stamp_ns(k.header.stamp) for k in keyframes] == [
        stamp_ns(c.header.stamp) for c in corrs if c.is_keyframe
    ]
    # VINS: camera_info was published before every frame
    assert len(vins) == len(corrs)
    assert [stamp_ns(v.header.stamp) for v in vins] == stamps
    fx, fy, cx, cy = info.k[0], info.k[4], info.k[2], info.k[5]
    points_total = 0
    for cloud, c in zip(vins, corrs, strict=True):
        channels = {ch.name: np.asarray(ch.values) for ch in cloud.channels}
        assert list(channels) == [
            "id_of_point",
            "u_of_point",
            "v_of_point",
            "velocity_x_of_point",
            "velocity_y_of_point",
        ]
        assert all(len(v) == len(cloud.points) for v in channels.values())
        points = np.array([[p.x, p.y, p.z] for p in cloud.points]).reshape(-1, 3)
        points_total += len(points)
        np.testing.assert_allclose(points[:, 2], 1.0)
        np.testing.assert_allclose(points[:, 0], (channels["u_of_point"] - cx) / fx, atol=1e-4)
        np.testing.assert_allclose(points[:, 1], (channels["v_of_point"] - cy) / fy, atol=1e-4)
        tracks = set(np.asarray(c.features.track_ids).tolist())
        assert set(channels["id_of_point"].astype(np.int64).tolist()) <= tracks
    assert len(vins[0].points) == 0, "VINS sends features only once tracked"
    assert points_total > 0


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
        time.sleep(0.5)  # let the output subscriptions match too
        publish_lockstep(node, image_pub, corrs, frames, stamps, info_pub, info)
        wait_until(lambda: len(vins) >= len(frames), 10, "features_vins", node)
        check_frame_outputs(corrs, keyframes, stamps, vins, info)

        # matches_image is drawn while subscribed: keyframe left, frame right
        wait_until(lambda: len(drawings) == len(frames), 10, "every matches_image", node)
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
        wait_until(lambda: diagnostics_values(diagnostics).get("time_jumps") == "1", 5, "diag")
        values = diagnostics_values(diagnostics)
        assert values["frames_processed"] == str(len(frames) + 3)
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
    from superglue_ros.ros.convert import image_to_array

    frame = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = image_msg(frame, 5_000_000_007)
    np.testing.assert_array_equal(image_to_array(msg), frame)
    assert stamp_ns(msg.header.stamp) == 5_000_000_007
