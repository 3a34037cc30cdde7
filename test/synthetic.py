"""Synthetic images with known geometry, so tests know which keypoints are the same point.

A seeded canvas of random shapes (sharp corners for ORB, blobs for SIFT) is
viewed through a homography per frame. A frame's homography maps canvas pixels
to frame pixels, so a point in frame i is at H_j @ inv(H_i) @ p in frame j.
The canvas is larger than the frames, so moderate motion never shows a border.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from superglue_ros.pipeline import Pipeline


def textured_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """[height, width] uint8: random polygons, rectangles, circles and lines on noise."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height // 8 + 1, width // 8 + 1)) * 255
    # Smooth low-contrast background: texture without a keypoint on every pixel.
    image = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    image = (0.3 * image + 90).astype(np.uint8)
    area = height * width
    for _ in range(area // 1500):
        color = int(rng.integers(0, 256))
        kind = rng.integers(0, 4)
        center = rng.integers((0, 0), (width, height))
        size = int(rng.integers(4, 30))
        if kind == 0:
            corners = center + rng.integers(-size, size + 1, size=(int(rng.integers(3, 6)), 2))
            cv2.fillPoly(image, [corners.astype(np.int32)], color)
        elif kind == 1:
            cv2.rectangle(image, tuple(center - size), tuple(center + size // 2), color, -1)
        elif kind == 2:
            cv2.circle(image, tuple(center), size // 2, color, -1)
        else:
            end = center + rng.integers(-2 * size, 2 * size + 1, size=2)
            cv2.line(image, tuple(center), tuple(end), color, int(rng.integers(1, 4)))
    # A light blur makes corners stable under resampling.
    return cv2.GaussianBlur(image, (3, 3), 0.8)


def translation(dx: float, dy: float) -> np.ndarray:
    """[3, 3] homography shifting by (dx, dy) pixels."""
    return np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], dtype=np.float64)


def similarity(angle_deg: float, scale: float, center: tuple[float, float]) -> np.ndarray:
    """[3, 3] rotation by angle_deg and scaling about center (x, y)."""
    affine = cv2.getRotationMatrix2D(center, angle_deg, scale)
    return np.vstack([affine, [0, 0, 1]])


def warp_points(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[N, 2] (x, y) -> [N, 2] float64 points mapped through a [3, 3] homography."""
    homogeneous = np.hstack([points, np.ones((len(points), 1))]) @ homography.T
    return homogeneous[:, :2] / homogeneous[:, 2:]


@dataclass
class SyntheticSequence:
    """Frames of one canvas; homographies[i] maps canvas pixels to frame i's pixels."""

    images: list[np.ndarray]
    homographies: list[np.ndarray]

    def map_points(self, points: np.ndarray, source: int, target: int) -> np.ndarray:
        """Where [N, 2] pixels of frame source lie in frame target (true correspondences)."""
        source_to_target = self.homographies[target] @ np.linalg.inv(self.homographies[source])
        return warp_points(source_to_target, points)


def sequence(
    motions: list[np.ndarray],
    height: int = 240,
    width: int = 320,
    seed: int = 0,
    margin: int = 120,
) -> SyntheticSequence:
    """One frame per motion; motions[i] is applied on top of frame 0's view.

    Frame 0 shows the canvas centre; motion homographies act in frame pixels.
    """
    canvas = textured_image(height + 2 * margin, width + 2 * margin, seed)
    view = translation(-margin, -margin)  # canvas -> frame 0
    homographies = [motion @ view for motion in motions]
    images = [
        cv2.warpPerspective(canvas, h, (width, height), flags=cv2.INTER_LINEAR)
        for h in homographies
    ]
    return SyntheticSequence(images=images, homographies=homographies)


def corresponding_pairs(
    sequence: SyntheticSequence,
    keypoints_source: np.ndarray,
    keypoints_target: np.ndarray,
    source: int,
    target: int,
    tolerance_px: float = 1.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j): keypoint i of source re-detected as keypoint j of target.

    j is the target keypoint nearest to where i truly maps, within tolerance_px.
    Returns two [L] int64 arrays.
    """
    if len(keypoints_source) == 0 or len(keypoints_target) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    mapped = sequence.map_points(keypoints_source, source, target)
    distances = np.linalg.norm(mapped[:, None] - keypoints_target[None], axis=2)
    nearest = distances.argmin(1)
    close = distances[np.arange(len(mapped)), nearest] <= tolerance_px
    return np.flatnonzero(close), nearest[close]


def orb_pipeline(params: dict | None = None) -> Pipeline:
    """ORB + mutual nearest neighbour pipeline (CPU, fast); params override defaults."""
    return Pipeline.from_params({"frontend": "orb", "matcher": "mnn", **(params or {})})
