"""Depth of keypoints from a depth image registered to the colour image (RGB-D input).

A depth camera's image has holes (0 or NaN: no return, shadows behind edges) and
mixes two surfaces along object edges, where most corners are. Reading the one
pixel under a keypoint would give NaN on a hole and a value of either surface at
an edge, so each keypoint looks at a small window:

- centre pixel valid: the median of the window's depths that lie on the centre's
  surface (within ``surface_tolerance`` of it, relative). It smooths the sensor's
  noise without ever mixing in the other side of an edge.
- centre pixel invalid: the nearest surface of the window, the median of the
  depths within ``surface_tolerance`` of the window's smallest. A hole at an
  edge is the shadow of the foreground, and a corner there belongs to the
  foreground's silhouette.
- no valid depth in the window, or a depth outside [min_m, max_m]: NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .params import PIPELINE_SPECS, Config
from .types import DepthImage


@dataclass(frozen=True)
class DepthReader:
    """How keypoint depths are read; defaults are the parameter table's depth.* values."""

    min_m: float = float(PIPELINE_SPECS["depth.min_m"].default)
    max_m: float = float(PIPELINE_SPECS["depth.max_m"].default)
    window_px: int = int(PIPELINE_SPECS["depth.window_px"].default)
    surface_tolerance: float = float(PIPELINE_SPECS["depth.surface_tolerance"].default)

    @classmethod
    def from_config(cls, config: Config) -> DepthReader:
        return cls(
            min_m=config.number("depth.min_m"),
            max_m=config.number("depth.max_m"),
            window_px=config.integer("depth.window_px"),
            surface_tolerance=config.number("depth.surface_tolerance"),
        )

    def in_range(self, depths: np.ndarray) -> np.ndarray:
        """depths with every value outside [min_m, max_m] set to NaN (float32)."""
        depths = np.asarray(depths, dtype=np.float32).copy()
        with np.errstate(invalid="ignore"):
            depths[~((depths >= self.min_m) & (depths <= self.max_m))] = np.nan
        return depths

    def read(self, depth: DepthImage, keypoints: np.ndarray) -> np.ndarray:
        """[N, 2] pixel (x, y) keypoints -> [N] float32 metres, NaN where unknown."""
        metres = depth.metres()
        keypoints = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
        out = np.full(len(keypoints), np.nan, dtype=np.float32)
        if len(keypoints) == 0:
            return out
        height, width = metres.shape
        r = self.window_px
        # Pixel centres at integer coordinates: the pixel under (x, y) is the rounded one.
        cols = np.rint(keypoints[:, 0]).astype(np.int64)
        rows = np.rint(keypoints[:, 1]).astype(np.int64)
        inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
        if not inside.any():
            return out
        padded = np.pad(metres, r, constant_values=np.nan)
        offsets = np.arange(-r, r + 1)
        # [n, (2r+1)^2] windows of the keypoints inside the image (padded indices).
        win_rows = rows[inside, None, None] + r + offsets[None, :, None]
        win_cols = cols[inside, None, None] + r + offsets[None, None, :]
        windows = padded[win_rows, win_cols].reshape(int(inside.sum()), -1)
        centre = metres[rows[inside], cols[inside]]
        reference = np.where(np.isfinite(centre), centre, _or_inf(windows).min(axis=1))
        with np.errstate(invalid="ignore"):
            same_surface = np.abs(windows - reference[:, None]) <= (
                self.surface_tolerance * reference[:, None]
            )
        chosen = np.where(same_surface, windows, np.nan)
        values = np.full(len(chosen), np.nan, dtype=np.float32)
        found = same_surface.any(axis=1)
        if found.any():
            values[found] = np.nanmedian(chosen[found], axis=1)
        out[inside] = values
        return self.in_range(out)


def _or_inf(windows: np.ndarray) -> np.ndarray:
    """NaN -> inf, so a window without any valid depth gives an inf minimum, not a warning."""
    return np.where(np.isfinite(windows), windows, np.inf)


def register_depth(
    depth: np.ndarray,
    k_depth: np.ndarray,
    k_colour: np.ndarray,
    colour_size: tuple[int, int],
) -> np.ndarray:
    """A depth image reprojected into the colour camera (depth registered to colour).

    A sensor whose depth camera is not the colour camera (Kinect v1, 7-Scenes) gives
    depth pixels on the depth camera's grid: a colour keypoint at (u, v) does not see
    the point the depth pixel (u, v) measured when the focal lengths differ. Each
    valid depth pixel is back-projected with k_depth [3, 3] and projected with
    k_colour [3, 3] into an image of colour_size (height, width); the optical
    centres are taken as one (the colour-depth offset of a few centimetres is not
    published for such data), so the depth value itself is unchanged. Where several
    depth pixels land on one colour pixel the nearest wins; colour pixels no depth
    pixel lands on (outside the depth camera's view, or between its pixels when the
    colour camera's focal is the longer) stay empty.

    depth: [H, W] uint16 (any unit, 0 = none) or float32 (NaN / 0 = none). Returns
    [*colour_size] of depth's dtype, 0 (uint16) or NaN (float32) where empty.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2 or depth.dtype not in (np.uint16, np.float32):
        raise ValueError(f"depth must be [H, W] uint16 or float32, got {depth.dtype} {depth.shape}")
    k_depth, k_colour = np.asarray(k_depth, np.float64), np.asarray(k_colour, np.float64)
    height, width = colour_size
    rows, cols = np.nonzero(np.isfinite(depth) & (depth > 0))
    values = depth[rows, cols]
    # Same centre: only the pixel moves, x_colour = K_colour K_depth^-1 x_depth.
    pixel_map = k_colour @ np.linalg.inv(k_depth)
    points = np.stack([cols, rows, np.ones_like(cols)]).astype(np.float64)
    mapped = pixel_map @ points
    u = np.rint(mapped[0] / mapped[2]).astype(np.int64)
    v = np.rint(mapped[1] / mapped[2]).astype(np.int64)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    nearest = np.full(height * width, np.inf)
    np.minimum.at(nearest, v[inside] * width + u[inside], values[inside].astype(np.float64))
    nearest = nearest.reshape(height, width)
    empty = ~np.isfinite(nearest)
    if depth.dtype == np.uint16:
        return np.where(empty, 0, nearest).astype(np.uint16)
    return np.where(empty, np.nan, nearest).astype(np.float32)
