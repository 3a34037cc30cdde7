"""What the layout readers read besides images: number tables, image sizes, calibration
matrices and decimal seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .types import DatasetError, Intrinsics


def pinhole(intrinsics: Intrinsics) -> np.ndarray:
    """[3, 3] K of (fx, fy, cx, cy)."""
    fx, fy, cx, cy = intrinsics
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def projection(k: np.ndarray, tx: float = 0.0) -> np.ndarray:
    """[3, 4] P = [K | (tx, 0, 0)]: tx = -fx * baseline for a rectified right camera."""
    p = np.zeros((3, 4))
    p[:, :3] = k
    p[0, 3] = tx
    return p


def read_numbers(path: Path, columns: int | None = None, comment: str = "#") -> np.ndarray:
    """[N, columns] float64 of a whitespace- or comma-separated text file (comments skipped)."""
    if not path.is_file():
        raise DatasetError(f"{path} is missing")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split(comment, 1)[0].strip()
        if not line:
            continue
        fields = line.replace(",", " ").split()
        if columns is not None and len(fields) != columns:
            raise DatasetError(
                f"{path} line {number}: expected {columns} numbers, got {len(fields)}"
            )
        try:
            rows.append([float(v) for v in fields])
        except ValueError as error:
            raise DatasetError(f"{path} line {number}: not a number ({error})") from error
    if not rows:
        raise DatasetError(f"{path} holds no data")
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise DatasetError(f"{path}: rows have different numbers of columns ({sorted(widths)})")
    return np.asarray(rows, dtype=np.float64)


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file; DatasetError when it cannot be read."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"cannot read image {path}")
    return int(image.shape[1]), int(image.shape[0])


def seconds_to_ns(seconds: float | str) -> int:
    """Seconds (a float or its decimal text) -> integer nanoseconds, rounded."""
    from decimal import Decimal

    return int((Decimal(str(seconds)) * 1_000_000_000).to_integral_value())
