"""Metric code on constructed data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from superglue_ros.evaluation import metrics

K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])


def rotation_about(axis: np.ndarray, degrees: float) -> np.ndarray:
    """Rodrigues' formula: [3, 3] rotation by degrees about axis."""
    axis = axis / np.linalg.norm(axis)
    angle = np.radians(degrees)
    cross = metrics.skew(axis)
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def pose(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3], t[:3, 3] = rotation, translation
    return t


def project(points: np.ndarray, k: np.ndarray) -> np.ndarray:
    """[L, 3] camera points -> [L, 2] pixels."""
    uvw = points @ k.T
    return uvw[:, :2] / uvw[:, 2:]


def scene(count: int = 300, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels of random 3D points seen by two cameras, and the pose between them."""
    rng = np.random.default_rng(seed)
    points = np.column_stack(
        [rng.uniform(-2, 2, count), rng.uniform(-1.5, 1.5, count), rng.uniform(3, 8, count)]
    )
    t_0to1 = pose(rotation_about(np.array([0.2, 1.0, 0.1]), 8.0), np.array([0.5, 0.05, 0.1]))
    points1 = points @ t_0to1[:3, :3].T + t_0to1[:3, 3]
    return project(points, K), project(points1, K), t_0to1


def test_auc_hand_computed() -> None:
    # Curve (0,0) (1,.5) (3,1) then flat: area to 5 = .25 + 1.5 + 2 = 3.75 -> .75.
    assert metrics.pose_auc(np.array([1.0, 3.0]), (5.0,)) == pytest.approx([0.75])
    # Only the first error below 2: area .25 + (2-1)*.5 = .75 over 2.
    assert metrics.pose_auc(np.array([1.0, 3.0]), (2.0,)) == pytest.approx([0.375])
    # Failures (inf) count as misses; all errors 0 give a perfect score.
    assert metrics.pose_auc(np.array([0.0, np.inf]), (10.0,)) == pytest.approx([0.5])
    assert metrics.pose_auc(np.zeros(4), (5.0, 10.0)) == pytest.approx([1.0, 1.0])
    assert metrics.pose_auc(np.array([np.inf]), (5.0,)) == pytest.approx([0.0])


def test_perfect_correspondences_recover_the_pose() -> None:
    points0, points1, t_0to1 = scene()
    distances = metrics.symmetric_epipolar_distance(points0, points1, t_0to1, K, K)
    assert np.max(distances) < 1e-12
    estimate = metrics.estimate_relative_pose(points0, points1, K, K)
    assert estimate is not None and estimate.inliers.all()
    error = metrics.pose_error_deg(estimate, t_0to1)
    assert error < 0.05
    assert metrics.pose_auc(np.array([error] * 3))[0] * 100 > 99.0
    assert metrics.inlier_ratio(points0, points1, K) == pytest.approx(1.0)
    assert metrics.inlier_ratio(points0, points1, None) == pytest.approx(1.0)


def test_epipolar_distance_ignores_translation_scale() -> None:
    points0, points1, t_0to1 = scene(count=20)
    noisy = points1 + 3.0
    scaled = t_0to1.copy()
    scaled[:3, 3] *= 7.0
    np.testing.assert_allclose(
        metrics.symmetric_epipolar_distance(points0, noisy, t_0to1, K, K),
        metrics.symmetric_epipolar_distance(points0, noisy, scaled, K, K),
    )


def test_noise_and_outliers_lower_the_scores() -> None:
    points0, points1, t_0to1 = scene(count=400)
    rng = np.random.default_rng(2)
    noisy1 = points1 + rng.normal(0, 1.5, points1.shape)
    outliers1 = noisy1.copy()
    outliers1[:160] = rng.uniform([0, 0], [640, 480], (160, 2))

    exact = metrics.pose_error_deg(metrics.estimate_relative_pose(points0, points1, K, K), t_0to1)
    noisy = metrics.pose_error_deg(metrics.estimate_relative_pose(points0, noisy1, K, K), t_0to1)
    assert exact < noisy < 10.0

    epipolar = metrics.symmetric_epipolar_distance(points0, outliers1, t_0to1, K, K)
    precision = np.mean(epipolar < 5e-4)
    assert 0.5 < precision < 0.65  # 160 of 400 are outliers; the noisy rest is mostly within

    ratio_clean = metrics.inlier_ratio(points0, noisy1, K, threshold_px=3.0)
    ratio_outliers = metrics.inlier_ratio(points0, outliers1, K, threshold_px=3.0)
    assert ratio_clean > 0.9 and 0.45 < ratio_outliers < 0.7


def test_pose_error_parts() -> None:
    rotation = rotation_about(np.array([0.0, 0.0, 1.0]), 12.0)
    assert metrics.rotation_error_deg(rotation, np.eye(3)) == pytest.approx(12.0)
    # The direction is known up to sign: opposite vectors are no error.
    assert metrics.translation_error_deg(np.array([0, 0, -1.0]), np.array([0, 0, 2.0])) == (
        pytest.approx(0.0)
    )
    assert metrics.translation_error_deg(np.array([1.0, 0, 0]), np.array([0, 0, 1.0])) == (
        pytest.approx(90.0)
    )
    assert metrics.pose_error_deg(None, np.eye(4)) == float("inf")


def test_too_few_matches() -> None:
    points = np.zeros((4, 2))
    assert metrics.estimate_relative_pose(points, points, K, K) is None
    assert metrics.inlier_ratio(points, points, K) is None
    assert metrics.inlier_ratio(np.zeros((7, 2)), np.zeros((7, 2)), None) is None


def test_summary_stats_skip_non_finite() -> None:
    stats = metrics.summary_stats([1.0, 2.0, 3.0, float("nan")])
    assert stats["count"] == 3 and stats["median"] == 2.0 and stats["max"] == 3.0
    assert metrics.summary_stats([])["mean"] is None
