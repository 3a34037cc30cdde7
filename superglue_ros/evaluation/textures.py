"""Procedural textures for generated sequences (room walls, homography sources).

One generator serves both so that every synthetic sequence shows the same kind of
content: multi-scale colour noise with shapes of many sizes (corners and blobs at
every scale a camera sees), for machines without photographs.
"""

from __future__ import annotations

import cv2
import numpy as np

BASE_SIDE = 512  # the side at which BASE_SHAPES shapes cover the texture
BASE_SHAPES = 400


def procedural_texture(rng: np.random.Generator, size: tuple[int, int] | None = None) -> np.ndarray:
    """[H, W, 3] uint8 RGB for size (width, height), BASE_SIDE square by default.

    Drawn on a square of the longer side (shape density kept per unit area) and cropped,
    so a square texture of any side is the same recipe scaled.
    """
    width, height = size or (BASE_SIDE, BASE_SIDE)
    side = max(width, height)
    image = np.zeros((side, side, 3), np.float32)
    for cells in (4, 16, 64):
        noise = rng.uniform(0, 1, size=(cells, cells, 3)).astype(np.float32)
        image += cv2.resize(noise, (side, side), interpolation=cv2.INTER_CUBIC) * (80 / 3)
    image = np.clip(image + 60, 0, 255).astype(np.uint8)
    for _ in range(round(BASE_SHAPES * (side / BASE_SIDE) ** 2)):
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        x, y = (int(v) for v in rng.integers(0, side, size=2))
        extent = int(side / 64 * 2 ** rng.uniform(0, 3))
        shape = rng.integers(0, 3)
        if shape == 0:
            cv2.rectangle(image, (x, y), (x + extent, y + extent // 2), color, -1)
        elif shape == 1:
            cv2.circle(image, (x, y), extent // 2, color, -1)
        else:
            end = (x + int(rng.integers(-side // 4, side // 4)), y + extent)
            cv2.line(image, (x, y), end, color, max(2, extent // 8))
    return np.ascontiguousarray(image[:height, :width])
