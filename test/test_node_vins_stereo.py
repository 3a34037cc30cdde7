"""matcher_node over real DDS with input stereo and vins_format fusion: features_vins in
VINS-Fusion's layout carries each tracked feature's left point and its right point."""

from __future__ import annotations

import numpy as np
import pytest
from stereo_bags import camera_info_fields
from stereo_scene import PlaneScene

from ros_helpers import (
    NodeProcess,
    image_msg,
    probe,  # noqa: F401  (fixture)
    reliable,
    wait_subscribed,
    wait_until,
)

pytestmark = pytest.mark.slow

MS = 1_000_000


def test_stereo_features_vins_in_the_fusion_layout(ros_env, tmp_path, probe) -> None:  # noqa: F811
    from sensor_msgs.msg import CameraInfo, Image, PointCloud

    from superglue_ros.ros.convert import fill_message
    from superglue_ros.ros.vins import VINS_FUSION_CHANNELS

    scene = PlaneScene()
    left, right = scene.pair()
    clouds = probe.collect("features_vins", PointCloud, reliable(100))
    images = [
        probe.publisher(t, Image, reliable(5)) for t in ("left/image_rect", "right/image_rect")
    ]
    infos = [
        probe.publisher(t, CameraInfo, reliable(5))
        for t in ("left/camera_info", "right/camera_info")
    ]
    tx = -scene.fx * scene.baseline_m
    params = {
        "frontend": "orb",
        "matcher": "mnn",
        "image_reliability": "reliable",
        "image_qos_depth": 5,
        "input": "stereo",
        "sync.policy": "exact",
        "vins_format": "fusion",
    }
    with NodeProcess(ros_env, tmp_path, params) as node:
        for publisher in images + infos:
            wait_subscribed(publisher, node)
        wait_until(lambda: probe.node.count_publishers("features_vins") > 0, 10, "publishers")
        # camera_info and images travel on different topics, so an image may reach the
        # node before its camera_info and be refused (no_camera_info), as it should: send
        # warm-up pairs with the camera infos until one comes back.
        for attempt in range(10):
            for publisher, offset in zip(infos, (0.0, tx), strict=True):
                publisher.publish(fill_message(CameraInfo(), camera_info_fields(scene, 0, offset)))
            count, stamp = len(clouds), 10**8 + attempt * MS
            images[1].publish(image_msg(right, stamp))
            images[0].publish(image_msg(left, stamp))
            try:
                wait_until(lambda c=count: len(clouds) > c, 10, "a warm-up frame", node)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError("no warm-up frame came back after 10 tries:\n" + node.output())
        for i in range(3):
            stamp = 10**9 + 100 * MS * i
            count = len(clouds)
            images[1].publish(image_msg(right, stamp))
            images[0].publish(image_msg(left, stamp))
            wait_until(lambda c=count: len(clouds) > c, 30, "features_vins", node)
        code, _ = node.interrupt()
        assert code == 0, node.output()

    cloud = clouds[-1]  # the same scene again: its features are tracked
    assert [c.name for c in cloud.channels] == list(VINS_FUSION_CHANNELS)
    channels = {c.name: np.asarray(c.values) for c in cloud.channels}
    points = np.array([[p.x, p.y, p.z] for p in cloud.points])
    assert (points[:, 2] == 1).all()
    cameras, ids = channels["camera_id"], channels["id_of_point"]
    left_rows, right_rows = cameras == 0, cameras == 1
    assert left_rows.sum() > 50 and right_rows.sum() > 0.5 * left_rows.sum()
    # Every left point comes before every right one, each right id has its left point.
    assert np.flatnonzero(right_rows).min() > np.flatnonzero(left_rows).max()
    assert set(ids[right_rows]) <= set(ids[left_rows])
    left_u = dict(zip(ids[left_rows], channels["u_of_point"][left_rows], strict=True))
    left_v = dict(zip(ids[left_rows], channels["v_of_point"][left_rows], strict=True))
    right_u, right_v = channels["u_of_point"][right_rows], channels["v_of_point"][right_rows]
    matched = ids[right_rows]
    np.testing.assert_array_equal(right_v, [left_v[i] for i in matched])  # one row
    disparity = np.array([left_u[i] for i in matched]) - right_u
    # pipeline/stereo's sub-pixel disparities are within a fraction of a pixel.
    assert np.median(np.abs(disparity - scene.disparity_at(right_v))) < 0.5
    # The right points are normalised with the right camera (the same K here).
    np.testing.assert_allclose(points[right_rows, 0], (right_u - scene.cx) / scene.fx, atol=1e-5)
    assert not any(channels[name].any() for name in VINS_FUSION_CHANNELS[6:])
