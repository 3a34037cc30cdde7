"""matcher_node refuses to start, with a message and a non-zero exit, on bad parameters
and on missing weights. The node runs as a separate process."""

from __future__ import annotations

import pytest

from ros_helpers import NodeProcess, env_without_weights

pytestmark = pytest.mark.slow

BAD_VALUES = {
    "range": ({"keyframes.min_match_ratio": 5.0}, "keyframes.min_match_ratio"),
    "choice": ({"frontend": "surf"}, "frontend"),
    "type": ({"keyframes.max_parallax_px": 40}, "keyframes.max_parallax_px"),
    "node_choice": ({"image_transport": "theora"}, "image_transport"),
    "minus_one_only": ({"superpoint.max_keypoints": 0}, "superpoint.max_keypoints"),
    "combination": ({"frontend": "orb", "matcher": "superglue"}, "superglue"),
    "device": ({"device": "tpu"}, "device"),  # refused with orb too, which runs no torch
}


def test_bad_parameter_values_exit_non_zero_naming_the_parameter(ros_env, tmp_path) -> None:
    nodes = {
        case: NodeProcess(
            ros_env, tmp_path, {"frontend": "orb", "matcher": "mnn", **values}, name=case
        )
        for case, (values, _) in BAD_VALUES.items()
    }
    try:
        for case, node in nodes.items():
            code = node.wait(timeout=60)
            log = node.output()
            named = BAD_VALUES[case][1]
            assert code != 0, f"{case}: exit status 0\n{log}"
            assert named in log, f"{case}: the message does not name {named}:\n{log}"
            assert "Traceback" not in log, log
    finally:
        for node in nodes.values():
            node.close()


def test_good_values_start(ros_env, tmp_path) -> None:
    """Guard for the test above: the same base parameters do start."""
    with NodeProcess(ros_env, tmp_path, {"frontend": "orb", "matcher": "mnn"}) as node:
        try:
            code = node.wait(timeout=4)
        except Exception:  # still running: good
            code, _ = node.interrupt()
            assert code == 0, node.output()
        else:
            pytest.fail(f"node exited ({code}):\n{node.output()}")


def test_missing_weights_exit_non_zero_naming_where_it_looked(ros_env, tmp_path) -> None:
    weights_dir = tmp_path / "empty_weights"
    weights_dir.mkdir()
    env = env_without_weights(ros_env, tmp_path / "home")
    params = {"frontend": "superpoint", "matcher": "superglue", "weights_dir": str(weights_dir)}
    with NodeProcess(env, tmp_path, params) as node:
        code = node.wait(timeout=60)
        log = node.output()
    assert code == 3, log
    assert str(weights_dir) in log
    assert "superpoint_v1.pth" in log
    assert "frontend:=orb" in log  # and what to do instead
    assert "Traceback" not in log
