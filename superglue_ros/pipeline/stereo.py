"""Rectified stereo: the pair's calibration from camera_info, and depth from left-right matches.

The pipeline matches the left image against the right one in the same batched
matcher call as against the keyframes (pair 0 of K + 1). What the matcher
returns for that pair becomes, per left keypoint, ORB-SLAM's stereo observation:
the right image x (uR) and the depth fx * baseline / disparity, or NaN.

A left-right match is kept when it lies on the same row (rectified images:
|y_left - y_right| <= stereo.max_row_error_px), has a positive disparity (at
least stereo.min_disparity_px) and gives a depth inside [depth.min_m, depth.max_m].

Sub-pixel disparity (stereo.subpixel): a detector places keypoints on its own
grid (ORB on pyramid levels, SuperPoint on pixels), so the matched keypoints'
x difference is off by up to a pixel or so, which is a large depth error far
away. As ORB-SLAM does, a small patch around the left keypoint is compared
(sum of absolute differences after removing each patch's mean, so a gain offset
between the cameras does not matter) with patches along the same row of the
right image around the matched x; a parabola through the best cost and its two
neighbours gives the sub-pixel offset. A best cost at the end of the search
range means the patch disagrees with the descriptor match: the match is refused.
Keypoints whose patch leaves the image keep the matched x.

Which right keypoint a left one pairs with (stereo.search):

- ``matcher``: the pipeline's matcher, as pair 0 of the batch. It matches over
  the whole right image, so some of its pairs fail the row check and some left
  keypoints whose partner is on their row stay unmatched.
- ``rows``: ORB-SLAM's stereo search. The candidates of a left keypoint are the
  right keypoints within stereo.max_row_error_px rows whose disparity lies in the
  range the depth range allows (fx * baseline / depth.max_m to fx * baseline /
  depth.min_m); the one at the smallest descriptor distance (Hamming for binary,
  L2 for float descriptors) is taken when it passes a ratio test against the best
  candidate more than SEARCH_RADIUS pixels away from it (nearer ones are the same
  corner detected twice, which the sub-pixel step settles) and when the left
  keypoint is also the right one's best (mutual). The right image then leaves the
  matcher's batch, so the matcher runs K pairs, not K + 1.
- ``both``: the matcher's pairs first; the left keypoints they leave without a
  depth then search the rows among the right keypoints no kept pair uses.

Every pair, whichever search found it, then goes through the same row,
sub-pixel, disparity and depth checks; the row search's pairs also need a patch
cost of at most MAX_PATCH_COST (a descriptor alone picks look-alikes on a row),
with or without stereo.subpixel: without it the patches are still compared, only
the matched x is kept. The row search therefore needs both images.
Ties go to the lower index, so the result is deterministic. docs/evaluation.md
("Stereo depth coverage") has what each search gives on KITTI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .baselines import hamming_distances, l2_distances
from .params import PIPELINE_SPECS, Config
from .types import Features, PairMatches, StereoCalibration

PATCH_RADIUS = 3  # 7 x 7 pixel patches
SEARCH_RADIUS = 3  # right-image x positions tried: the matched x +- 3 px
# Row-search pairs whose patch cost (refine_right_x: 0 for a perfect fit, about 1.4 for
# unrelated patches of one contrast) exceeds this are refused. On the generated plane the
# right pairs' costs reach 0.46 (median 0.08), wrong ones are near 2.
MAX_PATCH_COST = 0.5
IDENTITY_TOLERANCE = 1e-6  # rectified R and P entries are written exactly or as floats
RELATIVE_TOLERANCE = 1e-6


class NotRectifiedError(ValueError):
    """The camera_info of a stereo pair does not describe a rectified pair."""


def _matrix(values: object, shape: tuple[int, int], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.size != shape[0] * shape[1]:
        raise NotRectifiedError(f"{name} must have {shape[0] * shape[1]} values, got {array.size}")
    return array.reshape(shape)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= RELATIVE_TOLERANCE * max(abs(a), abs(b), 1.0)


def stereo_calibration(
    left_r: object, left_p: object, right_r: object, right_p: object
) -> StereoCalibration:
    """The calibration of a rectified pair from its camera_info R (3x3) and P (3x4) arrays.

    Rectified images have R = identity (the rectifying rotation is already applied)
    and P rows that agree: the same fx, fy and cy (cx may differ by a disparity
    offset), no skew, and Tx = P[0, 3] = -fx * baseline in the right camera's
    (0 in the left's). Raises NotRectifiedError saying what does not hold.
    """
    matrices = {
        "left camera_info R": _matrix(left_r, (3, 3), "left camera_info R"),
        "right camera_info R": _matrix(right_r, (3, 3), "right camera_info R"),
    }
    pl = _matrix(left_p, (3, 4), "left camera_info P")
    pr = _matrix(right_p, (3, 4), "right camera_info P")
    for name, rotation in matrices.items():
        # An all-zero R is how drivers say "not set"; only an identity one says rectified.
        if np.abs(rotation - np.eye(3)).max() > IDENTITY_TOLERANCE:
            raise NotRectifiedError(
                f"stereo pair is not rectified: {name} is not the identity "
                f"({rotation.reshape(-1).round(6).tolist()}); publish the rectified images "
                "(image_proc/stereo_image_proc: left/image_rect, right/image_rect) with their "
                "rectified camera_info"
            )
    fx, fy, cx, cy = pl[0, 0], pl[1, 1], pl[0, 2], pl[1, 2]
    if fx <= 0 or fy <= 0:
        raise NotRectifiedError(f"left camera_info P has no focal length (fx {fx}, fy {fy})")
    checks = (
        ("fx", pr[0, 0], fx),
        ("fy", pr[1, 1], fy),
        ("cy", pr[1, 2], cy),
        ("skew", pr[0, 1], pl[0, 1]),
        ("P[1, 3]", pr[1, 3], pl[1, 3]),
    )
    for what, right, left in checks:
        if not _close(right, left):
            raise NotRectifiedError(
                f"stereo pair is not rectified: the P rows disagree ({what}: left {left:g}, "
                f"right {right:g}); both images need the same rectified camera"
            )
    if not (pl[2] == [0.0, 0.0, 1.0, 0.0]).all() or not (pr[2] == [0.0, 0.0, 1.0, 0.0]).all():
        raise NotRectifiedError(
            "stereo pair is not rectified: the last row of P must be [0, 0, 1, 0] "
            f"(left {pl[2].tolist()}, right {pr[2].tolist()})"
        )
    baseline = (pl[0, 3] - pr[0, 3]) / fx
    if baseline <= 0:
        raise NotRectifiedError(
            f"stereo baseline must be positive (right camera to the right of the left one): "
            f"right P Tx = {pr[0, 3]:g} gives {baseline:g} m; are left and right swapped?"
        )
    cx_right = None if _close(pr[0, 2], cx) else float(pr[0, 2])
    return StereoCalibration(float(fx), float(fy), float(cx), float(cy), float(baseline), cx_right)


@dataclass
class StereoObservations:
    """Per left keypoint: index of its right match (-1), right x (uR) and depth (NaN)."""

    right_indices: np.ndarray  # [N] int64
    right_x: np.ndarray  # [N] float32
    depths: np.ndarray  # [N] float32 metres


@dataclass(frozen=True)
class StereoDepth:
    """The stereo.* and depth.* parameters, and what they decide about left-right matches."""

    search: str = str(PIPELINE_SPECS["stereo.search"].default)
    ratio_test: float = float(PIPELINE_SPECS["stereo.ratio_test"].default)
    max_row_error_px: float = float(PIPELINE_SPECS["stereo.max_row_error_px"].default)
    min_disparity_px: float = float(PIPELINE_SPECS["stereo.min_disparity_px"].default)
    subpixel: bool = bool(PIPELINE_SPECS["stereo.subpixel"].default)
    min_m: float = float(PIPELINE_SPECS["depth.min_m"].default)
    max_m: float = float(PIPELINE_SPECS["depth.max_m"].default)

    @classmethod
    def from_config(cls, config: Config) -> StereoDepth:
        return cls(
            search=config.text("stereo.search"),
            ratio_test=config.number("stereo.ratio_test"),
            max_row_error_px=config.number("stereo.max_row_error_px"),
            min_disparity_px=config.number("stereo.min_disparity_px"),
            subpixel=config.flag("stereo.subpixel"),
            min_m=config.number("depth.min_m"),
            max_m=config.number("depth.max_m"),
        )

    @property
    def uses_matcher(self) -> bool:
        """Whether the left-right pair rides in the matcher's batch (search matcher/both)."""
        return self.search != "rows"

    def observe(
        self,
        left: Features,
        right: Features,
        pair: PairMatches | None,
        calibration: StereoCalibration,
        left_gray: np.ndarray | None = None,
        right_gray: np.ndarray | None = None,
    ) -> StereoObservations:
        """Stereo observations of the left keypoints from their right keypoints.

        pair: the matcher's left-right matches (search matcher/both; ignored for rows).
        left_gray, right_gray: [H, W] uint8 images for the sub-pixel refinement
        (used when self.subpixel; None skips it) and the row search's patch check
        (search rows/both: required, an unchecked row pair is an unverified depth).
        """
        grays = (left_gray, right_gray)
        if self.search != "matcher" and (left_gray is None or right_gray is None):
            raise ValueError(
                f"stereo.search {self.search} needs both images for its pairs' patch check"
            )
        if self.search == "rows":
            rows = self.row_matches(left, right, calibration)
            return self._checked(left, right, rows, calibration, *grays, patch_check=True)
        if pair is None:
            raise ValueError(f"stereo.search {self.search} needs the matcher's left-right pair")
        found = self._checked(left, right, np.asarray(pair.matches0), calibration, *grays)
        if self.search == "matcher":
            return found
        missing = found.right_indices < 0
        free = np.ones(len(right), dtype=bool)
        free[found.right_indices[~missing]] = False
        rows = self.row_matches(left, right, calibration, missing, free)
        extra = self._checked(left, right, rows, calibration, *grays, patch_check=True)
        add = missing & (extra.right_indices >= 0)
        found.right_indices[add] = extra.right_indices[add]
        found.right_x[add] = extra.right_x[add]
        found.depths[add] = extra.depths[add]
        return found

    def disparity_range(self, calibration: StereoCalibration) -> tuple[float, float]:
        """(smallest, largest) disparity (px) of a depth inside [depth.min_m, depth.max_m]."""
        focal_baseline = calibration.fx * calibration.baseline_m
        smallest = focal_baseline / self.max_m if self.max_m > 0 else 0.0
        largest = focal_baseline / self.min_m if self.min_m > 0 else np.inf
        return max(smallest, self.min_disparity_px), largest

    def row_matches(
        self,
        left: Features,
        right: Features,
        calibration: StereoCalibration,
        left_mask: np.ndarray | None = None,
        right_mask: np.ndarray | None = None,
    ) -> np.ndarray:
        """[N] int64 right keypoint of each left keypoint by the row search, -1 for none.

        left_mask [N], right_mask [M] bool: the keypoints that take part (default all).
        """
        matches0 = np.full(len(left), -1, dtype=np.int64)
        if len(left) == 0 or len(right) == 0:
            return matches0
        xl, yl = left.keypoints[:, 0].astype(np.float64), left.keypoints[:, 1].astype(np.float64)
        xr, yr = right.keypoints[:, 0].astype(np.float64), right.keypoints[:, 1].astype(np.float64)
        smallest, largest = self.disparity_range(calibration)
        disparity = xl[:, None] - xr[None, :] + calibration.disparity_offset
        candidate = np.abs(yl[:, None] - yr[None, :]) <= self.max_row_error_px
        candidate &= (disparity >= smallest) & (disparity <= largest)
        if left_mask is not None:
            candidate &= np.asarray(left_mask, dtype=bool)[:, None]
        if right_mask is not None:
            candidate &= np.asarray(right_mask, dtype=bool)[None, :]
        rows = np.flatnonzero(candidate.any(axis=1))
        if rows.size == 0:
            return matches0
        columns = np.flatnonzero(candidate[rows].any(axis=0))
        if left.descriptors.dtype == np.uint8:
            distances = hamming_distances(left.descriptors[rows], right.descriptors[columns])
        else:
            distances = l2_distances(left.descriptors[rows], right.descriptors[columns])
        distances = np.where(candidate[np.ix_(rows, columns)], distances, np.inf)
        best = distances.argmin(axis=1)  # every row has a finite candidate
        index = np.arange(rows.size)
        best_distance = distances[index, best]
        ok = distances.argmin(axis=0)[best] == index  # mutual
        if self.ratio_test > 0:
            best_x = xr[columns][best]
            same_corner = np.abs(xr[columns][None, :] - best_x[:, None]) <= SEARCH_RADIUS
            second = np.where(same_corner, np.inf, distances).min(axis=1)
            ok &= best_distance < self.ratio_test * second
        matches0[rows[ok]] = columns[best[ok]]
        return matches0

    def _checked(
        self,
        left: Features,
        right: Features,
        matches0: np.ndarray,
        calibration: StereoCalibration,
        left_gray: np.ndarray | None,
        right_gray: np.ndarray | None,
        patch_check: bool = False,
    ) -> StereoObservations:
        """The observations of left-right pairs matches0 that pass the row, sub-pixel,
        disparity and depth checks. patch_check (the row search's pairs, with or without
        sub-pixel refinement): also refuse a pair whose patch cost exceeds MAX_PATCH_COST
        or whose best cost lies at the end of the search range, as ORB-SLAM checks its
        patches; a descriptor alone, without a matcher's context, can pick a look-alike
        on the row."""
        num = len(left)
        right_indices = np.full(num, -1, dtype=np.int64)
        right_x = np.full(num, np.nan, dtype=np.float32)
        depths = np.full(num, np.nan, dtype=np.float32)
        matched = np.flatnonzero(matches0 >= 0)
        if matched.size == 0:
            return StereoObservations(right_indices, right_x, depths)
        partner = matches0[matched]
        xl, yl = left.keypoints[matched, 0].astype(np.float64), left.keypoints[matched, 1]
        xr, yr = right.keypoints[partner, 0].astype(np.float64), right.keypoints[partner, 1]
        ok = np.abs(yl - yr) <= self.max_row_error_px
        patches = left_gray is not None and right_gray is not None
        if patches and (self.subpixel or patch_check):
            refined, refined_ok, cost = refine_right_x(left_gray, right_gray, xl, yl, xr)
            ok &= refined_ok
            if self.subpixel:
                xr = refined
            if patch_check:
                ok &= ~(np.isfinite(cost) & (cost > MAX_PATCH_COST))
        disparity = xl - xr + calibration.disparity_offset
        ok &= disparity >= max(self.min_disparity_px, 1e-6)
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = calibration.fx * calibration.baseline_m / disparity
        ok &= (depth >= self.min_m) & (depth <= self.max_m)
        keep = matched[ok]
        right_indices[keep] = partner[ok]
        right_x[keep] = xr[ok]
        depths[keep] = depth[ok]
        return StereoObservations(right_indices, right_x, depths)


def refine_right_x(
    left: np.ndarray, right: np.ndarray, xl: np.ndarray, yl: np.ndarray, xr: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-pixel right x of each left keypoint by patch matching along its row.

    left, right: [H, W] uint8; xl, yl, xr: [L] keypoint coordinates. Returns the
    refined right x [L] (float64; the keypoint's own x minus the refined disparity),
    [L] bool, False where the best cost was at the end of the search range, and
    [L] float32 the best cost (absolute differences over the left patch's absolute
    deviations from its mean: 0 for a perfect fit, about 1 for unrelated patches). Keypoints whose
    patches leave the image keep xr (True, cost NaN).
    """
    height, width = left.shape
    p, s = PATCH_RADIUS, SEARCH_RADIUS
    cl, row, cr = np.rint(xl).astype(np.int64), np.rint(yl).astype(np.int64), np.rint(xr)
    cr = cr.astype(np.int64)
    inside = (
        (cl - p >= 0)
        & (cl + p < width)
        & (row - p >= 0)
        & (row + p < height)
        & (cr - s - p >= 0)
        & (cr + s + p < width)
    )
    refined = xr.astype(np.float64).copy()
    ok = np.ones(len(xl), dtype=bool)
    best_cost = np.full(len(xl), np.nan, dtype=np.float32)
    if not inside.any():
        return refined, ok, best_cost
    cl, row, cr = cl[inside], row[inside], cr[inside]
    taps = np.arange(-p, p + 1)
    rows = row[:, None, None] + taps[None, :, None]  # [L, P, 1]
    patch_left = left[rows, cl[:, None, None] + taps[None, None, :]].astype(np.float32)
    patch_left -= patch_left.mean(axis=(1, 2), keepdims=True)
    shifts = np.arange(-s, s + 1)
    costs = np.empty((len(cl), len(shifts)), dtype=np.float32)
    for i, shift in enumerate(shifts):
        columns = (cr + shift)[:, None, None] + taps[None, None, :]
        patch_right = right[rows, columns].astype(np.float32)
        patch_right -= patch_right.mean(axis=(1, 2), keepdims=True)
        costs[:, i] = np.abs(patch_left - patch_right).sum(axis=(1, 2))
    best = costs.argmin(axis=1)
    interior = (best > 0) & (best < len(shifts) - 1)
    centre = np.clip(best, 1, len(shifts) - 2)
    index = np.arange(len(cl))
    before, here, after = costs[index, centre - 1], costs[index, centre], costs[index, centre + 1]
    curvature = before - 2.0 * here + after
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(curvature > 0, 0.5 * (before - after) / curvature, 0.0)
    offset = np.clip(offset, -0.5, 0.5)
    # The right x where the left patch's centre pixel (cl) lies, moved back to the keypoint.
    right_of_centre = cr + shifts[best] + offset
    refined[inside] = xl[inside] - (cl - right_of_centre)
    ok[inside] = interior
    # Relative to the left patch's own contrast: a textured patch's interpolation error
    # is larger, a look-alike's cost is of the order of the contrast.
    contrast = np.abs(patch_left).sum(axis=(1, 2))
    best_cost[inside] = costs[index, best] / np.maximum(contrast, 1.0)
    return refined, ok, best_cost
