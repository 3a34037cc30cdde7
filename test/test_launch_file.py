"""launch/matcher.launch.py without launch installed: its logic run against stand-in classes.

launch and launch_ros are not on PyPI, so the launch file is loaded with small
stand-ins for the classes it uses, which record their arguments. With a real
ROS 2 install the real ones are used instead (the test skips then: `ros2 launch`
itself is the check there).
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = PROJECT_ROOT / "launch" / "matcher.launch.py"


class Recorded:
    """Stands in for a launch class: keeps its positional and keyword arguments."""

    def __init__(self, *args, **kwargs) -> None:
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration(Recorded):
    def perform(self, context) -> str:
        return context[self.args[0]]


class FindPackageShare(Recorded):
    def perform(self, context) -> str:
        return str(PROJECT_ROOT)  # config/ as installed


@pytest.fixture
def launch_module(monkeypatch: pytest.MonkeyPatch):
    if importlib.util.find_spec("launch_ros") is not None:
        pytest.skip("launch is installed: use `ros2 launch` to check the real thing")
    modules = {
        "launch": {"LaunchDescription": Recorded},
        "launch.actions": {
            "DeclareLaunchArgument": Recorded,
            "OpaqueFunction": Recorded,
            "RegisterEventHandler": Recorded,
        },
        "launch.event_handlers": {"OnProcessExit": Recorded},
        "launch.substitutions": {
            "LaunchConfiguration": LaunchConfiguration,
            "PathJoinSubstitution": Recorded,
        },
        "launch_ros.actions": {"Node": Recorded},
        "launch_ros.substitutions": {"FindPackageShare": FindPackageShare},
        "launch_ros": {},
    }
    for name, attributes in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("matcher_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def launch_actions(module, **arguments: str) -> tuple[dict[str, Recorded], list[Recorded]]:
    """Declared arguments by name, and the actions the OpaqueFunction returns."""
    (description,) = module.generate_launch_description().args
    declared = {a.args[0]: a for a in description if a.args and isinstance(a.args[0], str)}
    context = {name: a.kwargs["default_value"] for name, a in declared.items()}
    context["params_file"] = str(PROJECT_ROOT / "config" / "matcher.yaml")
    context.update(arguments)
    (opaque,) = [a for a in description if "function" in a.kwargs]
    return declared, opaque.kwargs["function"](context)


def test_qos_arguments_reach_the_node_parameters(launch_module) -> None:
    declared, (node, _) = launch_actions(
        launch_module, image_reliability="reliable", image_qos_depth="3"
    )
    assert {"image_reliability", "image_qos_depth"} <= set(declared)
    assert declared["image_reliability"].kwargs["choices"] == ["", "best_effort", "reliable"]
    overrides = node.kwargs["parameters"][-1]
    assert overrides["image_reliability"] == "reliable"
    assert overrides["image_qos_depth"] == 3  # an integer parameter, not the string "3"
    _, (node, _) = launch_actions(launch_module)
    assert "image_reliability" not in node.kwargs["parameters"][-1]  # empty: the file's value


def test_node_error_exit_ends_the_launch_with_an_error(launch_module) -> None:
    _, (node, handler) = launch_actions(launch_module)
    (on_exit,) = handler.args
    assert on_exit.kwargs["target_action"] is node
    callback = on_exit.kwargs["on_exit"]
    event = types.SimpleNamespace(returncode=0, action=types.SimpleNamespace(name="matcher_node"))
    assert callback(event, {}) is None  # Ctrl-C: a clean exit ends nothing
    event.returncode = 3
    with pytest.raises(launch_module.NodeFailedError, match="status 3 .model weights missing"):
        callback(event, {})


# A value each declared argument refuses: every argument is checked, and its message
# names it. A new argument needs an entry here (the test fails without one).
BAD_VALUES = {
    "image": "camera image",
    "camera_info": "1/camera_info",
    "vins_topic": "feature//tracker",
    "params_file": "/nowhere/matcher.yaml",
    "preset": "lightglue",  # a network, not a scene
    "weights_dir": "/nowhere/weights",
    "device": "tpu",
    "precision": "fp8",
    "runtime": "tensorrt",
    "onnx_dir": str(LAUNCH_FILE),  # a file
    "frontend": "superglue",
    "matcher": "ransac",
    "image_reliability": "lossy",
    "image_qos_depth": "abc",
    "namespace": "front camera",
    "node_name": "matcher-node",
    "use_sim_time": "maybe",
    "log_level": "loud",
    "odometry": "sometimes",
    "input": "trinocular",
    "sync_policy": "nearest",
    "sync_slop_s": "soon",
    "left_image": "left image",
    "right_image": "2/image_rect",
    "left_camera_info": "left//camera_info",
    "right_camera_info": "right camera_info",
    "color_image": "color image",
    "depth_image": "depth-image",
    "color_camera_info": "9/camera_info",
}


def test_every_argument_is_checked_and_named_when_bad(launch_module) -> None:
    declared, _ = launch_actions(launch_module)
    assert set(BAD_VALUES) == set(declared) == set(launch_module.ARGUMENT_NAMES)
    for name, value in BAD_VALUES.items():
        with pytest.raises(ValueError, match=f"launch argument {name}:=") as caught:
            launch_actions(launch_module, **{name: value})
        assert repr(value) in str(caught.value)
    with pytest.raises(ValueError, match="image_qos_depth:='0'.*in \\[1, 100\\]"):
        launch_actions(launch_module, image_qos_depth="0")


@pytest.mark.parametrize("frontend", ["orb", "sift", "superpoint", "aliked", "disk", "auto"])
def test_device_is_checked_for_every_frontend(launch_module, frontend: str) -> None:
    with pytest.raises(ValueError, match="launch argument device:='tpu'.*auto, cpu, cuda"):
        launch_actions(launch_module, frontend=frontend, device="tpu")
    _, (node, _) = launch_actions(launch_module, frontend=frontend, device="cuda:1")
    assert node.kwargs["parameters"][-1]["device"] == "cuda:1"


def test_preset_names_a_scene_file(launch_module) -> None:
    for preset in ("indoor", "outdoor", "fast_cpu"):
        _, (node, _) = launch_actions(launch_module, preset=preset)
        files = node.kwargs["parameters"][:-1]
        assert files == [
            str(PROJECT_ROOT / "config" / "matcher.yaml"),
            f"{PROJECT_ROOT}/config/{preset}.yaml",
        ]
        assert Path(files[-1]).is_file()
    with pytest.raises(
        ValueError, match="preset:='lightglue'.*frontend:=aliked matcher:=lightglue"
    ):
        launch_actions(launch_module, preset="lightglue")


def remapped(node: Recorded) -> dict[str, str]:
    return dict(node.kwargs["remappings"])


def test_camera_info_follows_the_image_namespace_unless_given(launch_module) -> None:
    _, (matcher, _, odometry) = launch_actions(
        launch_module, image="/cam/image_raw", odometry="true"
    )
    assert remapped(matcher)["image"] == "/cam/image_raw"
    assert remapped(matcher)["camera_info"] == "/cam/camera_info"
    assert remapped(odometry)["camera_info"] == "/cam/camera_info"
    _, (matcher, _) = launch_actions(launch_module)
    assert remapped(matcher)["camera_info"] == "camera_info"  # relative, in the namespace
    _, (matcher, _, odometry) = launch_actions(
        launch_module, image="/cam/image_raw", camera_info="/calib/info", odometry="true"
    )
    assert remapped(matcher)["camera_info"] == remapped(odometry)["camera_info"] == "/calib/info"


def test_input_modes_remap_the_driver_topics_and_give_odometry_the_frame_camera(
    launch_module,
) -> None:
    _, (matcher, _, odometry) = launch_actions(
        launch_module,
        input="stereo",
        left_image="/zed/left/image_rect",
        left_camera_info="/zed/left/camera_info",
        sync_slop_s="0.02",
        odometry="true",
    )
    remaps = remapped(matcher)
    assert remaps["left/image_rect"] == "/zed/left/image_rect"
    assert remaps["right/image_rect"] == "right/image_rect"  # the default: the node's name
    assert remaps["aligned_depth_to_color/image_raw"] == "aligned_depth_to_color/image_raw"
    assert remapped(odometry)["camera_info"] == "/zed/left/camera_info"
    overrides = matcher.kwargs["parameters"][-1]
    assert overrides["input"] == "stereo" and overrides["sync.slop_s"] == 0.02
    _, (_, _, odometry) = launch_actions(launch_module, input="rgbd", odometry="true")
    assert remapped(odometry)["camera_info"] == "color/camera_info"
    with pytest.raises(ValueError, match="sync_slop_s:='-1'"):
        launch_actions(launch_module, sync_slop_s="-1")
