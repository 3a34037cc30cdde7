"""Image preprocessing shared by every frontend.

Images arrive from two shells (ROS messages, bag replay) in a few layouts. They
are checked and converted to one form here, so each detector only ever sees an
[H, W] uint8 grayscale array (or, for a frontend whose ``color`` attribute is
True, such as ALIKED and DISK, an [H, W, 3] uint8 RGB array) and a bad image
fails with a message that says what is wrong instead of a shape error deep
inside OpenCV or torch. OpenCV is imported
only for colour conversion and downscaling, so gray images at full size need none.
"""

from __future__ import annotations

import numpy as np

from .types import Features, Frontend


def checked_image(image: np.ndarray) -> np.ndarray:
    """Check an image; return it as [H, W] uint8 gray or [H, W, 3] uint8 RGB.

    image: [H, W] uint8 gray, [H, W, 1] uint8 gray or [H, W, 3] uint8 RGB.
    Raises ValueError naming the problem for anything else.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3 and image.shape[2] != 3:
        raise ValueError(f"image must have 1 or 3 channels, got shape {image.shape}")
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be [H, W] or [H, W, C], got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty, shape {image.shape}")
    return np.ascontiguousarray(image)


def to_grayscale(image: np.ndarray) -> np.ndarray:
    """Check an image (as checked_image) and return it as [H, W] uint8 grayscale."""
    image = checked_image(image)
    if image.ndim == 3:
        import cv2

        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return image


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Check an image (as checked_image) and return it as [H, W, 3] uint8 RGB (gray repeated)."""
    image = checked_image(image)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    return image


def downscaled_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(height, width) with the longer side at most max_side; 0 keeps the size."""
    longest = max(height, width)
    if max_side <= 0 or longest <= max_side:
        return height, width
    scale = max_side / longest
    return max(1, round(height * scale)), max(1, round(width * scale))


def rescale_keypoints(
    keypoints: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]
) -> np.ndarray:
    """Map [N, 2] (x, y) pixels from an image of from_size to one of to_size (height, width).

    Pixel centres sit at integer coordinates (OpenCV's convention), so the
    mapping scales about the pixel corners: x' = (x + 0.5) * s - 0.5.
    """
    scale = np.array([to_size[1] / from_size[1], to_size[0] / from_size[0]], dtype=np.float32)
    return ((keypoints + 0.5) * scale - 0.5).astype(np.float32)


class PreprocessingFrontend:
    """Wraps any Frontend: checks and converts the image, optionally downscales it.

    The frontend gets gray [H, W] images, or RGB [H, W, 3] ones when its
    ``color`` attribute is True.

    Keypoints and image_size are always reported in the original image's pixels,
    so downstream code never needs to know that detection ran on a smaller image.
    """

    def __init__(self, frontend: Frontend, max_image_side: int = 0) -> None:
        self.frontend = frontend
        self.max_image_side = int(max_image_side)

    @property
    def description(self) -> str:
        inner = getattr(self.frontend, "description", type(self.frontend).__name__)
        if self.max_image_side > 0:
            return f"{inner} (max side {self.max_image_side} px)"
        return inner

    def extract(self, image: np.ndarray) -> Features:
        """image: [H, W] / [H, W, 1] uint8 gray or [H, W, 3] uint8 RGB."""
        color = bool(getattr(self.frontend, "color", False))
        pixels = to_rgb(image) if color else to_grayscale(image)
        original_size = (pixels.shape[0], pixels.shape[1])
        detect_size = downscaled_size(*original_size, self.max_image_side)
        if detect_size != original_size:
            import cv2

            # INTER_AREA averages pixels, which avoids aliasing when shrinking.
            size = (detect_size[1], detect_size[0])
            pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
        features = self.frontend.extract(pixels)
        keypoints = np.asarray(features.keypoints, dtype=np.float32).reshape(-1, 2)
        if detect_size != original_size:
            keypoints = rescale_keypoints(keypoints, detect_size, original_size)
        return Features(
            keypoints=keypoints,
            scores=np.asarray(features.scores, dtype=np.float32).reshape(-1),
            descriptors=features.descriptors,
            image_size=original_size,
            descriptor_kind=features.descriptor_kind,
        )
