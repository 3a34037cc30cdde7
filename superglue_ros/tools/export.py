"""Export the learned models as ONNX graphs: ``superglue-ros export onnx --out DIR``.

Writes into DIR the graphs of the frontend and matcher of --params (the node's
parameters file; ``auto`` resolved as the node resolves it), from the weights
found by the usual lookup (--weights-dir, $SUPERGLUE_ROS_WEIGHTS, user cache,
the installed permissive files):

* superpoint: superpoint.onnx (nms_radius baked in);
* superglue: superglue_<superglue.weights>.onnx (sinkhorn_iterations baked in);
* aliked: aliked_<aliked.model>_dense.onnx and _descriptors.onnx;
* disk: disk_dense.onnx;
* lightglue: lightglue_<frontend>_fixed.onnx and the folder lightglue_<frontend>_adaptive/.

--networks lists other networks to write instead. The node then runs them with
``runtime: onnxruntime`` and ``onnx_dir: DIR``. What each graph holds:
docs/models.md, "ONNX export".
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from superglue_ros.pipeline.onnx_exports import EXPORTERS
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
    parser.add_argument(
        "--networks",
        default=None,
        metavar="LIST",
        help="comma-separated networks to write (superpoint, superglue, aliked, disk, "
        "lightglue); default: the frontend and matcher of --params",
    )


NETWORKS = ("superpoint", "superglue", "aliked", "disk", "lightglue")


def chosen_networks(args: argparse.Namespace, params: Any) -> list[str]:
    """--networks, or the (auto-resolved) frontend and matcher of params; CliError
    for an unknown name. Classical baselines have nothing to export."""
    if args.networks:
        names = [name.strip() for name in args.networks.split(",") if name.strip()]
        unknown = [name for name in names if name not in NETWORKS]
        if unknown:
            raise CliError(
                f"--networks: unknown {', '.join(unknown)}; known: {', '.join(NETWORKS)}"
            )
        return names
    from superglue_ros.pipeline.registry import choose_networks

    config, _ = choose_networks(params)
    names = [config.text("frontend"), config.text("matcher")]
    return [name for name in names if name in NETWORKS]


def run(args: argparse.Namespace) -> int:
    from superglue_ros.models.onnx_format import DEFAULT_OPSET
    from superglue_ros.tools.common import load_configs

    _, params = load_configs([args.params] if args.params else [], "export")[0]
    opset = DEFAULT_OPSET if args.opset is None else args.opset

    from superglue_ros.models.onnx_export import OnnxExportError, check_opset, writable_directory

    try:
        check_opset(opset)
        out = writable_directory(args.out)
    except OnnxExportError as error:
        raise CliError(str(error)) from error
    weights_dir = args.weights_dir or params["weights_dir"] or None
    names = chosen_networks(args, params)
    if not names:
        raise CliError("nothing to export: the frontend and matcher of --params are classical")
    written: list[tuple[Path, str]] = []
    try:
        for name in names:
            written += EXPORTERS[name](params, weights_dir, out, opset)
    except OnnxExportError as error:
        raise CliError(str(error)) from error
    for path, baked in written:
        size = path.stat().st_size / 2**20
        print(f"wrote {path} ({size:.1f} MiB, opset {opset}, {baked})")
    print(f"run it with parameters runtime: onnxruntime, onnx_dir: {out}")
    return 0
