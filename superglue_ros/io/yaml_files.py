"""YAML files: parameters files (ROS 2 form or plain) and the other YAML inputs.

Parameters files hold the pipeline's dotted names (``keyframes.min_matches``)
nested as ROS 2 nests them; :func:`load_params_file` flattens them for
:func:`superglue_ros.pipeline.params.validate`, :func:`dump_params_file` writes them.
The pipeline reads no file itself, so YAML parsing lives here, with the other inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from superglue_ros.pipeline.params import flatten, unflatten


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
