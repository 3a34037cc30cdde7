"""Two-view and PnP geometry on numpy arrays (OpenCV does the solving).

Poses are [4, 4] float64 camera-to-world matrices (T_wc); OpenCV's solvers
return world-to-camera (T_cw), converted at the boundary. Every RANSAC runs
OpenCV's USAC with its generator state set from a seed (``cv2.setRNGSeed`` does
not reach findEssentialMat or solvePnPRansac, which keep their own generator),
so a run is reproducible for one seed and another seed draws other samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

RANSAC_SEED = 0  # the default seed of every RANSAC below (replay --seed sets it)


def usac_params(threshold_px: float, seed: int | None, confidence: float = 0.999) -> cv2.UsacParams:
    """Plain RANSAC (uniform samples, MSAC score) with local optimisation, seeded."""
    params = cv2.UsacParams()
    params.randomGeneratorState = int(RANSAC_SEED if seed is None else seed)
    params.threshold = float(threshold_px)
    params.confidence = confidence
    params.maxIterations = 1000
    params.sampler = cv2.SAMPLING_UNIFORM
    params.score = cv2.SCORE_METHOD_MSAC
    params.loMethod = cv2.LOCAL_OPTIM_INNER_LO
    params.loIterations = 10
    params.loSampleSize = 14
    # No final polishing, as OpenCV before 4.7 (whose UsacParams has no such field) does.
    if hasattr(cv2, "NONE_POLISHER"):
        params.final_polisher = cv2.NONE_POLISHER
    return params


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


def back_project(k: np.ndarray, pixels: np.ndarray, depths: np.ndarray) -> np.ndarray:
    """[N, 3] camera-frame points at [N, 2] pixels and [N] depths along the optical axis."""
    rays = (pixels - [k[0, 2], k[1, 2]]) / [k[0, 0], k[1, 1]]
    return np.c_[rays, np.ones(len(pixels))] * np.asarray(depths, dtype=np.float64)[:, None]


def stereo_baseline(
    fx: float, x: np.ndarray, right_x: np.ndarray, depths: np.ndarray
) -> float | None:
    """The baseline (metres) behind a front-end's stereo depths, None without enough pairs.

    The front-end sends depth = fx * baseline / disparity with disparity = x - right_x
    plus the pair's principal-point offset (cx_left - cx_right), so x - right_x is a
    line in 1 / depth: its slope is fx * baseline. When the depths vary too little to
    fit a line the offset is taken as zero.
    """
    disparity = np.asarray(x, dtype=np.float64) - right_x
    ok = np.isfinite(disparity) & np.isfinite(depths) & (depths > 0)
    if np.count_nonzero(ok) < 3:
        return None
    inverse, disparity = 1.0 / depths[ok], disparity[ok]
    if np.ptp(inverse) > 0.1 * np.mean(inverse):
        slope, _ = np.polyfit(inverse, disparity, 1)
    else:
        slope = float(np.median(disparity / inverse))
    return float(slope / fx) if slope > 0 else None


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


def triangulate_checked(
    k: np.ndarray,
    pose_a: np.ndarray,
    pose_b: np.ndarray,
    pixels_a: np.ndarray,
    pixels_b: np.ndarray,
    max_reprojection_px: float,
    min_parallax_deg: float,
) -> tuple[np.ndarray, np.ndarray]:
    """triangulate, and [N] whether each point reprojects within max_reprojection_px in
    both cameras (so lies in front of both) with at least min_parallax_deg of parallax."""
    points = triangulate(k, pose_a, pose_b, pixels_a, pixels_b)
    good = (
        (reprojection_errors(k, pose_a, points, pixels_a) < max_reprojection_px)
        & (reprojection_errors(k, pose_b, points, pixels_b) < max_reprojection_px)
        & (parallax_degrees(pose_a, pose_b, points) >= min_parallax_deg)
    )
    return points, good


def parallax_degrees(pose_a: np.ndarray, pose_b: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[N] angle at each point between the rays to the two camera centres, in degrees."""
    ray_a = points - pose_a[:3, 3]
    ray_b = points - pose_b[:3, 3]
    cosine = np.sum(ray_a * ray_b, axis=1) / np.maximum(
        np.linalg.norm(ray_a, axis=1) * np.linalg.norm(ray_b, axis=1), 1e-12
    )
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


# 95 % quantiles of the chi-square distribution: a point's squared error in sigmas
# beyond them is an outlier to a model (ORB-SLAM's model selection uses the same).
CHI2_1DOF = 3.841
CHI2_2DOF = 5.991


@dataclass
class TwoViewResult:
    """A relative pose and the well-conditioned points it triangulates.

    pose_b: [4, 4] camera b to camera a (camera a is the origin), unit baseline.
    points: [M, 3] in camera a's frame; inliers: [M] indices into the input pairs;
    parallax_deg: [M] ray angle of each point. model: ``essential`` or
    ``homography``, as the score ratio chose; homography_ratio: S_H / (S_H + S_E).
    """

    pose_b: np.ndarray
    points: np.ndarray
    inliers: np.ndarray
    parallax_deg: np.ndarray
    model: str
    homography_ratio: float

    @property
    def median_parallax_deg(self) -> float:
        return float(np.median(self.parallax_deg))


