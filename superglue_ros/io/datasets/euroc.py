"""EuRoC MAV (ASL layout): ``mav0/cam0``, optionally ``cam1`` and ``imu0``, and
``state_groundtruth_estimate0``.

Each ``camN`` has ``data.csv`` (``timestamp [ns], filename``), ``data/`` and
``sensor.yaml`` (T_BS: camera to body, intrinsics, radial-tangential
distortion). Images are raw (distorted, unrectified): each camera_info carries
K and D, and, with cam1, the stereo rectification (R, P; P[0, 3] = -fx * B for
the right camera) that OpenCV's stereoRectify computes from the two T_BS, as a
ROS stereo driver publishes it. The ground truth (body pose in the world,
position + quaternion w, x, y, z) is turned into the pose of cam0 with cam0's
T_BS (and the inverse of the ground truth's own T_BS, identity in the release)
and interpolated onto the cam0 stamps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .files import image_size, pinhole, read_numbers
from .poses import interpolate_poses
from .types import Dataset, DatasetError, Frame, ImuSample, Intrinsics, Stream

LEFT_TOPIC = "/camera/left/image_raw"
RIGHT_TOPIC = "/camera/right/image_raw"


def recognises(path: Path) -> bool:
    return (path / "mav0" / "cam0" / "data.csv").is_file() or (path / "cam0" / "data.csv").is_file()


def _mav0(path: Path) -> Path:
    return path / "mav0" if (path / "mav0").is_dir() else path


def read_sensor_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DatasetError(f"{path} is missing")
    text = "\n".join(line for line in path.read_text().splitlines() if not line.startswith("%"))
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise DatasetError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(tree, dict):
        raise DatasetError(f"{path} must hold a mapping")
    return tree


def sensor_transform(path: Path, tree: dict[str, Any]) -> np.ndarray:
    """[4, 4] T_BS (sensor to body) of a sensor.yaml."""
    try:
        matrix = np.asarray(tree["T_BS"]["data"], dtype=np.float64).reshape(4, 4)
    except (KeyError, TypeError, ValueError) as error:
        raise DatasetError(f"{path}: no 4x4 T_BS ({error})") from error
    return matrix


def read_camera_list(camera_dir: Path) -> list[tuple[int, Path]]:
    """(stamp ns, image) of a camN/data.csv; the images must exist."""
    csv = camera_dir / "data.csv"
    if not csv.is_file():
        raise DatasetError(f"{csv} is missing")
    entries = []
    for number, line in enumerate(csv.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != 2 or not fields[0].isdigit():
            raise DatasetError(f"{csv} line {number}: expected 'timestamp [ns],filename'")
        image = camera_dir / "data" / fields[1]
        if not image.is_file():
            raise DatasetError(f"{csv} line {number}: {image} is missing")
        entries.append((int(fields[0]), image))
    if not entries:
        raise DatasetError(f"{csv} lists no images")
    if any(b[0] <= a[0] for a, b in zip(entries, entries[1:], strict=False)):
        raise DatasetError(f"{csv}: stamps are not strictly increasing")
    return entries


def _camera(camera_dir: Path, intrinsics: Intrinsics | None) -> tuple[np.ndarray, tuple, Any]:
    """(K, distortion, T_BS) of a camN/sensor.yaml."""
    path = camera_dir / "sensor.yaml"
    tree = read_sensor_yaml(path)
    try:
        fx, fy, cx, cy = (float(v) for v in tree["intrinsics"])
        distortion = tuple(float(v) for v in tree.get("distortion_coefficients", []))
    except (KeyError, TypeError, ValueError) as error:
        raise DatasetError(f"{path}: bad or missing intrinsics ({error})") from error
    model = tree.get("distortion_model", "radial-tangential")
    if model != "radial-tangential":
        raise DatasetError(f"{path}: distortion model {model!r}; only radial-tangential is read")
    k = pinhole(intrinsics or (fx, fy, cx, cy))
    return k, distortion, sensor_transform(path, tree)


def _imu(mav0: Path) -> list[ImuSample]:
    csv = mav0 / "imu0" / "data.csv"
    if not csv.is_file():
        return []
    rows = read_numbers(csv, 7)
    stamps = [int(line.split(",")[0]) for line in _data_lines(csv)]
    return [
        ImuSample(stamp, tuple(row[1:4]), tuple(row[4:7]))
        for stamp, row in zip(stamps, rows, strict=True)
    ]


def _data_lines(csv: Path) -> list[str]:
    return [
        line for line in csv.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]


def _camera_poses(mav0: Path, t_body_cam: np.ndarray, stamps: list[int]) -> list:
    truth_dir = mav0 / "state_groundtruth_estimate0"
    csv = truth_dir / "data.csv"
    rows = read_numbers(csv)
    if rows.shape[1] < 8:
        raise DatasetError(f"{csv}: expected at least 8 columns, got {rows.shape[1]}")
    truth_stamps = np.array([int(line.split(",")[0]) for line in _data_lines(csv)], np.int64)
    if np.any(np.diff(truth_stamps) <= 0):
        raise DatasetError(f"{csv}: stamps are not strictly increasing")
    quaternions = rows[:, [5, 6, 7, 4]]  # w, x, y, z -> x, y, z, w
    sensor_yaml = truth_dir / "sensor.yaml"
    t_body_truth = (
        sensor_transform(sensor_yaml, read_sensor_yaml(sensor_yaml))
        if sensor_yaml.is_file()
        else np.eye(4)
    )
    truth_to_cam = np.linalg.inv(t_body_truth) @ t_body_cam
    poses = interpolate_poses(truth_stamps, rows[:, 1:4], quaternions, stamps)
    if not any(p is not None for p in poses):
        raise DatasetError(f"{csv} covers none of the {len(stamps)} image stamps")
    return [None if p is None else p @ truth_to_cam for p in poses]


def read(path: Path, intrinsics: Intrinsics | None = None) -> Dataset:
    import cv2

    mav0 = _mav0(path)
    left = read_camera_list(mav0 / "cam0")
    stamps = [s for s, _ in left]
    k0, d0, t_body_cam0 = _camera(mav0 / "cam0", intrinsics)
    size = image_size(left[0][1])
    files = [{"left": f} for _, f in left]
    r0, p0 = np.eye(3), np.hstack([k0, np.zeros((3, 1))])
    streams = []
    if (mav0 / "cam1").is_dir():
        right = read_camera_list(mav0 / "cam1")
        if [s for s, _ in right] != stamps:
            raise DatasetError(
                f"{mav0 / 'cam1' / 'data.csv'} has {len(right)} stamps that are not those of "
                f"{mav0 / 'cam0' / 'data.csv'} ({len(left)}); both cameras must be paired"
            )
        k1, d1, t_body_cam1 = _camera(mav0 / "cam1", None)
        cam0_to_cam1 = np.linalg.inv(t_body_cam1) @ t_body_cam0
        r0, r1, p0, p1, *_ = cv2.stereoRectify(
            k0, np.asarray(d0, np.float64).reshape(1, -1), k1,
            np.asarray(d1, np.float64).reshape(1, -1), size, cam0_to_cam1[:3, :3].copy(),
            cam0_to_cam1[:3, 3].reshape(3, 1).copy(), flags=cv2.CALIB_ZERO_DISPARITY, alpha=0,
        )  # fmt: skip
        streams.append(
            Stream("right", RIGHT_TOPIC, "cam1", "image", *image_size(right[0][1]), k1, p1, r1, d1)
        )
        for entry, (_, image) in zip(files, right, strict=True):
            entry["right"] = image
    streams.insert(0, Stream("left", LEFT_TOPIC, "cam0", "image", *size, k0, p0, r0, d0))
    poses = _camera_poses(mav0, t_body_cam0, stamps)
    frames = [
        Frame(i, stamp, entry, pose)
        for i, (stamp, entry, pose) in enumerate(zip(stamps, files, poses, strict=True))
    ]
    notes = ["images are raw (distorted); camera_info has D and the stereo rectification"]
    unposed = sum(p is None for p in poses)
    if unposed:
        notes.append(f"{unposed} frames are outside the ground truth and have no pose")
    return Dataset(
        "euroc", path, streams, frames, primary="left", imu=_imu(mav0), imu_frame_id="imu0",
        notes=notes,
    )  # fmt: skip
