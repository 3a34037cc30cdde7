"""matcher_node over real DDS with stereo and RGB-D input (ORB + MNN): the topics of the
usual drivers are paired by stamp, keypoints get depths (and right x), a lonely image is
counted as unpaired and an unrectified stereo pair is refused. The node is a child process."""

from __future__ import annotations

import numpy as np
import pytest
from stereo_scene import BoxScene, PlaneScene

from ros_helpers import (
    NodeProcess,
    diagnostics_values,
    image_msg,
    probe,  # noqa: F401  (fixture)
    reliable,
    stamp_ns,
    wait_subscribed,
    wait_until,
)

pytestmark = pytest.mark.slow

BASE = {
    "frontend": "orb",
    "matcher": "mnn",
    "image_reliability": "reliable",
    "image_qos_depth": 5,
    "diagnostics_period": 0.2,
    # one waiting image per topic: a lonely image is counted once the next one arrives
    "sync.queue_size": 1,
}
MS = 1_000_000


def camera_info(scene: PlaneScene, tx: float = 0.0, rotation: np.ndarray | None = None) -> object:
    from sensor_msgs.msg import CameraInfo

    info = CameraInfo(width=scene.width, height=scene.height, distortion_model="plumb_bob")
    info.k = np.array([scene.fx, 0, scene.cx, 0, scene.fy, scene.cy, 0, 0, 1], np.float64)
    info.r = (np.eye(3) if rotation is None else rotation).reshape(-1)
    info.p = np.array([scene.fx, 0, scene.cx, tx, 0, scene.fy, scene.cy, 0, 0, 0, 1, 0], np.float64)
    return info


def depth_msg(depth_mm: np.ndarray, stamp: int) -> object:
    from sensor_msgs.msg import Image

    from superglue_ros.io.images import depth_image_fields
    from superglue_ros.ros.convert import fill_message

    fields = depth_image_fields(depth_mm, stamp, "cam")
    fields.pop("header")
    msg = fill_message(Image(), fields)
    msg.header = image_msg(depth_mm[:1, :1].astype(np.uint8), stamp).header
    return msg


def publish_set(node, publishers, msgs, received, expect: bool = True) -> None:
    """Publish one message per topic (right first: arrival order must not matter)."""
    before = len(received)
    for publisher, msg in reversed(list(zip(publishers, msgs, strict=True))):
        publisher.publish(msg)
    if expect:
        wait_until(lambda: len(received) > before, 30, "the frame's correspondences", node)


def prime(node, infos, info_msgs, images, make_set, received) -> None:
    """Publish the camera infos, then warm-up sets until one comes back, and forget them.

    camera_info and images travel on different topics, so an image may reach the node
    before its camera_info; the node then refuses it (no_camera_info), as it should.
    """
    for attempt in range(10):
        for publisher, msg in zip(infos, info_msgs, strict=True):
            publisher.publish(msg)
        before = len(received)
        publish_set(node, images, make_set(10**8 + attempt * MS), received, expect=False)
        try:
            wait_until(lambda n=before: len(received) > n, 10, "a warm-up frame", node)
            break
        except AssertionError:
            continue
    else:
        raise AssertionError("no warm-up frame came back after 10 tries:\n" + node.output())
    received.clear()


