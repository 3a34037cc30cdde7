"""``superglue-ros``: one entry point, one module per subcommand.

Each subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int``
and keeps heavy imports (torch, rclpy, rosbags) inside ``run``. Only the module
of the subcommand asked for is imported, so one subcommand whose dependency is
missing on a machine does not break the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from superglue_ros.tools.common import EXIT_INTERRUPTED, EXIT_USER_ERROR, CliError

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("superglue_ros.tools.demo", "matcher_node in its own process, a sequence fed to it"),
    "parity": ("superglue_ros.tools.parity", "check the models against reference fixtures"),
    "weights": ("superglue_ros.tools.weights_cli", "find, verify or download the released weights"),
    "bench": ("superglue_ros.tools.bench", "time SuperPoint and SuperGlue per stage"),
    "export": ("superglue_ros.tools.export", "export the learned models as ONNX graphs"),
    "bench-lightglue": (
        "superglue_ros.tools.bench_lightglue",
        "time ALIKED / DISK extraction and batched LightGlue",
    ),
    "bench-onnx": (
        "superglue_ros.tools.bench_onnx",
        "time the learned frame on onnxruntime against torch (ratios, matches kept)",
    ),
    "play": ("superglue_ros.tools.play", "publish an image folder or bag as sensor_msgs/Image"),
    "bag": ("superglue_ros.tools.bag", "write rosbag2 files (from-images, from-dataset)"),
    "replay": ("superglue_ros.tools.replay", "run the pipeline over every frame of a bag"),
    "replay-memory": (
        "superglue_ros.tools.replay_memory",
        "peak memory of replay against the length of the bag",
    ),
    "benchmark": (
        "superglue_ros.tools.benchmark",
        "configurations x sequences x seeds with the back-end: one ATE / RPE / time table",
    ),
    "eval-pairs": ("superglue_ros.tools.eval_pairs", "relative-pose evaluation on image pairs"),
    "generate": ("superglue_ros.tools.generate", "render image sequences with exact ground truth"),
    "vocabulary": ("superglue_ros.tools.vocabulary", "build a bag-of-words loop vocabulary"),
    "homography-bag": (
        "superglue_ros.tools.homography_bag",
        "a bag of one photo warped by known homographies",
    ),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, with the arguments of ``command`` only (all commands are listed)."""
    parser = argparse.ArgumentParser(
        prog="superglue-ros", description="SuperPoint + SuperGlue matching tools for ROS 2."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, summary) in SUBCOMMANDS.items():
        if name != command:
            subparsers.add_parser(name, help=summary, add_help=False)
            continue
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=summary, description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def requested_command(argv: Sequence[str]) -> str | None:
    """The first argument that names a subcommand (options come after it)."""
    return next((arg for arg in argv if arg in SUBCOMMANDS), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(requested_command(argv)).parse_args(argv)
    try:
        return int(args.run(args))
    except (CliError, ValueError, FileNotFoundError) as error:
        print(f"superglue-ros {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"superglue-ros {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
