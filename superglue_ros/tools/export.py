"""Export the learned models as ONNX graphs: ``superglue-ros export onnx --out DIR``.

Writes DIR/superpoint.onnx and DIR/superglue_<superglue.weights>.onnx from the
weights found by the usual lookup (--weights-dir, $SUPERGLUE_ROS_WEIGHTS, user
cache), with the options of --params (the node's parameters file): nms_radius and
sinkhorn_iterations are baked into the graphs and recorded in their metadata, so
the node then runs them with ``runtime: onnxruntime`` and ``onnx_dir: DIR``.
What each graph holds: docs/models.md, "ONNX export".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from superglue_ros.tools.cli import CliError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("format", choices=["onnx"], help="what to export to (onnx)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")
    parser.add_argument(
        "--params", type=Path, default=None, metavar="FILE", help="parameters file (node's YAML)"
    )
    parser.add_argument(
        "--weights-dir", default=None, help="directory of the .pth weights (overrides --params)"
    )
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17)")


def run(args: argparse.Namespace) -> int:
    from superglue_ros.models.onnx_format import DEFAULT_OPSET, SUPERPOINT_FILE, superglue_file
    from superglue_ros.tools.common import load_configs

    _, params = load_configs([args.params] if args.params else [], "export")[0]
    opset = DEFAULT_OPSET if args.opset is None else args.opset

    from superglue_ros.models.onnx_export import (
        OnnxExportError,
        check_opset,
        export_superglue,
        export_superpoint,
        writable_directory,
    )
    from superglue_ros.models.weights import load_superglue, load_superpoint

    try:
        check_opset(opset)
        out = writable_directory(args.out)
    except OnnxExportError as error:
        raise CliError(str(error)) from error
    weights_dir = args.weights_dir or params["weights_dir"] or None
    superpoint = load_superpoint(weights_dir, {"nms_radius": params["superpoint.nms_radius"]})
    which = params["superglue.weights"]
    superglue = load_superglue(
        which, weights_dir, {"sinkhorn_iterations": params["superglue.sinkhorn_iterations"]}
    )
    try:
        written = [
            export_superpoint(superpoint, out / SUPERPOINT_FILE, opset),
            export_superglue(superglue, out / superglue_file(which), opset),
        ]
    except OnnxExportError as error:
        raise CliError(str(error)) from error
    for path, model in zip(written, (superpoint, superglue), strict=True):
        baked = {k: model.conf[k] for k in ("nms_radius", "sinkhorn_iterations") if k in model.conf}
        size = path.stat().st_size / 2**20
        print(f"wrote {path} ({size:.1f} MiB, opset {opset}, baked {json.dumps(baked)})")
    print(f"run it with parameters runtime: onnxruntime, onnx_dir: {out}")
    return 0
