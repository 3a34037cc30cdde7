"""Generated stereo pairs and depth images with exact geometry.

The scene is a textured plane seen by a rectified pair, tilted about the
cameras' x axis, so its depth depends on the image row only:
Z(y) = Z0 / (1 - tilt * (y - cy) / fy). A plane point seen at (x, y) in the left
image is at (x - d(y), y) in the right one, d = fx * baseline / Z, so the right
image is the left one shifted row by row: both are sampled from one texture
(wider than the image, so no border shows). RGB-D adds a box: a rectangle of
another texture at a nearer constant depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from superglue_ros.pipeline.types import StereoCalibration

from synthetic import textured_image


@dataclass
class PlaneScene:
    """The tilted plane; camera intrinsics and baseline of the rectified pair."""

    height: int = 240
    width: int = 320
    fx: float = 300.0
    fy: float = 300.0
    baseline_m: float = 0.12
    z0: float = 3.0  # depth at the principal row
    tilt: float = 0.5
    seed: int = 3

    @property
    def cx(self) -> float:
        return self.width / 2 - 0.5

    @property
    def cy(self) -> float:
        return self.height / 2 - 0.5

    @property
    def calibration(self) -> StereoCalibration:
        return StereoCalibration(self.fx, self.fy, self.cx, self.cy, self.baseline_m)

    def depth_at(self, y: np.ndarray) -> np.ndarray:
        """Exact depth (m) of the plane at left-image rows y (any real values)."""
        return self.z0 / (1.0 - self.tilt * (np.asarray(y, dtype=np.float64) - self.cy) / self.fy)

    def disparity_at(self, y: np.ndarray) -> np.ndarray:
        return self.fx * self.baseline_m / self.depth_at(y)

    def max_depth_slope(self) -> float:
        """Largest |dZ/dy| (m per pixel row) over the image."""
        rows = np.arange(self.height, dtype=np.float64)
        return float(np.abs(np.diff(self.depth_at(rows))).max())

    def _texture(self) -> tuple[np.ndarray, int]:
        margin = int(np.ceil(self.disparity_at(np.arange(self.height)).max())) + 4
        return textured_image(self.height, self.width + margin, self.seed), margin

    def pair(self) -> tuple[np.ndarray, np.ndarray]:
        """[H, W] uint8 left and right images."""
        texture, margin = self._texture()
        rows = np.arange(self.height, dtype=np.float32)
        cols = np.arange(self.width, dtype=np.float32)
        map_y = np.repeat(rows[:, None], self.width, axis=1)
        left_x = np.repeat(cols[None] + margin, self.height, axis=0)
        shift = self.disparity_at(rows).astype(np.float32)[:, None]
        left = cv2.remap(texture, left_x, map_y, cv2.INTER_LINEAR)
        # The right pixel (x, y) sees the plane point the left one sees at x + d(y).
        right = cv2.remap(texture, left_x + shift, map_y, cv2.INTER_LINEAR)
        return left, right

    def depth_image(self) -> np.ndarray:
        """[H, W] float32 metres of the plane, pixel centres at integer coordinates."""
        rows = np.arange(self.height, dtype=np.float64)
        return np.repeat(self.depth_at(rows)[:, None], self.width, axis=1).astype(np.float32)


@dataclass
class BoxScene(PlaneScene):
    """The plane with a nearer box in front: colour image, depth image and exact depth."""

    box: tuple[int, int, int, int] = (100, 70, 220, 170)  # x0, y0, x1, y1 (exclusive)
    box_depth_m: float = 1.5

    def rgbd(self) -> tuple[np.ndarray, np.ndarray]:
        """[H, W, 3] uint8 colour and [H, W] float32 depth (m) images."""
        left, _ = self.pair()
        x0, y0, x1, y1 = self.box
        front = textured_image(y1 - y0, x1 - x0, self.seed + 100)
        gray = left.copy()
        gray[y0:y1, x0:x1] = front
        depth = self.depth_image()
        depth[y0:y1, x0:x1] = self.box_depth_m
        return np.repeat(gray[:, :, None], 3, axis=2), depth

    def in_box(self, points: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = self.box
        col, row = np.rint(points[:, 0]), np.rint(points[:, 1])
        return (col >= x0) & (col < x1) & (row >= y0) & (row < y1)

    def near_box_edge(self, points: np.ndarray, radius: int) -> np.ndarray:
        """Points whose (2 radius + 1) window holds pixels of both surfaces."""
        x0, y0, x1, y1 = self.box
        col, row = np.rint(points[:, 0]), np.rint(points[:, 1])
        hits_box = (col + radius >= x0) & (col - radius < x1)
        hits_box &= (row + radius >= y0) & (row - radius < y1)
        inside = (col - radius >= x0) & (col + radius < x1)
        inside &= (row - radius >= y0) & (row + radius < y1)
        return hits_box & ~inside

    def exact_depth(self, points: np.ndarray) -> np.ndarray:
        """True depth (m) at [N, 2] points: the box inside it, the plane elsewhere."""
        return np.where(self.in_box(points), self.box_depth_m, self.depth_at(points[:, 1]))
