"""matcher_node over DDS with loop closure (ORB + MNN): the loop_closures topic, the
match_keyframes service and the keyframe map saved at shutdown."""

from __future__ import annotations

import time

import pytest

from superglue_ros.pipeline.keyframe_map import KeyframeMap
from superglue_ros.pipeline.place_recognition import vocabulary_from_images

from loop_scene import ring_sequence
from ros_helpers import (
    NodeProcess,
    camera_info_msg,
    image_msg,
    probe,  # noqa: F401  (fixture)
    publish_lockstep,
    reliable,
    wait_subscribed,
    wait_until,
)
from synthetic import orb_pipeline, textured_image

pytestmark = pytest.mark.slow


def call(probe, client, request, node):  # noqa: F811
    future = client.call_async(request)
    wait_until(future.done, 20, "the match_keyframes response", node)
    return future.result()


def test_loop_closures_and_match_keyframes_over_dds(ros_env, tmp_path, probe) -> None:  # noqa: F811
    import superglue_ros_msgs.msg as msgs
    import superglue_ros_msgs.srv as srvs
    from sensor_msgs.msg import CameraInfo, Image

    training = [textured_image(240, 320, 5000 + i) for i in range(16)]
    vocabulary = vocabulary_from_images(training, orb_pipeline().frontend, 128).save(
        tmp_path / "orb.npz"
    )
    map_path = tmp_path / "map.npz"
    params = {
        "frontend": "orb",
        "matcher": "mnn",
        "image_reliability": "reliable",
        "image_qos_depth": 5,
        "loop_closure.enabled": True,
        "loop_closure.vocabulary": str(vocabulary),
        "map.save_path": str(map_path),
    }
    seq = ring_sequence()
    frames, stamps = seq.images, seq.stamps_ns
    info = camera_info_msg(None, frames[0].shape[1], frames[0].shape[0])
    corrs = probe.collect("correspondences", msgs.Correspondences, reliable(200))
    loops = probe.collect("loop_closures", msgs.LoopClosure, reliable(100, True))
    image_pub = probe.publisher("image", Image, reliable(5))
    info_pub = probe.publisher("camera_info", CameraInfo, reliable(5))
    client = probe.node.create_client(srvs.MatchKeyframes, "match_keyframes")

    with NodeProcess(ros_env, tmp_path, params) as node:
        wait_subscribed(image_pub, node)
        wait_until(lambda: info_pub.get_subscription_count() > 0, 10, "camera_info sub", node)
        info_pub.publish(info)
        wait_until(lambda: probe.node.count_publishers("loop_closures") > 0, 10, "loops pub", node)
        time.sleep(0.5)
        publish_lockstep(node, image_pub, corrs, frames, stamps, info_pub, info)
        first_stamps = set(stamps[: len(stamps) // 10])
        last_stamps = set(stamps[-len(stamps) // 10 :])

        def stamp(t) -> int:
            return t.sec * 10**9 + t.nanosec

        wait_until(
            lambda: any(
                stamp(m.query_stamp) in last_stamps and stamp(m.match_stamp) in first_stamps
                for m in loops
            ),
            10,
            "a loop from the last frames to the first",
            node,
        )
        for loop in loops:
            assert loop.accepted and loop.reason == ""
            assert len(loop.query_indices) == len(loop.match_indices) == len(loop.inliers)
            assert loop.num_inliers == sum(loop.inliers) >= 40
            assert loop.coverage >= 0.5 and loop.inlier_ratio >= 0.1
            # the two views overlap (by at least a third): no false loop
            assert seq.distance_px(loop.query_keyframe_id, loop.match_keyframe_id) < 2 / 3 * 320
            # camera_info is known: verified with the essential matrix, with a pose
            assert loop.has_pose and len(loop.rotation) == 9 and loop.pose_inliers > 0
            assert stamp(loop.header.stamp) == stamp(loop.query_stamp)

        assert client.wait_for_service(timeout_sec=10)
        loop = loops[-1]
        request = srvs.MatchKeyframes.Request(
            query_keyframe_id=loop.query_keyframe_id, match_keyframe_id=loop.match_keyframe_id
        )
        response = call(probe, client, request, node)
        assert response.success and response.result.accepted, response.message
        assert response.result.num_inliers >= 40
        assert stamp(response.result.match_stamp) == stamp(loop.match_stamp)

        request.match_keyframe_id = 10**6
        response = call(probe, client, request, node)
        assert not response.success and "not in the map" in response.message

        by_images = srvs.MatchKeyframes.Request(
            use_images=True,
            query_image=image_msg(frames[-1], stamps[-1]),
            match_image=image_msg(frames[len(frames) // 2], stamps[len(frames) // 2]),
        )
        response = call(probe, client, by_images, node)
        assert response.success and not response.result.accepted
        assert len(response.query_features.keypoints) > 0 and len(response.match_features.scores)
        bad = srvs.MatchKeyframes.Request(use_images=True)  # empty images
        response = call(probe, client, bad, node)
        assert not response.success and "bad image" in response.message

        code, _ = node.interrupt()
        assert code == 0, node.output()[-2000:]
    saved = KeyframeMap.load(map_path)
    assert len(saved) > 10 and "keyframe map saved" in node.output()
