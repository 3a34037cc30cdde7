"""Geometric metrics for matches: relative pose, epipolar error, pose AUC, inlier ratio.

The relative-pose protocol follows the SuperGlue paper's indoor evaluation:
essential matrix by RANSAC on normalised coordinates, angular error = max of the
rotation and translation-direction errors, AUC of the error curve at 5/10/20
degrees. Every RANSAC call reseeds OpenCV's RNG, so results are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

RANSAC_SEED = 0


def to_normalised(points: np.ndarray, k: np.ndarray) -> np.ndarray:
    """[L, 2] pixels -> [L, 2] normalised image coordinates ((x - cx) / fx, (y - cy) / fy)."""
    points = np.asarray(points, dtype=np.float64)
    return (points - k[[0, 1], [2, 2]]) / k[[0, 1], [0, 1]]


def skew(v: np.ndarray) -> np.ndarray:
    """[3] -> [3, 3] cross-product matrix."""
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


def symmetric_epipolar_distance(
    points0: np.ndarray, points1: np.ndarray, t_0to1: np.ndarray, k0: np.ndarray, k1: np.ndarray
) -> np.ndarray:
    """[L] squared symmetric epipolar distance in normalised coordinates.

    points0, points1: [L, 2] matched pixels; t_0to1: [4, 4] pose mapping camera-0
    points to camera 1; k0, k1: [3, 3] intrinsics. Invariant to the scale of the
    translation. A match is correct below 5e-4 in the SuperGlue protocol.
    """
    if len(points0) == 0:
        return np.zeros(0)
    x0 = np.hstack([to_normalised(points0, k0), np.ones((len(points0), 1))])
    x1 = np.hstack([to_normalised(points1, k1), np.ones((len(points1), 1))])
    essential = skew(t_0to1[:3, 3]) @ t_0to1[:3, :3]
    line1 = x0 @ essential.T  # epipolar lines in image 1
    line0 = x1 @ essential  # epipolar lines in image 0
    residual = np.sum(x1 * line1, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return residual**2 * (
            1.0 / (line1[:, 0] ** 2 + line1[:, 1] ** 2)
            + 1.0 / (line0[:, 0] ** 2 + line0[:, 1] ** 2)
        )


@dataclass
class PoseEstimate:
    """R: [3, 3], t: [3] unit direction, inliers: [L] bool."""

    rotation: np.ndarray
    translation: np.ndarray
    inliers: np.ndarray


def estimate_relative_pose(
    points0: np.ndarray,
    points1: np.ndarray,
    k0: np.ndarray,
    k1: np.ndarray,
    threshold_px: float = 1.0,
    confidence: float = 0.99999,
) -> PoseEstimate | None:
    """Pose of camera 1 relative to camera 0 from [L, 2] matched pixels, None if impossible.

    RANSAC on the essential matrix in normalised coordinates, the pixel threshold
    divided by the mean focal length; of several solutions the one with the most
    cheirality-checked inliers wins.
    """
    if len(points0) < 5:
        return None
    mean_focal = np.mean([k0[0, 0], k0[1, 1], k1[0, 0], k1[1, 1]])
    n0, n1 = to_normalised(points0, k0), to_normalised(points1, k1)
    cv2.setRNGSeed(RANSAC_SEED)
    essential, mask = cv2.findEssentialMat(
        n0, n1, np.eye(3), method=cv2.RANSAC, prob=confidence, threshold=threshold_px / mean_focal
    )
    if essential is None or mask is None:
        return None
    best: PoseEstimate | None = None
    best_count = -1
    for candidate in np.split(essential, len(essential) // 3):
        count, rotation, translation, pose_mask = cv2.recoverPose(
            candidate, n0, n1, np.eye(3), 1e9, mask=mask.copy()
        )[:4]
        if count > best_count:
            best_count = count
            inliers = pose_mask.ravel() > 0
            best = PoseEstimate(rotation, translation.ravel(), inliers)
    return best


def rotation_error_deg(rotation: np.ndarray, rotation_gt: np.ndarray) -> float:
    """Angle of R_gt^T R in degrees."""
    cos = (np.trace(rotation_gt.T @ rotation) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def translation_error_deg(translation: np.ndarray, translation_gt: np.ndarray) -> float:
    """Angle between translation directions in degrees, up to sign (E fixes t up to scale)."""
    norms = np.linalg.norm(translation) * np.linalg.norm(translation_gt)
    if norms == 0:
        return 180.0 if np.linalg.norm(translation_gt) > 0 else 0.0
    cos = np.clip(np.dot(translation, translation_gt) / norms, -1.0, 1.0)
    angle = float(np.degrees(np.arccos(cos)))
    return min(angle, 180.0 - angle)


def pose_error_deg(estimate: PoseEstimate | None, t_0to1: np.ndarray) -> float:
    """max(rotation error, translation direction error) in degrees; inf without a pose."""
    if estimate is None:
        return float("inf")
    return max(
        rotation_error_deg(estimate.rotation, t_0to1[:3, :3]),
        translation_error_deg(estimate.translation, t_0to1[:3, 3]),
    )


def pose_auc(errors: np.ndarray, thresholds: tuple[float, ...] = (5.0, 10.0, 20.0)) -> list[float]:
    """Area under the recall-vs-error curve up to each threshold, normalised to [0, 1].

    errors: [P] degrees (inf for failures). The curve starts at (0, 0), steps
    through the sorted errors with recall i/P and is integrated with the
    trapezoid rule, held flat from the last error below the threshold to it.
    """
    errors = np.sort(np.asarray(errors, dtype=np.float64))
    if errors.size == 0:
        return [float("nan")] * len(thresholds)
    recall = np.arange(1, errors.size + 1) / errors.size
    errors = np.concatenate([[0.0], errors])
    recall = np.concatenate([[0.0], recall])
    aucs = []
    for threshold in thresholds:
        last = int(np.searchsorted(errors, threshold))
        x = np.concatenate([errors[:last], [threshold]])
        y = np.concatenate([recall[:last], [recall[last - 1]]])
        area = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))
        aucs.append(area / threshold)
    return aucs


def inlier_ratio(
    points0: np.ndarray, points1: np.ndarray, k: np.ndarray | None, threshold_px: float = 1.0
) -> float | None:
    """Fraction of [L, 2] matches consistent with one epipolar geometry, None if too few.

    With intrinsics k ([3, 3], both images from the same camera): essential
    matrix RANSAC, threshold_px / mean focal length in normalised coordinates;
    without: fundamental matrix RANSAC in pixels. Needs 5 (resp. 8) matches.
    """
    cv2.setRNGSeed(RANSAC_SEED)
    if k is not None:
        if len(points0) < 5:
            return None
        mean_focal = (k[0, 0] + k[1, 1]) / 2.0
        _, mask = cv2.findEssentialMat(
            to_normalised(points0, k),
            to_normalised(points1, k),
            np.eye(3),
            method=cv2.RANSAC,
            prob=0.999,
            threshold=threshold_px / mean_focal,
        )
    else:
        if len(points0) < 8:
            return None
        _, mask = cv2.findFundamentalMat(
            np.asarray(points0, np.float64),
            np.asarray(points1, np.float64),
            cv2.FM_RANSAC,
            threshold_px,
            0.999,
        )
    if mask is None:
        return 0.0
    return float(np.count_nonzero(mask)) / len(points0)


def summary_stats(values: list[float] | np.ndarray) -> dict[str, float | int | None]:
    """count, mean, median, p10, p90, min, max of the finite values (None when empty)."""
    array = np.asarray(values, dtype=np.float64)
    array = array[np.isfinite(array)]
    if array.size == 0:
        return dict.fromkeys(("mean", "median", "p10", "p90", "min", "max"), None) | {"count": 0}
    return {
        "count": int(array.size),
        "mean": float(np.mean(array)),
        "median": float(np.median(array)),
        "p10": float(np.percentile(array, 10)),
        "p90": float(np.percentile(array, 90)),
        "min": float(np.min(array)),
        "max": float(np.max(array)),
    }


def homography_errors(
    keyframe_points: np.ndarray,
    frame_points: np.ndarray,
    keyframe_h: np.ndarray,
    frame_h: np.ndarray,
) -> np.ndarray:
    """[L] pixel distances between each frame point and its keyframe point mapped into the frame.

    keyframe_h / frame_h: [3, 3] homographies from a common reference frame to the
    keyframe / the frame; the keyframe point goes through frame_h @ inv(keyframe_h).
    """
    if len(keyframe_points) == 0:
        return np.zeros(0)
    mapping = frame_h @ np.linalg.inv(keyframe_h)
    points = np.hstack(
        [np.asarray(keyframe_points, np.float64), np.ones((len(keyframe_points), 1))]
    )
    mapped = points @ mapping.T
    mapped = mapped[:, :2] / mapped[:, 2:3]
    return np.linalg.norm(mapped - np.asarray(frame_points, np.float64), axis=1)
