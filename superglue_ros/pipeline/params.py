"""The pipeline's parameters: one schema shared by the ROS node and the replay tool.

Names are dotted (``keyframes.min_matches``), which is how ROS 2 flattens a
nested ``ros__parameters`` block, so one YAML file configures both shells.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ParamValue = bool | int | float | str


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its default, what it means and what values it accepts."""

    name: str
    default: ParamValue
    description: str
    min_value: float | None = None
    max_value: float | None = None
    choices: tuple[str, ...] | None = None
    runtime: bool = False  # may be changed while running (thresholds only)
    allow_minus_one: bool = False  # -1 means "no limit" despite min_value


PIPELINE_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "frontend",
        "superpoint",
        "Keypoint detector/descriptor.",
        choices=("superpoint", "orb", "sift"),
    ),
    ParamSpec(
        "matcher",
        "superglue",
        "Matcher between the frame and each keyframe.",
        choices=("superglue", "mnn"),
    ),
    ParamSpec("device", "auto", "Torch device: auto (cuda when available), cpu, cuda or cuda:N."),
    ParamSpec(
        "precision",
        "fp32",
        "Network precision; fp16/bf16 use autocast on the device.",
        choices=("fp32", "fp16", "bf16"),
    ),
    ParamSpec(
        "weights_dir",
        "",
        "Directory holding superpoint_v1.pth and superglue_*.pth; "
        "empty: $SUPERGLUE_ROS_WEIGHTS, then the user cache directory.",
    ),
    ParamSpec(
        "max_image_side",
        0,
        "Downscale images whose longer side exceeds this many "
        "pixels before detection (keypoints are reported in original pixels); 0 keeps size.",
        min_value=0,
        max_value=8192,
    ),
    ParamSpec(
        "superpoint.nms_radius",
        4,
        "Non-maximum suppression radius in pixels.",
        min_value=1,
        max_value=32,
    ),
    ParamSpec(
        "superpoint.keypoint_threshold",
        0.005,
        "Minimum detector score of a keypoint.",
        min_value=0.0,
        max_value=1.0,
    ),
    ParamSpec(
        "superpoint.max_keypoints",
        1024,
        "Keep the best N keypoints; -1 keeps all.",
        min_value=1,
        max_value=100000,
        allow_minus_one=True,
    ),
    ParamSpec(
        "superpoint.remove_borders",
        4,
        "Drop keypoints this close to the image border (px).",
        min_value=0,
        max_value=64,
    ),
    ParamSpec(
        "superglue.weights",
        "indoor",
        "Which released SuperGlue checkpoint to load.",
        choices=("indoor", "outdoor"),
    ),
    ParamSpec(
        "superglue.sinkhorn_iterations",
        20,
        "Sinkhorn iterations of optimal transport.",
        min_value=1,
        max_value=1000,
    ),
    ParamSpec(
        "superglue.match_threshold",
        0.2,
        "Minimum matching score of a SuperGlue match.",
        min_value=0.0,
        max_value=1.0,
        runtime=True,
    ),
    ParamSpec(
        "classical.max_keypoints",
        1000,
        "Keypoints per image for the ORB/SIFT baselines.",
        min_value=1,
        max_value=100000,
    ),
    ParamSpec(
        "mnn.ratio_test",
        0.0,
        "Lowe ratio test for mutual nearest neighbour matching; 0 disables it.",
        min_value=0.0,
        max_value=1.0,
        runtime=True,
    ),
    ParamSpec(
        "keyframes.buffer_size",
        4,
        "How many recent keyframes are kept and matched.",
        min_value=1,
        max_value=32,
    ),
    ParamSpec(
        "keyframes.min_matches",
        80,
        "New keyframe when matches to the newest keyframe fall below this.",
        min_value=0,
        max_value=100000,
        runtime=True,
    ),
    ParamSpec(
        "keyframes.min_match_ratio",
        0.3,
        "New keyframe when matches fall below this fraction of the newest keyframe's keypoints.",
        min_value=0.0,
        max_value=1.0,
        runtime=True,
    ),
    ParamSpec(
        "keyframes.max_parallax_px",
        40.0,
        "New keyframe when the median displacement of "
        "matches to the newest keyframe exceeds this (px).",
        min_value=0.0,
        max_value=10000.0,
        runtime=True,
    ),
    ParamSpec(
        "keyframes.max_frames_between",
        20,
        "New keyframe at the latest after this many frames.",
        min_value=1,
        max_value=100000,
        runtime=True,
    ),
)

