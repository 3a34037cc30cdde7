"""Relative-pose evaluation on image pairs with ground truth (the SuperGlue paper's protocol).

The parts of ``superglue-ros eval-pairs``: a pairs file (``name0 name1 rot0 rot1
K0(9) K1(9) T_0to1(16)`` a line), the images resized and rotated with their
intrinsics and pose, each pair matched and scored (pose error, epipolar precision,
matching score), one row per configuration (pose AUC at 5/10/20 degrees).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from superglue_ros.evaluation import metrics

THRESHOLDS = (5.0, 10.0, 20.0)
EPIPOLAR_THRESHOLD = 5e-4
RANSAC_THRESHOLD_PX = 1.0
RANSAC_CONFIDENCE = 0.99999


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
    start = time.perf_counter()
    features0 = pipeline.frontend.extract(images[0])
    features1 = pipeline.frontend.extract(images[1])
    matches0 = np.asarray(pipeline.matcher.match(features0, [features1])[0].matches0)
    elapsed_ms = 1e3 * (time.perf_counter() - start)
    valid = matches0 >= 0
    points0 = np.asarray(features0.keypoints)[valid]
    points1 = np.asarray(features1.keypoints)[matches0[valid]]
    distances = metrics.symmetric_epipolar_distance(points0, points1, t_0to1, *intrinsics)
    correct = int(np.count_nonzero(distances < EPIPOLAR_THRESHOLD))
    estimate = metrics.estimate_relative_pose(
        points0, points1, *intrinsics, RANSAC_THRESHOLD_PX, RANSAC_CONFIDENCE
    )
    return {
        "pose_error_deg": metrics.pose_error_deg(estimate, t_0to1),
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
    errors = np.array([p["pose_error_deg"] for p in per_pair], dtype=np.float64)
    aucs = metrics.pose_auc(errors, THRESHOLDS)
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
