"""A generated sequence that goes once round a ring of walls and returns to its start.

The walls are pictures side by side on a closed strip (the room unrolled); the
camera slides along it, so the view of the last frames is the view of the first
again (with another scale and offset, as a real return never is pixel-exact).
``repeat`` puts the first wall's picture a second time halfway round: perceptual
aliasing, the same texture in two places. A wall is a third of the view wide,
so a view of the repeated wall also shows its two (different) neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from synthetic import textured_image

HEIGHT, VIEW_WIDTH = 240, 320
WALL_WIDTH = VIEW_WIDTH // 3


@dataclass
class RingSequence:
    images: list[np.ndarray]
    stamps_ns: list[int]
    positions_px: np.ndarray  # [F] where each view starts on the strip (px, modulo its length)
    strip_length_px: int
    repeated_walls: tuple[int, int] | None  # wall indices holding the same picture

    def distance_px(self, frame_a: int, frame_b: int) -> float:
        """Distance along the ring between two views."""
        d = abs(self.positions_px[frame_a] - self.positions_px[frame_b]) % self.strip_length_px
        return float(min(d, self.strip_length_px - d))


def ring_sequence(
    walls: int = 12, frames: int = 120, repeat: bool = False, seed: int = 0
) -> RingSequence:
    """frames views evenly round a ring of walls, the last one near the first again."""
    seeds = [seed * 1000 + i for i in range(walls)]
    repeated = None
    if repeat:
        repeated = (0, walls // 2)
        seeds[walls // 2] = seeds[0]
    pictures = [textured_image(HEIGHT + 40, WALL_WIDTH, s) for s in seeds]
    strip = np.concatenate(pictures, axis=1)
    length = strip.shape[1]
    wrapped = np.concatenate([strip, strip[:, : 2 * VIEW_WIDTH]], axis=1)
    # The last frame lands a fraction of a step short of the start.
    step = length / (frames - 0.3)
    positions = np.arange(frames) * step
    images = []
    for i, x in enumerate(positions):
        scale = 1.0 + 0.04 * np.sin(2 * np.pi * i / frames * 3)
        # view pixel (u, v) shows strip pixel (x + u / scale, 20 + v / scale + wobble)
        wobble = 6.0 * np.sin(2 * np.pi * i / frames * 5)
        affine = np.array([[1 / scale, 0.0, x], [0.0, 1 / scale, 20 + wobble]], np.float32)
        images.append(
            cv2.warpAffine(
                wrapped,
                affine,
                (VIEW_WIDTH, HEIGHT),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REFLECT,
            )
        )
    stamps = [int(i * 1e8) for i in range(frames)]
    return RingSequence(images, stamps, positions, length, repeated)