def homography_score(h: np.ndarray, a: np.ndarray, b: np.ndarray, sigma: float) -> float:
    """Sum over pairs and both directions of (chi2 bound - squared transfer error in
    sigmas), errors beyond the bound adding nothing."""
    if abs(np.linalg.det(h)) < 1e-12:
        return 0.0
    score = 0.0
    for src, dst, m in ((a, b, h), (b, a, np.linalg.inv(h))):
        mapped = np.c_[src, np.ones(len(src))] @ m.T
        mapped = mapped[:, :2] / np.where(np.abs(mapped[:, 2:]) < 1e-12, 1e-12, mapped[:, 2:])
        chi2 = np.sum((mapped - dst) ** 2, axis=1) / sigma**2
        score += float(np.sum(np.where(chi2 < CHI2_2DOF, CHI2_2DOF - chi2, 0.0)))
    return score


def epipolar_score(f: np.ndarray, a: np.ndarray, b: np.ndarray, sigma: float) -> float:
    """The homography score's counterpart for a fundamental matrix: squared distances
    to the epipolar lines (1 degree of freedom), scored on the same 2-dof scale."""
    score = 0.0
    ha, hb = np.c_[a, np.ones(len(a))], np.c_[b, np.ones(len(b))]
    for points, lines in ((hb, ha @ f.T), (ha, hb @ f)):
        distance = np.sum(points * lines, axis=1) ** 2 / np.maximum(
            lines[:, 0] ** 2 + lines[:, 1] ** 2, 1e-12
        )
        chi2 = distance / sigma**2
        score += float(np.sum(np.where(chi2 < CHI2_1DOF, CHI2_2DOF - chi2, 0.0)))
    return score