PIPELINE_SPECS: dict[str, ParamSpec] = {spec.name: spec for spec in PIPELINE_PARAMS}


def defaults(specs: Mapping[str, ParamSpec] = PIPELINE_SPECS) -> dict[str, ParamValue]:
    """The default value of every parameter, by dotted name."""
    return {name: spec.default for name, spec in specs.items()}


def check_value(spec: ParamSpec, value: Any) -> ParamValue:
    """Return value converted to the spec's type, or raise ValueError naming the parameter."""
    kind = type(spec.default)
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"parameter '{spec.name}' must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"parameter '{spec.name}' must be an integer, got {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"parameter '{spec.name}' must be a number, got {value!r}")
        value = float(value)
    elif kind is str:
        if not isinstance(value, str):
            raise ValueError(f"parameter '{spec.name}' must be a string, got {value!r}")
        if spec.choices is not None and value not in spec.choices:
            raise ValueError(
                f"parameter '{spec.name}' must be one of {', '.join(spec.choices)}; got {value!r}"
            )
        return value
    if spec.allow_minus_one and value == -1:
        return value
    low, high = spec.min_value, spec.max_value
    if (low is not None and value < low) or (high is not None and value > high):
        extra = " (or -1)" if spec.allow_minus_one else ""
        raise ValueError(
            f"parameter '{spec.name}' must be in [{low}, {high}]{extra}; got {value!r}"
        )
    return value


def validate(
    values: Mapping[str, Any], specs: Mapping[str, ParamSpec] = PIPELINE_SPECS
) -> dict[str, ParamValue]:
    """Defaults overlaid with values, every value checked. Unknown names are errors."""
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ValueError(f"unknown parameter(s): {', '.join(unknown)}")
    merged = defaults(specs)
    for name, value in values.items():
        merged[name] = check_value(specs[name], value)
    return merged


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{'a.b': 1} -> {'a': {'b': 1}}: the inverse of flatten."""
    tree: dict[str, Any] = {}
    for name, value in flat.items():
        *groups, leaf = name.split(".")
        branch = tree
        for group in groups:
            branch = branch.setdefault(group, {})
        branch[leaf] = value
    return tree


def dump_params_file(path: str | Path, values: Mapping[str, Any], node: str = "/**") -> Path:
    """Write dotted values as a ROS 2 parameters file for ``node`` (all nodes by default)."""
    path = Path(path)
    tree = {node: {"ros__parameters": unflatten(values)}}
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def read_yaml_file(path: Path, what: str) -> Any:
    """The parsed YAML of path; ValueError naming ``what`` and the file when it cannot be."""
    try:
        return yaml.safe_load(path.read_text())
    except OSError as error:
        raise ValueError(f"cannot read {what} {path}: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise ValueError(f"{what} {path} is not valid YAML: {error}") from error


def load_params_file(path: str | Path) -> dict[str, Any]:
    """Read a parameters YAML file into dotted names.

    Accepts the ROS 2 form (``<node name or /**>: {ros__parameters: {...}}``)
    and a plain nested mapping. Values are not validated here.
    """
    path = Path(path)
    tree = read_yaml_file(path, "parameters file")
    if tree is None:
        return {}
    if not isinstance(tree, Mapping):
        raise ValueError(f"parameters file {path} must hold a mapping at the top level")
    sections = [
        v["ros__parameters"]
        for v in tree.values()
        if isinstance(v, Mapping) and "ros__parameters" in v
    ]
    if sections:
        merged: dict[str, Any] = {}
        for section in sections:
            merged.update(flatten(section))
        return merged
    return flatten(tree)
