"""TUM RGB-D: ``rgb.txt`` and ``depth.txt`` (``stamp file`` lines), ``groundtruth.txt``
(``stamp tx ty tz qx qy qz qw``, colour camera to world).

Colour and depth are paired the way the benchmark's associate tool pairs them:
stamps closer than MAX_ASSOCIATION_S, the closest pairs first, each image used
once. The ground truth (100 Hz motion capture) is interpolated onto the colour
stamps. Depth PNGs hold 5000 units a metre and are registered to colour; the
bag gets 16UC1 millimetres on the aligned-depth topic. Intrinsics are the
published ones of the Freiburg camera the folder name says (``freiburg1`` ...),
else the ROS default (525, 525, 319.5, 239.5).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .files import image_size, pinhole, projection, read_numbers, seconds_to_ns
from .poses import interpolate_poses
from .types import Dataset, DatasetError, Frame, Intrinsics, Stream

MAX_ASSOCIATION_S = 0.02
DEPTH_UNITS_PER_MM = 5.0  # 5000 a metre
COLOR_TOPIC = "/camera/color/image_raw"
DEPTH_TOPIC = "/camera/aligned_depth_to_color/image_raw"
# (fx, fy, cx, cy), distortion (k1, k2, p1, p2, k3) of each Freiburg camera, as published
CAMERAS: dict[str, tuple[Intrinsics, tuple[float, ...]]] = {
    "freiburg1": ((517.3, 516.5, 318.6, 255.3), (0.2624, -0.9531, -0.0054, 0.0026, 1.1633)),
    "freiburg2": ((520.9, 521.0, 325.1, 249.7), (0.2312, -0.7849, -0.0033, -0.0001, 0.9172)),
    "freiburg3": ((535.4, 539.2, 320.1, 247.6), (0.0, 0.0, 0.0, 0.0, 0.0)),
}
DEFAULT_CAMERA: tuple[Intrinsics, tuple[float, ...]] = ((525.0, 525.0, 319.5, 239.5), ())


def recognises(path: Path) -> bool:
    return (path / "rgb.txt").is_file()


def read_list(path: Path) -> list[tuple[int, Path]]:
    """(stamp ns, file) of an rgb.txt / depth.txt, in file order; files must exist."""
    if not path.is_file():
        raise DatasetError(f"{path} is missing")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 2:
            raise DatasetError(f"{path} line {number}: expected 'stamp file', got {line!r}")
        try:
            stamp = seconds_to_ns(fields[0])
        except ArithmeticError as error:
            raise DatasetError(f"{path} line {number}: bad stamp {fields[0]!r}") from error
        file = path.parent / fields[1]
        if not file.is_file():
            raise DatasetError(f"{path} line {number}: {file} is missing")
        entries.append((stamp, file))
    if not entries:
        raise DatasetError(f"{path} lists no images")
    return entries


def associate(first: list[int], second: list[int], max_difference_ns: int) -> list[tuple[int, int]]:
    """(i, j) index pairs, |first[i] - second[j]| < max_difference, closest first, one-to-one;
    sorted by i."""
    order = np.argsort(second, kind="stable")
    sorted_second = np.asarray(second, dtype=np.int64)[order]
    candidates = []
    for i, stamp in enumerate(first):
        lo = np.searchsorted(sorted_second, stamp - max_difference_ns, side="right")
        hi = np.searchsorted(sorted_second, stamp + max_difference_ns, side="left")
        for position in range(lo, hi):
            candidates.append((abs(stamp - int(sorted_second[position])), i, int(order[position])))
    candidates.sort()
    used_first: set[int] = set()
    used_second: set[int] = set()
    pairs = []
    for _, i, j in candidates:
        if i not in used_first and j not in used_second:
            used_first.add(i)
            used_second.add(j)
            pairs.append((i, j))
    return sorted(pairs)


def camera_for(path: Path, intrinsics: Intrinsics | None) -> tuple[Intrinsics, tuple[float, ...]]:
    if intrinsics is not None:
        return intrinsics, ()
    name = path.resolve().name
    return next((c for key, c in CAMERAS.items() if key in name), DEFAULT_CAMERA)


def read(path: Path, intrinsics: Intrinsics | None = None) -> Dataset:
    rgb_file, depth_file = path / "rgb.txt", path / "depth.txt"
    rgb = read_list(rgb_file)
    depth = read_list(depth_file) if depth_file.exists() else None
    if depth is not None:
        pairs = associate(
            [s for s, _ in rgb], [s for s, _ in depth], round(MAX_ASSOCIATION_S * 1e9)
        )
        if not pairs:
            raise DatasetError(
                f"no image of {rgb_file} has a depth image in {depth_file} within "
                f"{MAX_ASSOCIATION_S} s"
            )
        files = [{"color": rgb[i][1], "depth": depth[j][1]} for i, j in pairs]
        stamps = [rgb[i][0] for i, _ in pairs]
    else:
        files = [{"color": f} for _, f in rgb]
        stamps = [s for s, _ in rgb]
    if any(b <= a for a, b in zip(stamps, stamps[1:], strict=False)):
        raise DatasetError(f"{rgb_file}: stamps are not strictly increasing")
    truth_file = path / "groundtruth.txt"
    truth = read_numbers(truth_file, 8)
    truth_stamps = np.array([seconds_to_ns(repr(float(t))) for t in truth[:, 0]], dtype=np.int64)
    if np.any(np.diff(truth_stamps) <= 0):
        raise DatasetError(f"{truth_file}: stamps are not strictly increasing")
    poses = interpolate_poses(truth_stamps, truth[:, 1:4], truth[:, 4:8], stamps)
    if not any(p is not None for p in poses):
        raise DatasetError(f"{truth_file} covers none of the {len(stamps)} image stamps")
    frames = [
        Frame(i, stamp, entry, pose)
        for i, (stamp, entry, pose) in enumerate(zip(stamps, files, poses, strict=True))
    ]
    (fx, fy, cx, cy), distortion = camera_for(path, intrinsics)
    k = pinhole((fx, fy, cx, cy))
    width, height = image_size(files[0]["color"])
    streams = [
        Stream("color", COLOR_TOPIC, "camera_color", "image", width, height, k, projection(k),
               d=distortion),
    ]  # fmt: skip
    if depth is not None:
        streams.append(
            Stream(
                "depth", DEPTH_TOPIC, "camera_color", "depth", *image_size(files[0]["depth"]),
                k, projection(k), d=distortion, depth_per_mm=DEPTH_UNITS_PER_MM,
            )
        )  # fmt: skip
    notes = []
    if depth is not None and len(frames) < len(rgb):
        notes.append(f"{len(rgb) - len(frames)} colour images have no depth within 0.02 s")
    unposed = sum(p is None for p in poses)
    if unposed:
        notes.append(f"{unposed} frames are outside the ground truth and have no pose")
    return Dataset("tum", path, streams, frames, primary="color", notes=notes)
