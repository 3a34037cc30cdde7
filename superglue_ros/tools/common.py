"""Helpers shared by the subcommands: the user-error type, exit codes and configurations.

Kept apart from ``cli.py`` (the entry point) and from any one subcommand, so a
subcommand never imports another subcommand's module to reuse a helper.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from superglue_ros.pipeline.params import Config
    from superglue_ros.pipeline.pipeline import Pipeline

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # the shell's status for a process ended by SIGINT (128 + 2)
EXIT_DAMAGED_INPUT = 3  # done, but the input bag was damaged: outputs cover its intact part


class CliError(Exception):
    """A problem with the user's input: printed as one line, exit status 2."""


def add_params_argument(parser: argparse.ArgumentParser) -> None:
    """--params FILE ...: one pipeline configuration per file (see load_configs)."""
    parser.add_argument(
        "--params",
        type=Path,
        nargs="+",
        default=[],
        metavar="FILE",
        help="parameter files, one configuration each (default: the defaults)",
    )


def keywords(args: argparse.Namespace, names: Iterable[str], **renamed: str) -> dict[str, Any]:
    """Options as a function's keyword arguments: each of names as it is, and
    keyword=option for the options named otherwise on the command line."""
    return {name: getattr(args, name) for name in names} | {
        keyword: getattr(args, option) for keyword, option in renamed.items()
    }


def config_name(path: Path, taken: set[str]) -> str:
    """The file stem, made unique with a numeric suffix."""
    name, suffix = path.stem, 2
    while name in taken:
        name, suffix = f"{path.stem}_{suffix}", suffix + 1
    return name


def load_configs(paths: list[Path], command: str = "replay") -> list[tuple[str, Config]]:
    """(name, validated pipeline params) per file; the defaults when no file is given.

    Parameters the pipeline does not know (node-only ones in a node's file) are
    ignored with a warning naming ``command``.
    """
    from superglue_ros.io.yaml_files import load_params_file
    from superglue_ros.pipeline.params import PIPELINE_SPECS, validate

    if not paths:
        return [("default", validate({}))]
    configs: list[tuple[str, Config]] = []
    for path in paths:
        values = load_params_file(path)
        ignored = sorted(set(values) - set(PIPELINE_SPECS))
        if ignored:
            print(f"{command}: {path}: ignoring non-pipeline parameters {ignored}", file=sys.stderr)
        pipeline_values = {k: v for k, v in values.items() if k in PIPELINE_SPECS}
        try:
            params = validate(pipeline_values)
        except ValueError as error:
            raise CliError(f"{path}: {error}") from error
        configs.append((config_name(path, {n for n, _ in configs}), params))
    return configs


def build_pipelines(configs: list[tuple[str, Config]]) -> list[Pipeline]:
    """Pipeline.from_params per configuration; bad values and missing weights are user errors."""
    from superglue_ros.pipeline.pipeline import Pipeline

    pipelines = []
    for name, params in configs:
        try:
            pipelines.append(Pipeline.from_params(params))
        except (ValueError, FileNotFoundError) as error:  # WeightsNotFoundError included
            raise CliError(f"configuration {name}: {error}") from error
    return pipelines
