"""Image folders and camera files: listing, time stamps from names, intrinsics.

No ROS here: the bag writer and the player turn these into messages.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from superglue_ros.io.yaml_files import read_yaml_file

from .stamps import NSEC_PER_SEC, header_fields

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".webp")


def list_images(directory: Path) -> list[Path]:
    """Image files directly in directory, sorted by name; ValueError when there are none."""
    if not directory.is_dir():
        raise FileNotFoundError(f"image directory {directory} does not exist")
    paths = sorted(
        p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not paths:
        suffixes = " ".join(IMAGE_SUFFIXES)
        raise ValueError(f"no images ({suffixes}) in {directory}")
    return paths


def stamp_from_name(path: Path) -> int | None:
    """Nanoseconds from a file name in seconds (``1341847980.722988.png``), None if not one."""
    try:
        seconds = Decimal(path.stem)
    except InvalidOperation:
        return None
    if not seconds.is_finite() or seconds < 0:
        return None
    return int(seconds * NSEC_PER_SEC)


def stamps_for(paths: list[Path], rate_hz: float | None) -> list[int]:
    """One stamp (ns) per image: i / rate_hz when a rate is given, else from the names.

    Raises ValueError when names are not timestamps and no rate is given, or
    when the name stamps are not strictly increasing in name order.
    """
    if rate_hz is not None:
        if rate_hz <= 0:
            raise ValueError(f"--rate must be positive, got {rate_hz}")
        return [round(i * NSEC_PER_SEC / rate_hz) for i in range(len(paths))]
    stamps = [stamp_from_name(p) for p in paths]
    bad = [p.name for p, s in zip(paths, stamps, strict=True) if s is None]
    if bad:
        raise ValueError(
            f"file names are not timestamps in seconds (e.g. {bad[0]}); pass --rate HZ"
        )
    if any(b <= a for a, b in zip(stamps, stamps[1:], strict=False)):
        raise ValueError("timestamps from file names are not strictly increasing in name order")
    return [s for s in stamps if s is not None]


def sort_by_stamp(paths: list[Path]) -> list[Path]:
    """Paths ordered by their name timestamp when every name is one, else by name."""
    stamps = [stamp_from_name(p) for p in paths]
    if all(s is not None for s in stamps):
        return [p for _, p in sorted(zip(stamps, paths, strict=True))]
    return paths


def read_image(path: Path) -> np.ndarray:
    """[H, W] uint8 gray or [H, W, 3] uint8 RGB (alpha dropped); ValueError if unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    if image.dtype != np.uint8:
        raise ValueError(f"image {path} has {image.dtype} pixels; only 8-bit images are supported")
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
        return cv2.cvtColor(image, code)
    return image


def read_gray(path: Path) -> np.ndarray:
    """[H, W] uint8 grayscale; ValueError if unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    return image


def _matrix(node: Any, rows: int, cols: int, name: str) -> list[float]:
    """A ROS calibration matrix ``{rows, cols, data}`` (or a flat list) as a flat list."""
    data = node.get("data") if isinstance(node, dict) else node
    if not isinstance(data, list) or len(data) != rows * cols:
        raise ValueError(f"camera file: {name} must hold {rows * cols} numbers")
    return [float(v) for v in data]


def _vector(node: Any) -> list[float]:
    """A ROS calibration vector ``{data: [...]}`` or a plain list as floats."""
    data = node.get("data", []) if isinstance(node, dict) else node
    return [float(v) for v in data]


def camera_info_fields(path: Path, stamp: int, frame_id: str) -> dict[str, Any]:
    """sensor_msgs/CameraInfo fields from a camera YAML file.

    Two layouts are read: the flat one of the shared data (``image_width``,
    ``image_height``, ``fx``, ``fy``, ``cx``, ``cy``, ``distortion``) and the
    ROS ``camera_calibration`` one (``camera_matrix``, ``distortion_coefficients``,
    ``distortion_model``, ``rectification_matrix``, ``projection_matrix``).
    """
    tree = read_yaml_file(path, "camera file")
    if not isinstance(tree, dict):
        raise ValueError(f"camera file {path} must hold a mapping")
    try:
        width, height = int(tree["image_width"]), int(tree["image_height"])
        if "camera_matrix" in tree:
            k = _matrix(tree["camera_matrix"], 3, 3, "camera_matrix")
            d = _vector(tree.get("distortion_coefficients", []))
        else:
            fx, fy, cx, cy = (float(tree[key]) for key in ("fx", "fy", "cx", "cy"))
            k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
            d = _vector(tree.get("distortion", []))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"camera file {path}: missing or bad entry ({error})") from error
    r = _matrix(tree.get("rectification_matrix", [1, 0, 0, 0, 1, 0, 0, 0, 1]), 3, 3, "R")
    if "projection_matrix" in tree:
        p = _matrix(tree["projection_matrix"], 3, 4, "projection_matrix")
    else:
        p = [k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0]
    model = str(tree.get("distortion_model", "plumb_bob" if len(d) <= 5 else "rational_polynomial"))
    return {
        "header": header_fields(stamp, frame_id),
        "height": height,
        "width": width,
        "distortion_model": model,
        "d": np.asarray(d, dtype=np.float64),
        "k": np.asarray(k, dtype=np.float64),
        "r": np.asarray(r, dtype=np.float64),
        "p": np.asarray(p, dtype=np.float64),
        "binning_x": 0,
        "binning_y": 0,
        "roi": {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False},
    }
