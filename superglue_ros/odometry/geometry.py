"""Two-view and PnP geometry on numpy arrays (OpenCV does the solving).

Poses are [4, 4] float64 camera-to-world matrices (T_wc); OpenCV's solvers
return world-to-camera (T_cw), converted at the boundary. Every RANSAC call
seeds OpenCV's generator first, so a run is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

RANSAC_SEED = 0


def invert(pose: np.ndarray) -> np.ndarray:
    """Inverse of a [4, 4] rigid transform."""
    rotation, translation = pose[:3, :3], pose[:3, 3]
    out = np.eye(4)
    out[:3, :3] = rotation.T
    out[:3, 3] = -rotation.T @ translation
    return out


def make_pose(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """[4, 4] from a [3, 3] rotation and a [3] translation."""
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return pose


def transform(pose: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[N, 3] points mapped by a [4, 4] transform (e.g. camera-to-world: camera -> world)."""
    return points @ pose[:3, :3].T + pose[:3, 3]


def project(k: np.ndarray, world_to_camera: np.ndarray, points: np.ndarray) -> np.ndarray:
    """([N, 2] pixels, [N] depths) of [N, 3] world points."""
    camera = transform(world_to_camera, points)
    depth = camera[:, 2]
    safe = np.where(np.abs(depth) < 1e-12, 1e-12, depth)
    pixels = camera[:, :2] / safe[:, None] * [k[0, 0], k[1, 1]] + [k[0, 2], k[1, 2]]
    return pixels, depth


def reprojection_errors(
    k: np.ndarray, pose: np.ndarray, points: np.ndarray, pixels: np.ndarray
) -> np.ndarray:
    """[N] pixel distances of [N, 3] world points seen at [N, 2] pixels by a camera at pose
    (camera-to-world); infinite for points behind the camera."""
    projected, depth = project(k, invert(pose), points)
    errors = np.linalg.norm(projected - pixels, axis=1)
    return np.where(depth > 0, errors, np.inf)


def triangulate(
    k: np.ndarray,
    pose_a: np.ndarray,
    pose_b: np.ndarray,
    pixels_a: np.ndarray,
    pixels_b: np.ndarray,
) -> np.ndarray:
    """[N, 3] world points from [N, 2] pixels in two cameras (linear, OpenCV DLT)."""
    if len(pixels_a) == 0:
        return np.zeros((0, 3))
    proj_a = k @ invert(pose_a)[:3]
    proj_b = k @ invert(pose_b)[:3]
    homogeneous = cv2.triangulatePoints(proj_a, proj_b, pixels_a.T.copy(), pixels_b.T.copy())
    w = homogeneous[3]
    w = np.where(np.abs(w) < 1e-12, 1e-12, w)
    return (homogeneous[:3] / w).T


