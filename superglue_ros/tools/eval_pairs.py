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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from superglue_ros.tools.common import add_params_argument, build_pipelines, load_configs

THRESHOLDS = (5.0, 10.0, 20.0)
EPIPOLAR_THRESHOLD = 5e-4
RANSAC_THRESHOLD_PX = 1.0
RANSAC_CONFIDENCE = 0.99999


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pairs", type=Path, metavar="PAIRS", help="pairs_with_gt.txt")
    parser.add_argument("image_dir", type=Path, metavar="IMAGE_DIR", help="folder of the images")
    parser.add_argument(
        "--resize", type=int, nargs=2, metavar=("W", "H"), help="resize images (default: keep)"
    )
    add_params_argument(parser)
    parser.add_argument("--max-pairs", type=int, metavar="N", help="only the first N pairs")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")


@dataclass
class Pair:
    """One evaluation pair; t_0to1 maps camera-0 points to camera-1 coordinates."""

    name0: str
    name1: str
    rotation0: int
    rotation1: int
    k0: np.ndarray  # [3, 3]
    k1: np.ndarray  # [3, 3]
    t_0to1: np.ndarray  # [4, 4]


def read_pairs(path: Path, max_pairs: int | None = None) -> list[Pair]:
    """Parse a pairs_with_gt.txt file (38 values a line; blank and # lines skipped)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise ValueError(f"cannot read pairs file {path}: {error.strerror}") from error
    pairs = []
    for number, line in enumerate(lines, 1):
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        if len(tokens) != 38:
            raise ValueError(
                f"{path}:{number}: expected 38 values (names, rotations, K0, K1, T_0to1), "
                f"got {len(tokens)}"
            )
        try:
            values = np.array(tokens[2:], dtype=np.float64)
        except ValueError as error:
            raise ValueError(f"{path}:{number}: {error}") from error
        pairs.append(
            Pair(
                tokens[0],
                tokens[1],
                int(values[0]) % 4,
                int(values[1]) % 4,
                values[2:11].reshape(3, 3),
                values[11:20].reshape(3, 3),
                values[20:36].reshape(4, 4),
            )
        )
    if not pairs:
        raise ValueError(f"no pairs in {path}")
    return pairs[:max_pairs] if max_pairs is not None else pairs


def resize_image(
    image: np.ndarray, k: np.ndarray, size: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """[H, W(, C)] image resized to size (W, H) and K scaled alike (as in the paper's protocol)."""
    import cv2

    if size is None:
        return image, k
    height, width = image.shape[:2]
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    scale = np.diag([size[0] / width, size[1] / height, 1.0])
    return resized, scale @ k


def rotate_quarter_turns(
    image: np.ndarray, k: np.ndarray, turns: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """np.rot90(image, turns) (counter-clockwise) with the matching intrinsics and rotation.

    Returns the image, its [3, 3] K and the [3, 3] rotation taking camera
    coordinates into the rotated camera's. A pixel (x, y) of a W-wide image moves
    to (y, W - 1 - x) per turn.
    """
    k = k.copy()
    rotation = np.eye(3)
    step = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    for _ in range(turns % 4):
        width = image.shape[1]
        fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
        k = np.array([[fy, 0.0, cy], [0.0, fx, width - 1 - cx], [0.0, 0.0, 1.0]])
        rotation = step @ rotation
        image = np.rot90(image)
    return np.ascontiguousarray(image), k, rotation


def prepare_pair(
    pair: Pair, image_dir: Path, size: tuple[int, int] | None
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Both images, their intrinsics and the ground-truth [4, 4] pose, resized and rotated."""
    from superglue_ros.io.image_files import read_image

    images, intrinsics, rotations = [], [], []
    for name, k, turns in (
        (pair.name0, pair.k0, pair.rotation0),
        (pair.name1, pair.k1, pair.rotation1),
    ):
        path = image_dir / name
        if not path.is_file():
            raise FileNotFoundError(f"image {path} does not exist")
        image, k = resize_image(read_image(path), k, size)
        image, k, rotation = rotate_quarter_turns(image, k, turns)
        images.append(image)
        intrinsics.append(k)
        rotations.append(
            np.block([[rotation, np.zeros((3, 1))], [np.zeros((1, 3)), np.ones((1, 1))]])
        )
    t_0to1 = rotations[1] @ pair.t_0to1 @ rotations[0].T
    return images, intrinsics, t_0to1


def evaluate_pair(
    pipeline: Any, images: list[np.ndarray], intrinsics: list[np.ndarray], t_0to1: np.ndarray
) -> dict[str, Any]:
    """Match one pair with the pipeline's frontend and matcher; its pose and match metrics."""
    from superglue_ros.tools import evaluate

    start = time.perf_counter()
    features0 = pipeline.frontend.extract(images[0])
    features1 = pipeline.frontend.extract(images[1])
    matches0 = np.asarray(pipeline.matcher.match(features0, [features1])[0].matches0)
    elapsed_ms = 1e3 * (time.perf_counter() - start)
    valid = matches0 >= 0
    points0 = np.asarray(features0.keypoints)[valid]
    points1 = np.asarray(features1.keypoints)[matches0[valid]]
    distances = evaluate.symmetric_epipolar_distance(points0, points1, t_0to1, *intrinsics)
    correct = int(np.count_nonzero(distances < EPIPOLAR_THRESHOLD))
    estimate = evaluate.estimate_relative_pose(
        points0, points1, *intrinsics, RANSAC_THRESHOLD_PX, RANSAC_CONFIDENCE
    )
    return {
        "pose_error_deg": evaluate.pose_error_deg(estimate, t_0to1),
        "keypoints": [len(features0), len(features1)],
        "matches": len(points0),
        "correct_matches": correct,
        "precision": correct / len(points0) if len(points0) else 0.0,
        "matching_score": correct / len(features0) if len(features0) else 0.0,
        "ransac_inliers": int(estimate.inliers.sum()) if estimate is not None else 0,
        "ms": elapsed_ms,
    }


def summarise(name: str, description: str, per_pair: list[dict[str, Any]]) -> dict[str, Any]:
    """One configuration's row: AUCs, precision and matching score in percent, means."""
    from superglue_ros.tools import evaluate

    errors = np.array([p["pose_error_deg"] for p in per_pair], dtype=np.float64)
    aucs = evaluate.pose_auc(errors, THRESHOLDS)
    row: dict[str, Any] = {"name": name, "description": description, "pairs": len(per_pair)}
    row.update({f"auc@{t:g}": 100.0 * a for t, a in zip(THRESHOLDS, aucs, strict=True)})
    row["precision"] = 100.0 * float(np.mean([p["precision"] for p in per_pair]))
    row["matching_score"] = 100.0 * float(np.mean([p["matching_score"] for p in per_pair]))
    row["keypoints"] = float(np.mean([np.mean(p["keypoints"]) for p in per_pair]))
    row["matches"] = float(np.mean([p["matches"] for p in per_pair]))
    row["ms_per_pair"] = float(np.median([p["ms"] for p in per_pair]))
    # A failed estimate (no pose) has an infinite error: null in JSON.
    row["per_pair"] = [
        {**p, "pose_error_deg": p["pose_error_deg"] if np.isfinite(p["pose_error_deg"]) else None}
        for p in per_pair
    ]
    return row


def table(rows: list[dict[str, Any]]) -> str:
    """The results as a Markdown table, one row per configuration."""
    header = (
        "| config | pipeline | pairs | AUC@5 | AUC@10 | AUC@20 | precision | matching score "
        "| keypoints | matches | ms/pair |"
    )
    lines = [header, "|" + " --- |" * 11]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['description']} | {r['pairs']} | {r['auc@5']:.2f} "
            f"| {r['auc@10']:.2f} | {r['auc@20']:.2f} | {r['precision']:.1f} "
            f"| {r['matching_score']:.1f} | {r['keypoints']:.0f} | {r['matches']:.0f} "
            f"| {r['ms_per_pair']:.0f} |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
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
