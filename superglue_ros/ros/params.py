"""The node's parameters: the pipeline schema plus node-only settings, declared on a ROS node.

The schema part (``NODE_PARAMS``, ``ALL_SPECS``, ``split``) imports nothing from
ROS, so documentation and config checks run anywhere; the declaring part imports
rclpy messages when called.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from superglue_ros.pipeline.params import (
    LOOP_CLOSURE_ENABLED,
    PIPELINE_PARAMS,
    PIPELINE_SPECS,
    Config,
    ParameterError,
    ParamSpec,
    ParamValue,
    check_runtime_changes,
    loop_closure_default,
    validate,
)

NODE_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "image_transport",
        "raw",
        "Input transport: raw subscribes sensor_msgs/Image on 'image'; compressed subscribes "
        "sensor_msgs/CompressedImage (jpeg/png) on '<image>/compressed'.",
        choices=("raw", "compressed"),
    ),
    ParamSpec(
        "image_reliability",
        "best_effort",
        "Reliability of the image and camera_info subscriptions; best_effort is the "
        "sensor-data profile and also receives from reliable publishers.",
        choices=("best_effort", "reliable"),
    ),
    ParamSpec(
        "image_qos_depth",
        1,
        "History depth of the image subscription (frames waiting in DDS).",
        min_value=1,
        max_value=100,
    ),
    ParamSpec(
        "output_qos_depth",
        10,
        "History depth of the correspondences, keyframes, features_vins and matches_image "
        "publishers.",
        min_value=1,
        max_value=1000,
    ),
    ParamSpec(
        "publish_descriptors",
        True,
        "Send descriptors in correspondences/keyframes (about 1 KB per keypoint for "
        "SuperPoint); false sends descriptor_dim 0.",
        runtime=True,
    ),
    ParamSpec(
        "vins_min_track_length",
        2,
        "features_vins sends a feature once its track has been seen this many times "
        "(2 = tracked at least once, as VINS's own feature tracker does).",
        min_value=1,
        max_value=1000,
        runtime=True,
    ),
    ParamSpec(
        "vins_format",
        "mono",
        "features_vins channel layout: mono (VINS-Mono's estimator, one camera) or fusion "
        "(VINS-Fusion's, with a camera id channel; input stereo adds the right camera's points).",
        choices=("mono", "fusion"),
    ),
    ParamSpec(
        "diagnostics_period",
        1.0,
        "Seconds between /diagnostics messages (wall time, also with use_sim_time).",
        min_value=0.1,
        max_value=60.0,
    ),
    ParamSpec(
        "image_starvation_warning",
        5.0,
        "Seconds a matched image publisher may send no frame before the node warns (once, log "
        "and /diagnostics) that QoS is the likely cause; 0 turns the warning off.",
        min_value=0.0,
        max_value=3600.0,
    ),
)

NODE_SPECS: dict[str, ParamSpec] = {spec.name: spec for spec in NODE_PARAMS}
PIPELINE_NAMES = frozenset(spec.name for spec in PIPELINE_PARAMS)
ALL_SPECS: dict[str, ParamSpec] = {spec.name: spec for spec in (*PIPELINE_PARAMS, *NODE_PARAMS)}


@dataclass(frozen=True)
class Settings:
    """The node's validated parameters: the pipeline's and its own."""

    pipeline: Config
    node: Config


def split(values: dict[str, Any]) -> Settings:
    """Validate values (defaults filled in) into pipeline and node settings.

    Raises ParameterError naming every unknown name and bad value.
    """
    problems: list[str] = []
    configs = []
    for specs in (PIPELINE_SPECS, NODE_SPECS):
        try:
            configs.append(validate({k: v for k, v in values.items() if k in specs}, specs))
        except ParameterError as error:
            problems += error.problems
    unknown = sorted(set(values) - set(ALL_SPECS))
    if unknown:
        problems.insert(0, f"unknown parameter(s): {', '.join(unknown)}")
    if problems:
        raise ParameterError(problems)
    return Settings(*configs)


def type_name(spec: ParamSpec) -> str:
    return {bool: "bool", int: "integer", float: "double", str: "string"}[type(spec.default)]


def describe(spec: ParamSpec) -> str:
    """The description with the accepted values spelled out."""
    parts = [spec.description]
    if spec.choices:
        parts.append(f"One of: {', '.join(spec.choices)}.")
    if spec.min_value is not None or spec.max_value is not None:
        extra = " or -1" if spec.allow_minus_one else ""
        parts.append(f"Range [{spec.min_value}, {spec.max_value}]{extra}.")
    parts.append("Can be changed at run time." if spec.runtime else "Read-only after start.")
    return " ".join(parts)


def descriptor_for(spec: ParamSpec) -> Any:
    """rcl_interfaces/ParameterDescriptor: type, description, range, read_only."""
    from rcl_interfaces.msg import (
        FloatingPointRange,
        IntegerRange,
        ParameterDescriptor,
        ParameterType,
    )

    kind = type(spec.default)
    descriptor = ParameterDescriptor(
        name=spec.name,
        type={
            bool: ParameterType.PARAMETER_BOOL,
            int: ParameterType.PARAMETER_INTEGER,
            float: ParameterType.PARAMETER_DOUBLE,
            str: ParameterType.PARAMETER_STRING,
        }[kind],
        description=describe(spec),
        read_only=not spec.runtime,
    )
    if spec.choices:
        descriptor.additional_constraints = f"one of: {', '.join(spec.choices)}"
    if spec.min_value is not None and spec.max_value is not None:
        if kind is int:
            low = -1 if spec.allow_minus_one else int(spec.min_value)
            descriptor.integer_range = [
                IntegerRange(from_value=low, to_value=int(spec.max_value), step=0)
            ]
            if spec.allow_minus_one:
                descriptor.additional_constraints = (
                    f"-1 or [{int(spec.min_value)}, {int(spec.max_value)}]"
                )
        elif kind is float:
            descriptor.floating_point_range = [
                FloatingPointRange(
                    from_value=float(spec.min_value), to_value=float(spec.max_value), step=0.0
                )
            ]
    return descriptor


def declare_specs(node: Any, specs: Iterable[ParamSpec]) -> tuple[dict[str, Any], list[str]]:
    """Declare each spec on node (overrides from --params-file / -p apply).

    Returns the declared values and one line per value of the wrong type or out of
    range (those are left out of the values).
    """
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    errors: list[str] = []
    values: dict[str, Any] = {}
    for spec in specs:
        try:
            parameter = node.declare_parameter(spec.name, spec.default, descriptor_for(spec))
            value = parameter.value
        except InvalidParameterTypeException:
            is_float = type(spec.default) is float
            hint = " (write it with a decimal point, e.g. 40.0)" if is_float else ""
            errors.append(f"parameter '{spec.name}' must be of type {type_name(spec)}{hint}")
            continue
        except InvalidParameterValueException:
            extra = " or -1" if spec.allow_minus_one else ""
            errors.append(
                f"parameter '{spec.name}' must be in [{spec.min_value}, {spec.max_value}]{extra}"
            )
            continue
        values[spec.name] = value
    return values, errors


def declare_all(node: Any) -> Settings:
    """Declare every matcher_node parameter on node and check them.

    Raises ParameterError listing every bad value, each naming its parameter.
    """
    values, errors = declare_specs(node, with_override_defaults(node).values())
    try:
        settings = split(values)
    except ParameterError as error:
        errors += error.problems
    if errors:
        raise ParameterError(errors)
    return settings


def with_override_defaults(node: Any) -> dict[str, ParamSpec]:
    """ALL_SPECS with the defaults that depend on other parameters given to node (params
    file, -p): loop_closure.enabled defaults to true when a map is kept, and is declared
    so (``ros2 param get`` shows the value in use)."""
    overrides = getattr(node, "_parameter_overrides", {}) or {}
    given = {name: getattr(parameter, "value", None) for name, parameter in overrides.items()}
    specs = dict(ALL_SPECS)
    enabled = specs[LOOP_CLOSURE_ENABLED]
    specs[LOOP_CLOSURE_ENABLED] = replace(enabled, default=loop_closure_default(given))
    return specs


def undeclared_overrides(node: Any) -> list[str]:
    """Names given to this node (params file, -p) that it does not declare: likely typos."""
    overrides = getattr(node, "_parameter_overrides", {}) or {}
    declared = set(ALL_SPECS) | {"use_sim_time", "start_type_description_service"}
    return sorted(
        name for name in overrides if name not in declared and not name.startswith("qos_overrides.")
    )


def check_runtime_change(name: str, value: Any) -> tuple[ParamValue | None, str]:
    """(checked value, '') for an accepted run-time change, or (None, reason) to reject it.

    Parameters the node does not own (use_sim_time, ...) are accepted unchanged.
    """
    if name not in ALL_SPECS:
        return value, ""
    try:
        return check_runtime_changes({name: value}, ALL_SPECS)[name], ""
    except ValueError as error:
        return None, str(error)
