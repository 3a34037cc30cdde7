"""The arguments of launch/matcher.launch.py, checked before any node starts.

Every argument is checked here, and a bad value is refused with a message that
names it (``launch argument image_qos_depth:='abc' ...``); the values that
become node parameters are checked by the nodes' own parameter specs, so the
launch file and the node accept the same values. Pure Python (neither launch nor
rclpy is imported): the launch file calls :func:`check` with its argument
values, the tests call it with plain dicts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from superglue_ros.io.frames import CAMERA_INFO_TOPICS, IMAGE_TOPICS
from superglue_ros.io.topics import camera_info_topic_for
from superglue_ros.io.yaml_files import load_params_file
from superglue_ros.pipeline.params import check_value
from superglue_ros.ros.params import ALL_SPECS

# Scene presets: config/<preset>.yaml, loaded after params_file. They choose
# thresholds for a kind of scene; the networks are chosen by frontend/matcher
# (the presets set auto: SuperPoint + SuperGlue where its weights are installed,
# else ALIKED + LightGlue).
PRESETS = ("none", "indoor", "outdoor", "fast_cpu")
# Launch arguments that are node parameters of the same name, checked by its spec.
NODE_PARAMETERS = (
    "weights_dir",
    "device",
    "precision",
    "frontend",
    "matcher",
    "runtime",
    "onnx_dir",
    "image_reliability",
    "image_qos_depth",
    "input",
)
# Launch arguments for node parameters whose dotted names a launch argument cannot carry.
RENAMED_PARAMETERS = {"sync_policy": "sync.policy", "sync_slop_s": "sync.slop_s"}
# Stereo / RGB-D topics: launch argument -> the node's topic it remaps (defaults: the
# node's own names, which follow stereo_image_proc and realsense2_camera).
INPUT_TOPIC_ARGUMENTS = {
    "left_image": IMAGE_TOPICS["stereo"][0],
    "right_image": IMAGE_TOPICS["stereo"][1],
    "left_camera_info": CAMERA_INFO_TOPICS["stereo"][0],
    "right_camera_info": CAMERA_INFO_TOPICS["stereo"][1],
    "color_image": IMAGE_TOPICS["rgbd"][0],
    "depth_image": IMAGE_TOPICS["rgbd"][1],
    "color_camera_info": CAMERA_INFO_TOPICS["rgbd"][0],
}
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")
BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
# ROS 2 names: tokens of letters, digits and underscores, none starting with a digit.
_TOKEN = r"[A-Za-z_][A-Za-z0-9_]*"
TOPIC = re.compile(rf"(~/|/)?{_TOKEN}(/{_TOKEN})*")
NAMESPACE = re.compile(rf"/?{_TOKEN}(/{_TOKEN})*")
NODE_NAME = re.compile(_TOKEN)


class LaunchArgumentError(ValueError):
    """A launch argument has a value the launch cannot use; the message names it."""


@dataclass(frozen=True)
class LaunchSettings:
    """The checked arguments: what the launch file passes to its nodes."""

    params_files: list[str]  # params_file, then the preset's file
    overrides: dict[str, Any]  # node parameters given as arguments (typed)
    image: str
    camera_info: str  # the argument, else beside the image topic
    input: str  # the input mode: the argument, else the parameter files', else mono
    input_remappings: list[tuple[str, str]]  # (node topic, topic) of the stereo/rgbd inputs
    frame_camera_info: str  # the camera_info of the frame's image (for odometry_node)
    vins_topic: str
    namespace: str
    node_name: str
    log_level: str
    use_sim_time: bool
    odometry: bool


def _refuse(name: str, value: str, expected: str) -> LaunchArgumentError:
    return LaunchArgumentError(f"launch argument {name}:={value!r} is invalid: {expected}")


def _topic(name: str, value: str) -> str:
    if TOPIC.fullmatch(value) is None:
        raise _refuse(name, value, "expected a ROS topic name such as /camera/image_raw")
    return value


def _flag(name: str, value: str) -> bool:
    try:
        return BOOLEANS[value.lower()]
    except KeyError:
        raise _refuse(name, value, "expected true or false") from None


def _node_parameter(name: str, value: str, parameter: str | None = None) -> Any:
    """The typed value of launch argument name for node parameter ``parameter`` (or name)."""
    spec = ALL_SPECS[parameter or name]
    typed: Any = value
    kind = type(spec.default)
    if kind in (int, float):
        try:
            typed = kind(value)
        except ValueError:
            expected = "an integer" if kind is int else "a number"
            raise _refuse(name, value, f"expected {expected}") from None
    try:
        return check_value(spec, typed)
    except ValueError as error:
        raise _refuse(name, value, str(error)) from None


def _input_mode(overrides: dict[str, Any], params_files: list[str]) -> str:
    """The input mode the node will run: the argument, else the last file that sets it."""
    if "input" in overrides:
        return str(overrides["input"])
    mode = "mono"
    for path in params_files:
        try:
            mode = str(load_params_file(path).get("input", mode))
        except ValueError as error:
            raise LaunchArgumentError(f"cannot read {path}: {error}") from None
    return mode


def _preset_file(value: str, share: str) -> list[str]:
    if value not in PRESETS:
        raise _refuse(
            "preset",
            value,
            f"presets name a kind of scene: {', '.join(PRESETS)} (to choose the networks, "
            "set frontend and matcher, e.g. frontend:=aliked matcher:=lightglue)",
        )
    return [] if value == "none" else [f"{share}/config/{value}.yaml"]


def check(values: Mapping[str, str], share: str) -> LaunchSettings:
    """The launch arguments (name -> string value, every declared one) checked and typed.

    share: the package's share directory (for config/<preset>.yaml). Raises
    LaunchArgumentError naming the first bad argument.
    """
    params_file = values["params_file"]
    if not Path(params_file).is_file():
        raise _refuse("params_file", params_file, "no such file")
    params_files = [params_file, *_preset_file(values["preset"], share)]
    overrides: dict[str, Any] = {}
    for name in NODE_PARAMETERS:
        if values[name]:
            overrides[name] = _node_parameter(name, values[name])
    for name, parameter in RENAMED_PARAMETERS.items():
        if values[name]:
            overrides[parameter] = _node_parameter(name, values[name], parameter)
    input_remappings = [
        (topic, _topic(name, values[name])) for name, topic in INPUT_TOPIC_ARGUMENTS.items()
    ]
    if values["weights_dir"] and not Path(values["weights_dir"]).expanduser().exists():
        raise _refuse("weights_dir", values["weights_dir"], "no such file or directory")
    if values["onnx_dir"] and Path(values["onnx_dir"]).expanduser().is_file():
        raise _refuse("onnx_dir", values["onnx_dir"], "a file, not a directory")
    image = _topic("image", values["image"])
    camera_info = values["camera_info"]
    camera_info = _topic("camera_info", camera_info) if camera_info else None
    namespace = values["namespace"]
    if namespace and NAMESPACE.fullmatch(namespace) is None:
        raise _refuse("namespace", namespace, "expected a ROS namespace such as /front")
    if NODE_NAME.fullmatch(values["node_name"]) is None:
        raise _refuse("node_name", values["node_name"], "expected letters, digits and underscores")
    if values["log_level"].lower() not in LOG_LEVELS:
        raise _refuse("log_level", values["log_level"], f"expected one of {', '.join(LOG_LEVELS)}")
    camera_info = camera_info or camera_info_topic_for(image)
    mode = _input_mode(overrides, params_files)
    frame_camera_info = {
        "mono": camera_info,
        "stereo": values["left_camera_info"],
        "rgbd": values["color_camera_info"],
    }[mode]
    return LaunchSettings(
        params_files=params_files,
        overrides=overrides,
        image=image,
        camera_info=camera_info,
        input=mode,
        input_remappings=input_remappings,
        frame_camera_info=frame_camera_info,
        vins_topic=_topic("vins_topic", values["vins_topic"]),
        namespace=namespace,
        node_name=values["node_name"],
        log_level=values["log_level"].lower(),
        use_sim_time=_flag("use_sim_time", values["use_sim_time"]),
        odometry=_flag("odometry", values["odometry"]),
    )
