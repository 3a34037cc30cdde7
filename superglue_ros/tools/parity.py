"""Check SuperPoint / SuperGlue against reference-parity fixtures.

A fixture (see ../shared/fixtures/README.md, beside this repository) holds a
model configuration, its weights, inputs and the reference implementation's
outputs. The models are built from that configuration and weights (any
descriptor size, GNN depth, Sinkhorn iterations, thresholds, NMS radius, border
or keypoint limit), run in float32, and compared. Exit status 0 only when
every number is within the tolerances:

  keypoints: same pixel set; at most 0.5% differ, each at a score tie (within
  1e-6 of the top-k cut-off or of the threshold); scores: max abs diff <= 1e-5;
  descriptors: cosine >= 0.9999; log assignment: max abs diff <= 1e-3;
  matches: identical except where the reference score is within 1e-4 of the threshold.

With --runtime onnxruntime the models are exported to ONNX (a temporary folder)
and the exported graphs run through the pipeline's onnxruntime runtime
(pipeline/onnx_runtime.py: the graphs plus its keypoint selection and descriptor
sampling) are compared, with the same tolerances.

With --params FILE --pair IMAGE0 IMAGE1 --runtime onnxruntime, the frontend and
matcher of FILE (ALIKED / DISK / SuperPoint, LightGlue in both ONNX forms, or
SuperGlue) are compared on a real image pair instead: tools/parity_pair.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from superglue_ros.evaluation.parity import (
    Runtime,
    check_superglue,
    check_superpoint,
    load_fixture,
)
from superglue_ros.tools.common import CliError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--superpoint", type=Path, help="SuperPoint fixture (.npz)")
    parser.add_argument("--superglue", type=Path, help="SuperGlue fixture (.npz)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument(
        "--runtime",
        choices=["torch", "onnxruntime"],
        default="torch",
        help="run the torch models, or their exported ONNX graphs with onnxruntime",
    )
    parser.add_argument(
        "--params", type=Path, default=None, metavar="FILE", help="with --pair: parameters file"
    )
    parser.add_argument(
        "--pair",
        nargs=2,
        type=Path,
        metavar=("IMAGE0", "IMAGE1"),
        help="compare torch and the exported graphs of --params on this image pair "
        "(needs --runtime onnxruntime; see tools/parity_pair.py)",
    )


def run(args: argparse.Namespace) -> int:
    if args.pair is not None:
        from superglue_ros.tools.parity_pair import run_pair

        return run_pair(args)
    if args.superpoint is None and args.superglue is None:
        raise CliError("give --superpoint FILE, --superglue FILE or both, or --pair IMAGE0 IMAGE1")
    import tempfile

    import torch

    device = torch.device(args.device) if args.runtime == "torch" else args.device
    print(f"runtime: {args.runtime} on {args.device}")
    ok = True
    with tempfile.TemporaryDirectory(prefix="superglue-ros-parity-") as workdir:
        runtime = Runtime(args.runtime, device, Path(workdir))
        if args.superpoint is not None:
            ok &= check_superpoint(load_fixture(args.superpoint), runtime)
        if args.superglue is not None:
            ok &= check_superglue(load_fixture(args.superglue), runtime)
    print(f"parity: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1
