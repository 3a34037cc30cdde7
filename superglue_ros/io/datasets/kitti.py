"""KITTI odometry: ``sequences/NN`` with ``image_0/`` (left), optionally ``image_1/`` (right),
``calib.txt`` (P0, P1: rectified, P1[0, 3] = -fx * baseline) and ``times.txt``; the
ground truth is ``../../poses/NN.txt`` (camera 0 to world, 3x4 row-major per frame).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .files import image_size, pinhole, projection, read_numbers, seconds_to_ns
from .poses import with_nearest_rotation
from .types import Dataset, DatasetError, Frame, Intrinsics, Stream

LEFT_TOPIC = "/camera/left/image_rect"
RIGHT_TOPIC = "/camera/right/image_rect"


def recognises(path: Path) -> bool:
    return (path / "image_0").is_dir() and (path / "times.txt").is_file()


def read_calibration(path: Path) -> dict[str, np.ndarray]:
    """calib.txt's ``Name: 12 numbers`` lines as [3, 4] matrices."""
    if not path.is_file():
        raise DatasetError(f"{path} is missing")
    matrices = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        name, _, values = line.partition(":")
        try:
            numbers = [float(v) for v in values.split()]
        except ValueError as error:
            raise DatasetError(f"{path} line {number}: not a number ({error})") from error
        if len(numbers) == 12:
            matrices[name.strip()] = np.asarray(numbers).reshape(3, 4)
    return matrices


def _images(directory: Path, count: int, times: Path) -> list[Path]:
    paths = sorted(directory.glob("*.png"))
    if len(paths) != count:
        raise DatasetError(f"{directory} holds {len(paths)} images but {times} has {count} stamps")
    expected = [f"{i:06d}.png" for i in range(count)]
    if [p.name for p in paths] != expected:
        raise DatasetError(f"{directory}: images must be named 000000.png to {expected[-1]}")
    return paths


def read(path: Path, intrinsics: Intrinsics | None = None) -> Dataset:
    times_file = path / "times.txt"
    times = read_numbers(times_file, 1)[:, 0]
    stamps = [seconds_to_ns(t) for t in times_file.read_text().split()]
    if any(b <= a for a, b in zip(stamps, stamps[1:], strict=False)):
        raise DatasetError(f"{times_file}: stamps are not strictly increasing")
    left = _images(path / "image_0", len(times), times_file)
    right = (
        _images(path / "image_1", len(times), times_file) if (path / "image_1").is_dir() else None
    )
    calib_file = path / "calib.txt"
    calib = read_calibration(calib_file)
    needed = ["P0", "P1"] if right is not None else ["P0"]
    missing = [name for name in needed if name not in calib]
    if missing:
        raise DatasetError(f"{calib_file} has no {', '.join(missing)}")
    poses_file = path.parent.parent / "poses" / f"{path.name}.txt"
    rows = read_numbers(poses_file, 12)
    if len(rows) != len(times):
        raise DatasetError(f"{poses_file} has {len(rows)} poses but {times_file} has {len(times)}")
    width, height = image_size(left[0])
    k = calib["P0"][:, :3].copy() if intrinsics is None else pinhole(intrinsics)
    streams = [Stream("left", LEFT_TOPIC, "camera_left", "image", width, height, k, projection(k))]
    files = [{"left": p} for p in left]
    if right is not None:
        p1 = calib["P1"]
        baseline = -p1[0, 3] / p1[0, 0]
        if baseline <= 0:
            raise DatasetError(f"{calib_file}: P1 gives a baseline of {baseline} m; expected > 0")
        # calib.txt's P1 as it is; with --intrinsics, the new K and the same baseline
        p_right = p1.copy() if intrinsics is None else projection(k, -k[0, 0] * baseline)
        streams.append(
            Stream(
                "right", RIGHT_TOPIC, "camera_right", "image", *image_size(right[0]),
                p_right[:, :3].copy(), p_right,
            )
        )  # fmt: skip
        for entry, p in zip(files, right, strict=True):
            entry["right"] = p
    frames = []
    for index, (stamp, row, entry) in enumerate(zip(stamps, rows, files, strict=True)):
        pose = np.eye(4)
        pose[:3, :] = row.reshape(3, 4)
        frames.append(Frame(index, stamp, entry, with_nearest_rotation(pose)))
    return Dataset("kitti", path, streams, frames, primary="left")