def parallax_degrees(pose_a: np.ndarray, pose_b: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[N] angle at each point between the rays to the two camera centres, in degrees."""
    ray_a = points - pose_a[:3, 3]
    ray_b = points - pose_b[:3, 3]
    cosine = np.sum(ray_a * ray_b, axis=1) / np.maximum(
        np.linalg.norm(ray_a, axis=1) * np.linalg.norm(ray_b, axis=1), 1e-12
    )
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


@dataclass
class TwoViewResult:
    """A relative pose from the essential matrix and the points it triangulates.

    pose_b: [4, 4] camera b to camera a (camera a is the origin), unit baseline.
    points: [M, 3] in camera a's frame; inliers: [M] indices into the input pairs.
    """

    pose_b: np.ndarray
    points: np.ndarray
    inliers: np.ndarray
    median_parallax_deg: float
    essential_inliers: int


def two_view(
    k: np.ndarray,
    pixels_a: np.ndarray,
    pixels_b: np.ndarray,
    threshold_px: float,
    max_reprojection_px: float,
) -> TwoViewResult | str:
    """Relative pose of camera b from [N, 2] matched pixels; a reason string when it fails.

    Essential matrix with RANSAC, the cheirality check of recoverPose, then the
    inliers are triangulated and kept when in front of both cameras and
    reprojected within max_reprojection_px.
    """
    if len(pixels_a) < 8:
        return f"{len(pixels_a)} matches, at least 8 needed"
    cv2.setRNGSeed(RANSAC_SEED)
    essential, mask = cv2.findEssentialMat(
        pixels_a, pixels_b, k, method=cv2.RANSAC, prob=0.999, threshold=threshold_px
    )
    if essential is None or essential.shape[0] < 3 or mask is None:
        return "no essential matrix"
    essential_inliers = int(mask.sum())
    _, rotation, translation, pose_mask = cv2.recoverPose(
        essential[:3], pixels_a, pixels_b, k, mask=mask.copy()
    )
    # recoverPose gives camera b's world-to-camera transform with camera a as the world.
    pose_b = invert(make_pose(rotation, translation.reshape(3)))
    candidates = np.flatnonzero(pose_mask.reshape(-1) > 0)
    points = triangulate(k, np.eye(4), pose_b, pixels_a[candidates], pixels_b[candidates])
    error_a = reprojection_errors(k, np.eye(4), points, pixels_a[candidates])
    error_b = reprojection_errors(k, pose_b, points, pixels_b[candidates])
    good = (error_a < max_reprojection_px) & (error_b < max_reprojection_px)
    if not good.any():
        return f"no point triangulates in front of both cameras ({essential_inliers} inliers)"
    parallax = parallax_degrees(np.eye(4), pose_b, points[good])
    return TwoViewResult(
        pose_b=pose_b,
        points=points[good],
        inliers=candidates[good],
        median_parallax_deg=float(np.median(parallax)),
        essential_inliers=essential_inliers,
    )


@dataclass
class PnpResult:
    """A camera-to-world pose and the [M] indices of the correspondences it explains."""

    pose: np.ndarray
    inliers: np.ndarray


def solve_pnp(
    k: np.ndarray,
    points: np.ndarray,
    pixels: np.ndarray,
    threshold_px: float,
    min_inliers: int,
) -> PnpResult | str:
    """Pose of a camera seeing [N, 3] world points at [N, 2] pixels; a reason when it fails.

    RANSAC (P3P minimal sets), then Levenberg-Marquardt on the inliers.
    """
    if len(points) < max(min_inliers, 6):
        return f"{len(points)} map points seen, at least {max(min_inliers, 6)} needed"
    points = np.ascontiguousarray(points, dtype=np.float64)
    pixels = np.ascontiguousarray(pixels, dtype=np.float64)
    cv2.setRNGSeed(RANSAC_SEED)
    # P3P samples (4 points) and up to 1000 iterations: fast motion with a classical
    # matcher leaves well over half of the correspondences wrong, where EPnP's larger
    # samples rarely come out clean (RANSAC stops early when the inlier ratio is high).
    found, rvec, tvec, inliers = cv2.solvePnPRansac(
        points,
        pixels,
        k,
        None,
        iterationsCount=1000,
        reprojectionError=threshold_px,
        confidence=0.999,
        flags=cv2.SOLVEPNP_AP3P,
    )
    if not found or inliers is None or len(inliers) < min_inliers:
        count = 0 if inliers is None else len(inliers)
        return f"PnP found {count} inliers among {len(points)} map points, {min_inliers} needed"
    inliers = inliers.reshape(-1)
    rvec, tvec = cv2.solvePnPRefineLM(points[inliers], pixels[inliers], k, None, rvec, tvec)
    world_to_camera = make_pose(cv2.Rodrigues(rvec)[0], tvec.reshape(3))
    pose = invert(world_to_camera)
    # The refined pose decides the final inlier set.
    errors = reprojection_errors(k, pose, points, pixels)
    inliers = np.flatnonzero(errors < threshold_px)
    if len(inliers) < min_inliers:
        return f"PnP kept {len(inliers)} inliers after refinement, {min_inliers} needed"
    return PnpResult(pose=pose, inliers=inliers)
