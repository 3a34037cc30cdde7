"""Rectifying a raw stereo pair from its camera_info, as image_proc does (stereo.rectify).

A stereo driver that publishes raw images still publishes the pair's rectification
in each camera_info: K and D of the raw camera, R the rotation into the rectified
frame, P the rectified projection (both cameras' P rows agree; the right one's
P[0, 3] = -fx * baseline). Rectified pixel (u, v) of one camera comes from the raw
pixel that OpenCV's initUndistortRectifyMap(K, D, R, P) maps it to, which is what
image_proc's rectify node (image_geometry's rectifyImage) computes; the images are
resampled bilinearly. The rectified pair's calibration is then the P matrices'
(stereo_calibration with R = identity), so a pair whose P rows disagree cannot be
rectified this way and is refused with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .stereo import NotRectifiedError, stereo_calibration
from .types import StereoCalibration

# camera_info distortion models and the OpenCV function family that undoes each.
PINHOLE_MODELS = ("plumb_bob", "rational_polynomial", "")
FISHEYE_MODELS = ("equidistant",)
IDENTITY_TOLERANCE = 1e-9


@dataclass(frozen=True)
class RawCamera:
    """What a camera_info says about one raw camera of a calibrated pair."""

    width: int
    height: int
    k: np.ndarray  # [3, 3]
    d: np.ndarray  # [N] distortion coefficients of distortion_model
    r: np.ndarray  # [3, 3] rotation into the rectified frame
    p: np.ndarray  # [3, 4] rectified projection
    distortion_model: str = "plumb_bob"

    @classmethod
    def from_fields(
        cls, width: int, height: int, k: object, d: object, r: object, p: object, model: str
    ) -> RawCamera:
        def matrix(values: object, shape: tuple[int, int], name: str) -> np.ndarray:
            array = np.asarray(values, dtype=np.float64)
            if array.size != shape[0] * shape[1]:
                raise NotRectifiedError(
                    f"cannot rectify: camera_info {name} must have {shape[0] * shape[1]} "
                    f"values, got {array.size}"
                )
            return array.reshape(shape)

        return cls(
            int(width),
            int(height),
            matrix(k, (3, 3), "K"),
            np.asarray(d, dtype=np.float64).reshape(-1),
            matrix(r, (3, 3), "R"),
            matrix(p, (3, 4), "P"),
            str(model),
        )

    def is_rectified(self) -> bool:
        """R the identity, no distortion and P's 3 x 3 part equal to K: nothing to undo."""
        return (
            np.abs(self.r - np.eye(3)).max() <= IDENTITY_TOLERANCE
            and not np.any(self.d)
            and np.abs(self.p[:, :3] - self.k).max() <= IDENTITY_TOLERANCE * max(1.0, self.k[0, 0])
        )

    def maps(self) -> tuple[np.ndarray, np.ndarray]:
        """float32 [H, W] x and y maps: rectified pixel -> raw pixel (cv2.remap's)."""
        import cv2

        size = (self.width, self.height)
        new_k = self.p[:, :3]
        if self.distortion_model in FISHEYE_MODELS:
            if self.d.size < 4:
                raise NotRectifiedError(
                    "cannot rectify: equidistant distortion needs 4 coefficients, got "
                    f"{self.d.size}"
                )
            return cv2.fisheye.initUndistortRectifyMap(
                self.k, self.d[:4], self.r, new_k, size, cv2.CV_32FC1
            )
        if self.distortion_model not in PINHOLE_MODELS:
            raise NotRectifiedError(
                f"cannot rectify: distortion model {self.distortion_model!r} is not one of "
                f"{', '.join(m for m in PINHOLE_MODELS + FISHEYE_MODELS if m)}"
            )
        distortion = self.d if self.d.size else None
        return cv2.initUndistortRectifyMap(self.k, distortion, self.r, new_k, size, cv2.CV_32FC1)


@dataclass(frozen=True)
class StereoRectification:
    """The maps that rectify a raw pair and the calibration of the rectified pair."""

    calibration: StereoCalibration
    size: tuple[int, int]  # (width, height) of both cameras' images
    left_maps: tuple[np.ndarray, np.ndarray]
    right_maps: tuple[np.ndarray, np.ndarray]

    def apply(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rectified left and right images of a raw pair (same dtype and channels)."""
        import cv2

        for name, image in (("left", left), ("right", right)):
            if (image.shape[1], image.shape[0]) != self.size:
                raise ValueError(
                    f"cannot rectify: the {name} image is {image.shape[1]}x{image.shape[0]}, "
                    f"its camera_info says {self.size[0]}x{self.size[1]}"
                )
        return tuple(  # type: ignore[return-value]
            cv2.remap(image, *maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            for image, maps in ((left, self.left_maps), (right, self.right_maps))
        )


def stereo_rectification(left: RawCamera, right: RawCamera) -> StereoRectification | None:
    """How to rectify the raw pair; None when both images are rectified already.

    Raises NotRectifiedError when the camera_info cannot rectify the pair (P rows
    that disagree, different image sizes, an unknown distortion model).
    """
    if (left.width, left.height) != (right.width, right.height):
        raise NotRectifiedError(
            f"cannot rectify: the cameras differ in size ({left.width}x{left.height}, "
            f"{right.width}x{right.height})"
        )
    identity = np.eye(3).reshape(-1)
    try:
        calibration = stereo_calibration(identity, left.p, identity, right.p)
    except NotRectifiedError as error:
        raise NotRectifiedError(f"cannot rectify the pair from its camera_info: {error}") from error
    if left.is_rectified() and right.is_rectified():
        return None
    return StereoRectification(calibration, (left.width, left.height), left.maps(), right.maps())
