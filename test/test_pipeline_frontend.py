"""Image checks and downscaling shared by every frontend."""

from __future__ import annotations

import numpy as np
import pytest

from superglue_ros.pipeline import Features, OrbFrontend, PreprocessingFrontend, to_grayscale
from superglue_ros.pipeline.frontend import downscaled_size

from synthetic import textured_image


class BrightCentroidFrontend:
    """One keypoint at the centroid of the bright pixels; remembers the image it saw."""

    def extract(self, image: np.ndarray) -> Features:
        self.seen_shape = image.shape
        ys, xs = np.nonzero(image > 127)
        weights = image[ys, xs].astype(np.float64)
        centroid = [np.average(xs, weights=weights), np.average(ys, weights=weights)]
        return Features(
            keypoints=np.array([centroid], np.float32),
            scores=np.ones(1, np.float32),
            descriptors=np.zeros((1, 4), np.float32),
            image_size=image.shape[:2],
        )


def test_to_grayscale_accepts_gray_single_channel_and_rgb():
    gray = textured_image(60, 80)
    np.testing.assert_array_equal(to_grayscale(gray), gray)
    np.testing.assert_array_equal(to_grayscale(gray[:, :, None]), gray)
    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    converted = to_grayscale(rgb)
    assert converted.shape == (60, 80) and converted.dtype == np.uint8
    assert converted[0, 0] == 76  # 0.299 * 255: the channels are read as RGB, not BGR


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((10, 10), np.uint16), "uint8"),
        (np.zeros((10, 10), bool), "uint8"),
        (np.zeros((10, 10, 4), np.uint8), "channels"),
        (np.zeros((10, 0), np.uint8), "empty"),
        (np.zeros((0, 0, 3), np.uint8), "empty"),
        (np.zeros((2, 10, 10, 3), np.uint8), "shape"),
        ("image.png", "numpy array"),
    ],
)
def test_to_grayscale_rejects_with_a_reason(image, message):
    with pytest.raises(ValueError, match=message):
        to_grayscale(image)


def test_downscaled_size():
    assert downscaled_size(480, 640, 0) == (480, 640)
    assert downscaled_size(480, 640, 1000) == (480, 640)
    assert downscaled_size(480, 640, 320) == (240, 320)
    assert downscaled_size(640, 480, 320) == (320, 240)


def test_downscaled_keypoints_come_back_in_original_pixels():
    image = np.zeros((480, 640), np.uint8)
    image[200:220, 100:120] = 255  # centroid (109.5, 209.5)
    inner = BrightCentroidFrontend()
    features = PreprocessingFrontend(inner, max_image_side=320).extract(image)
    assert inner.seen_shape == (240, 320)
    assert features.image_size == (480, 640)
    np.testing.assert_allclose(features.keypoints, [[109.5, 209.5]], atol=0.05)


def test_no_downscaling_when_small_enough():
    image = np.zeros((100, 200), np.uint8)
    image[10:20, 30:40] = 255
    inner = BrightCentroidFrontend()
    features = PreprocessingFrontend(inner, max_image_side=200).extract(image)
    assert inner.seen_shape == (100, 200)
    np.testing.assert_allclose(features.keypoints, [[34.5, 14.5]], atol=1e-4)


def test_downscaled_orb_keypoints_lie_on_the_original_image():
    image = textured_image(480, 640, seed=3)
    features = PreprocessingFrontend(OrbFrontend(500), max_image_side=320).extract(image)
    assert features.image_size == (480, 640)
    assert len(features) > 100
    assert features.keypoints[:, 0].max() > 320  # spans the full-size image
    assert (features.keypoints >= -0.5).all()
    assert (features.keypoints[:, 0] < 640).all() and (features.keypoints[:, 1] < 480).all()


class _RecordingFrontend:
    """Records the image it is given; returns one keypoint."""

    def __init__(self, color: bool) -> None:
        self.color = color
        self.seen: list[np.ndarray] = []

    def extract(self, image: np.ndarray) -> Features:
        self.seen.append(image)
        return Features(
            np.array([[1.0, 2.0]], np.float32),
            np.ones(1, np.float32),
            np.zeros((1, 4), np.float32),
            image.shape[:2],
        )


def test_colour_frontends_get_rgb_and_the_others_gray() -> None:
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[..., 0] = 200  # red
    colour, gray = _RecordingFrontend(True), _RecordingFrontend(False)
    PreprocessingFrontend(colour).extract(rgb)
    PreprocessingFrontend(gray).extract(rgb)
    np.testing.assert_array_equal(colour.seen[0], rgb)
    assert gray.seen[0].shape == (40, 60) and gray.seen[0].max() < 200
    # A gray camera feeds a colour frontend three equal channels, downscaled like gray.
    PreprocessingFrontend(colour, max_image_side=30).extract(np.full((40, 60), 77, np.uint8))
    assert colour.seen[1].shape == (20, 30, 3) and (colour.seen[1] == 77).all()