def test_stereo_input_pairs_left_and_right_and_gives_depth(ros_env, tmp_path, probe) -> None:  # noqa: F811
    import superglue_ros_msgs.msg as msgs
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, Image

    scene = PlaneScene()
    left, right = scene.pair()
    corrs = probe.collect("correspondences", msgs.Correspondences, reliable(100))
    diagnostics = probe.collect("/diagnostics", DiagnosticArray, reliable(100))
    images = [
        probe.publisher(t, Image, reliable(5)) for t in ("left/image_rect", "right/image_rect")
    ]
    infos = [
        probe.publisher(t, CameraInfo, reliable(5))
        for t in ("left/camera_info", "right/camera_info")
    ]
    left_info = camera_info(scene)
    right_info = camera_info(scene, tx=-scene.fx * scene.baseline_m)

    with NodeProcess(ros_env, tmp_path, {**BASE, "input": "stereo"}) as node:
        for publisher in images + infos:
            wait_subscribed(publisher, node)
        wait_until(lambda: probe.node.count_publishers("correspondences") > 0, 10, "publishers")
        prime(
            node,
            infos,
            [left_info, right_info],
            images,
            lambda stamp: [image_msg(left, stamp), image_msg(right, stamp)],
            corrs,
        )
        stamps = [10**9 + 100 * MS * i for i in range(3)]
        for stamp in stamps:
            # The right camera's stamp a few ms off: approximate time pairs them.
            publish_set(
                node, images, [image_msg(left, stamp), image_msg(right, stamp + 3 * MS)], corrs
            )
        assert [stamp_ns(c.header.stamp) for c in corrs] == stamps  # the left image's stamps
        for c in corrs:
            keypoints = np.asarray(c.features.keypoints).reshape(-1, 2)
            depths, right_x = np.asarray(c.features.depths), np.asarray(c.features.right_x)
            assert depths.shape == right_x.shape == (len(keypoints),)
            found = np.isfinite(depths)
            assert found.mean() > 0.5
            np.testing.assert_array_equal(found, np.isfinite(right_x))
            exact = scene.depth_at(keypoints[found, 1])
            assert np.median(np.abs(depths[found] / exact - 1)) < 0.02
        # A left image alone: never paired; counted once a newer left pushes it out.
        images[0].publish(image_msg(left, stamps[-1] + 50 * MS))
        for i in range(2):
            stamp = stamps[-1] + 100 * MS * (i + 1)
            publish_set(node, images, [image_msg(left, stamp), image_msg(right, stamp)], corrs)
        wait_until(
            lambda: diagnostics_values(diagnostics).get("frames_unpaired") == "1",
            10,
            "unpaired",
            node,
        )
        values = diagnostics_values(diagnostics)
        assert values["input"] == "stereo" and values["unpaired./left/image_rect"] == "1"

        # An unrectified right camera: frames are refused and counted, the node lives on.
        tilted = np.array([[1, 0, 0], [0, 0.9998, -0.02], [0, 0.02, 0.9998]])
        infos[1].publish(camera_info(scene, -scene.fx * scene.baseline_m, tilted))
        wait_until(lambda: "not rectified" in node.output(), 10, "the refusal", node)
        count = len(corrs)
        stamp = stamps[-1] + 1000 * MS
        publish_set(node, images, [image_msg(left, stamp), image_msg(right, stamp)], corrs, False)
        wait_until(
            lambda: diagnostics_values(diagnostics).get("bad_input.not_rectified") == "1",
            10,
            "diag",
            node,
        )
        assert len(corrs) == count
        code, _ = node.interrupt()
        assert code == 0, node.output()
    assert "Traceback" not in node.output()


def test_rgbd_input_reads_depth_at_keypoints(ros_env, tmp_path, probe) -> None:  # noqa: F811
    import superglue_ros_msgs.msg as msgs
    from sensor_msgs.msg import CameraInfo, Image

    scene = BoxScene()
    color, depth = scene.rgbd()
    depth_mm = np.rint(depth * 1000).astype(np.uint16)
    corrs = probe.collect("correspondences", msgs.Correspondences, reliable(100))
    topics = ("color/image_raw", "aligned_depth_to_color/image_raw")
    images = [probe.publisher(t, Image, reliable(5)) for t in topics]
    info = probe.publisher("color/camera_info", CameraInfo, reliable(5))
    params = {**BASE, "input": "rgbd", "sync.policy": "exact"}
    with NodeProcess(ros_env, tmp_path, params) as node:
        for publisher in [*images, info]:
            wait_subscribed(publisher, node)
        wait_until(lambda: probe.node.count_publishers("correspondences") > 0, 10, "publishers")
        prime(
            node,
            [info],
            [camera_info(scene)],
            images,
            lambda stamp: [image_msg(color, stamp), depth_msg(depth_mm, stamp)],
            corrs,
        )
        for i in range(2):
            stamp = 10**9 + 100 * MS * i
            publish_set(node, images, [image_msg(color, stamp), depth_msg(depth_mm, stamp)], corrs)
        for c in corrs:
            keypoints = np.asarray(c.features.keypoints).reshape(-1, 2)
            depths = np.asarray(c.features.depths)
            assert depths.shape == (len(keypoints),) and len(c.features.right_x) == 0
            away = ~scene.near_box_edge(keypoints, radius=2)
            tolerance = 0.5 * scene.max_depth_slope() + 0.5e-3 + 1e-5
            np.testing.assert_allclose(
                depths[away], scene.exact_depth(keypoints[away]), rtol=0, atol=tolerance
            )
        code, _ = node.interrupt()
        assert code == 0, node.output()
