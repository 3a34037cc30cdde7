"""``superglue-ros parity --runtime onnxruntime --params FILE --pair IMAGE0 IMAGE1``.

Runs the frontend and matcher of FILE with torch and on their exported ONNX
graphs (written into a temporary folder) on one pair of real images, and
compares, first to last:

* keypoints: >= 99 % of torch's keypoints of each image have an exported one
  within 0.5 px;
* descriptors: cosine >= 0.999 between those keypoints' descriptors (the
  smallest of all);
* matches (each LightGlue form, and SuperGlue): >= 99 % of the matches of
  either run are the same pair of keypoint positions in the other (matches are
  compared by position, as the keypoint order may differ);
* layers (LightGlue's adaptive form): the same number of layers as torch.

The fixed LightGlue form is compared with torch at full depth (early exit and
pruning off), as it is that model. Exit status 0 when all pass; otherwise the
first disagreement is named on the last line.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from superglue_ros.evaluation.pair_parity import compare, export_for
from superglue_ros.tools.common import CliError


def run_pair(args: argparse.Namespace) -> int:
    """The --pair mode of the parity command (see the module doc)."""
    if args.runtime != "onnxruntime":
        raise CliError("--pair compares torch with the exported graphs: give --runtime onnxruntime")
    from superglue_ros.pipeline.registry import choose_networks
    from superglue_ros.tools.common import load_configs

    _, params = load_configs([args.params] if args.params else [], "parity")[0]
    config, _ = choose_networks({**params, "device": args.device, "precision": "fp32"})
    images = [read_pair_image(Path(path)) for path in args.pair]
    with tempfile.TemporaryDirectory(prefix="superglue-ros-parity-") as folder:
        export_for(config, Path(folder))
        checks = compare(config, images, Path(folder))
    for check in checks:
        print(f"{check.name}: {check.detail} -> {'PASS' if check.passed else 'FAIL'}")
    failed = [check for check in checks if not check.passed]
    if failed:
        print(f"parity: FAIL (first disagreement: {failed[0].name}: {failed[0].detail})")
        return 1
    print("parity: PASS")
    return 0


def read_pair_image(path: Path) -> np.ndarray:
    from superglue_ros.io.image_files import read_image

    if not path.is_file():
        raise CliError(f"image {path} does not exist")
    try:
        return read_image(path)
    except ValueError as error:
        raise CliError(str(error)) from error