def _reconstruct(
    k: np.ndarray,
    pose_b: np.ndarray,
    pixels_a: np.ndarray,
    pixels_b: np.ndarray,
    max_reprojection_px: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(points [N, 3], in front of both cameras and reprojecting within the limit [N],
    parallax [N] in degrees) of the pairs triangulated with camera b at pose_b."""
    points = triangulate(k, np.eye(4), pose_b, pixels_a, pixels_b)
    good = (reprojection_errors(k, np.eye(4), points, pixels_a) < max_reprojection_px) & (
        reprojection_errors(k, pose_b, points, pixels_b) < max_reprojection_px
    )
    return points, good, parallax_degrees(np.eye(4), pose_b, points)


TRY_SEED_STRIDE = 1000  # try i of seed s is seeded s + i * stride: other seeds, other tries


def best_of_tries(
    fit: Callable[[cv2.UsacParams], tuple[np.ndarray, Any] | None],
    score: Callable[[np.ndarray], float],
    threshold_px: float,
    seed: int | None,
    tries: int,
) -> tuple[tuple[np.ndarray, Any], float] | None:
    """The best-scoring of `tries` seeded RANSAC fits ((model, extra), score); None when
    none fits.

    One RANSAC run stops once its best model so far looks confirmed; with many
    outliers and a small baseline that can be a wrong motion, whose rotation error
    inflates the parallax (so it triangulates *more* points) while it explains the
    pairs worse. Scoring a few independently seeded runs on all pairs removes most of
    that dependence on the sample. Try 0 uses the seed itself.
    """
    base = RANSAC_SEED if seed is None else seed
    best: tuple[tuple[np.ndarray, Any], float] | None = None
    for attempt in range(max(int(tries), 1)):
        fitted = fit(usac_params(threshold_px, base + attempt * TRY_SEED_STRIDE))
        if fitted is None:
            continue
        value = score(fitted[0])
        if best is None or value > best[1]:
            best = (fitted, value)
    return best


def two_view(
    k: np.ndarray,
    pixels_a: np.ndarray,
    pixels_b: np.ndarray,
    threshold_px: float,
    max_reprojection_px: float,
    min_parallax_deg: float,
    sigma_px: float = 1.0,
    homography_ratio: float = 0.45,
    seed: int | None = None,
    tries: int = 1,
) -> TwoViewResult | str:
    """Relative pose of camera b from [N, 2] matched pixels; a reason string when it fails.

    An essential matrix and a homography are both fitted (seeded RANSAC, the best
    scoring of `tries` runs each, see best_of_tries) and scored as ORB-SLAM does; when
    the homography explains the pairs nearly as well (score ratio above
    homography_ratio: a plane, or little translation) its decomposed
    motions compete with the essential matrix's. The motion with most well-conditioned
    points wins: in front of both cameras, reprojecting within max_reprojection_px,
    with a ray angle of at least min_parallax_deg (lower-parallax depths are too
    uncertain to map). Two distinct motions explaining nearly as many is refused.
    """
    if len(pixels_a) < 8:
        return f"{len(pixels_a)} matches, at least 8 needed"
    pixels_a = np.ascontiguousarray(pixels_a, dtype=np.float64)
    pixels_b = np.ascontiguousarray(pixels_b, dtype=np.float64)
    no_distortion = np.zeros(5)
    k_inv = np.linalg.inv(k)

    def fit_essential(params: cv2.UsacParams) -> tuple[np.ndarray, np.ndarray] | None:
        essential, mask = cv2.findEssentialMat(
            pixels_a, pixels_b, k, k, no_distortion, no_distortion, params
        )
        if essential is None or essential.shape[0] < 3 or mask is None:
            return None
        return essential[:3], mask

    def fit_homography(params: cv2.UsacParams) -> tuple[np.ndarray, None] | None:
        homography, _ = cv2.findHomography(pixels_a, pixels_b, params)
        return None if homography is None else (homography, None)

    essential_fit = best_of_tries(
        fit_essential,
        lambda e: epipolar_score(k_inv.T @ e @ k_inv, pixels_a, pixels_b, sigma_px),
        threshold_px,
        seed,
        tries,
    )
    if essential_fit is None:
        return "no essential matrix"
    (essential, mask), score_e = essential_fit
    homography_fit = best_of_tries(
        fit_homography,
        lambda h: homography_score(h, pixels_a, pixels_b, sigma_px),
        threshold_px,
        seed,
        tries,
    )
    if homography_fit is None:
        homography, score_h = None, 0.0
    else:
        (homography, _), score_h = homography_fit
    ratio = score_h / max(score_h + score_e, 1e-12)
    _, rotation, translation, _ = cv2.recoverPose(
        essential, pixels_a, pixels_b, k, mask=mask.copy()
    )
    # recoverPose gives camera b's world-to-camera transform with camera a as the world.
    motions = [invert(make_pose(rotation, translation.reshape(3)))]
    model = "essential"
    if ratio > homography_ratio and homography is not None:
        # A plane or little translation: the homography's motions compete with the
        # essential matrix's (H's decomposition gives x_b = R x_a + t / d on the plane).
        model = "homography"
        _, rotations, translations, _ = cv2.decomposeHomographyMat(homography, k)
        motions += [
            invert(make_pose(r, t.reshape(3))) for r, t in zip(rotations, translations, strict=True)
        ]
    # Only the essential matrix's inliers are triangulated (plane points are among them).
    candidates = np.flatnonzero(mask.reshape(-1) > 0)
    a, b = pixels_a[candidates], pixels_b[candidates]
    solutions = []
    for motion in motions:
        if np.linalg.norm(motion[:3, 3]) < 1e-12:
            continue
        motion[:3, 3] /= np.linalg.norm(motion[:3, 3])
        points, good, parallax = _reconstruct(k, motion, a, b, max_reprojection_px)
        good &= parallax >= min_parallax_deg
        solutions.append((int(np.count_nonzero(good)), motion, points, good, parallax))
    solutions.sort(key=lambda solution: -solution[0])
    if not solutions or solutions[0][0] == 0:
        return f"no point triangulates in front of both cameras with parallax ({model} model)"
    distinct = [
        count
        for count, motion, *_ in solutions[1:]
        if np.linalg.norm(motion[:3, 3] - solutions[0][1][:3, 3]) > 0.1
    ]
    if distinct and distinct[0] > 0.9 * solutions[0][0]:
        # A plane's two homography motions explain it equally well.
        return (
            f"two motions explain the matches ({solutions[0][0]} and {distinct[0]} points "
            f"in front, {model} model): too little parallax off the plane"
        )
    _, pose_b, points, good, parallax = solutions[0]
    kept = np.flatnonzero(good)
    return TwoViewResult(
        pose_b=pose_b,
        points=points[kept],
        inliers=candidates[kept],
        parallax_deg=parallax[kept],
        model=model,
        homography_ratio=ratio,
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
    seed: int | None = None,
) -> PnpResult | str:
    """Pose of a camera seeing [N, 3] world points at [N, 2] pixels; a reason when it fails.

    Seeded RANSAC (P3P minimal sets: over half of a classical matcher's 2D-3D pairs
    can be wrong under fast motion, where larger samples rarely come out clean),
    then Levenberg-Marquardt on the inliers.
    """
    if len(points) < max(min_inliers, 6):
        return f"{len(points)} map points seen, at least {max(min_inliers, 6)} needed"
    points = np.ascontiguousarray(points, dtype=np.float64)
    pixels = np.ascontiguousarray(pixels, dtype=np.float64)
    found, _, rvec, tvec, inliers = cv2.solvePnPRansac(
        points, pixels, k, np.zeros(5), params=usac_params(threshold_px, seed)
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
