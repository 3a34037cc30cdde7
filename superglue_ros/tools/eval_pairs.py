"""Relative-pose evaluation on image pairs with ground truth (the SuperGlue paper's protocol).

PAIRS lists one pair a line: ``name0 name1 rot0 rot1 K0(9) K1(9) T_0to1(16)``
(rotations in 90-degree steps, as EXIF; matrices row-major). Images are read as
stored (colour; the frontend converts them, to gray for SuperPoint/ORB/SIFT, to RGB
for ALIKED/DISK), resized with --resize (intrinsics scaled alike) and rotated. Each
--params file's frontend and matcher (built exactly as the pipeline builds them)
match every pair; the pose comes from the essential matrix (RANSAC, 1 px over
the mean focal length in normalised coordinates, confidence 0.99999) and
recoverPose. Reported per configuration: pose AUC at 5/10/20 degrees of
max(rotation error, translation direction error), match precision (symmetric
epipolar distance < 5e-4, normalised coordinates) and matching score (correct
matches / keypoints of image 0), all in percent.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from superglue_ros.tools.common import add_params_argument, build_pipelines, load_configs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pairs", type=Path, metavar="PAIRS", help="pairs_with_gt.txt")
    parser.add_argument("image_dir", type=Path, metavar="IMAGE_DIR", help="folder of the images")
    parser.add_argument(
        "--resize", type=int, nargs=2, metavar=("W", "H"), help="resize images (default: keep)"
    )
    add_params_argument(parser)
    parser.add_argument("--max-pairs", type=int, metavar="N", help="only the first N pairs")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")


def run(args: argparse.Namespace) -> int:
    from superglue_ros.evaluation.pairs import (
        EPIPOLAR_THRESHOLD,
        RANSAC_CONFIDENCE,
        RANSAC_THRESHOLD_PX,
        THRESHOLDS,
        evaluate_pair,
        prepare_pair,
        read_pairs,
        summarise,
        table,
    )

    if args.max_pairs is not None and args.max_pairs < 1:
        raise ValueError(f"--max-pairs must be at least 1, got {args.max_pairs}")
    if args.resize is not None and min(args.resize) < 1:
        raise ValueError(f"--resize needs a positive width and height, got {args.resize}")
    if not args.image_dir.is_dir():
        raise FileNotFoundError(f"image directory {args.image_dir} does not exist")
    pairs = read_pairs(args.pairs, args.max_pairs)
    configs = load_configs(args.params, "eval-pairs")
    pipelines = build_pipelines(configs)
    size = tuple(args.resize) if args.resize is not None else None
    prepared = [prepare_pair(pair, args.image_dir, size) for pair in pairs]
    rows = []
    for (name, _), pipeline in zip(configs, pipelines, strict=True):
        per_pair = []
        for pair, (images, intrinsics, t_0to1) in zip(pairs, prepared, strict=True):
            result = evaluate_pair(pipeline, images, intrinsics, t_0to1)
            per_pair.append({"pair": f"{pair.name0} {pair.name1}", **result})
        rows.append(summarise(name, pipeline.description, per_pair))
    print(table(rows))
    if args.json is not None:
        document = {
            "pairs_file": str(args.pairs),
            "resize": list(size) if size else None,
            "protocol": {
                "ransac_threshold_px": RANSAC_THRESHOLD_PX,
                "ransac_confidence": RANSAC_CONFIDENCE,
                "epipolar_threshold": EPIPOLAR_THRESHOLD,
                "auc_thresholds_deg": list(THRESHOLDS),
            },
            "configs": rows,
        }
        args.json.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")
        print(f"eval-pairs: results in {args.json}", file=sys.stderr)
    return 0
