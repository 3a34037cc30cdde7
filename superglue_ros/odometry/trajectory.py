"""Trajectories as TUM files and their accuracy against ground truth (with evo).

TUM format: one pose a line, ``stamp tx ty tz qx qy qz qw`` (seconds, metres,
unit quaternion), the pose of the camera in the world (camera-to-world); lines
starting with ``#`` are comments. Accuracy is computed by ``evo`` (imported
only here, when asked for): the estimate is associated with the ground truth by
stamp and aligned by evo's Umeyama twice: by an SE(3) (rotation and translation:
the error of a metric trajectory, stereo or RGB-D) and by a Sim(3) (with scale:
monocular scale is arbitrary); ATE is taken after each, RPE after the Sim(3).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from superglue_ros.io.stamps import NSEC_PER_SEC

TUM_COLUMNS = "stamp tx ty tz qx qy qz qw"
MAX_STAMP_DIFF_S = 0.01  # ground truth and estimate poses closer in time than this pair up


class TrajectoryError(ValueError):
    """A trajectory file that cannot be used; the message names the file and the problem."""


def quaternion_xyzw(rotation: np.ndarray) -> np.ndarray:
    """[4] unit quaternion (x, y, z, w), w >= 0, of a [3, 3] rotation matrix."""
    r = np.asarray(rotation, dtype=np.float64)
    # The largest of the four squared components decides the stable formula.
    squares = np.array(
        [
            1 + r[0, 0] - r[1, 1] - r[2, 2],
            1 - r[0, 0] + r[1, 1] - r[2, 2],
            1 - r[0, 0] - r[1, 1] + r[2, 2],
            1 + r[0, 0] + r[1, 1] + r[2, 2],
        ]
    )
    i = int(np.argmax(squares))
    s = 2.0 * np.sqrt(max(squares[i], 1e-300))
    if i == 0:
        q = [0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s]
    elif i == 1:
        q = [(r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s]
    elif i == 2:
        q = [(r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s, (r[1, 0] - r[0, 1]) / s]
    else:
        q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s]
    quaternion = np.array(q) / np.linalg.norm(q)
    return quaternion if quaternion[3] >= 0 else -quaternion


def rotation_from_quaternion(xyzw: np.ndarray) -> np.ndarray:
    """[3, 3] rotation of a (not necessarily unit) quaternion (x, y, z, w)."""
    x, y, z, w = np.asarray(xyzw, dtype=np.float64) / np.linalg.norm(xyzw)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def tum_line(stamp_ns: int, pose: np.ndarray) -> str:
    """One TUM line of a [4, 4] camera-to-world pose; the stamp printed exactly."""
    sec, nsec = divmod(int(stamp_ns), NSEC_PER_SEC)
    t = pose[:3, 3]
    q = quaternion_xyzw(pose[:3, :3])
    numbers = " ".join(f"{v:.9f}" for v in (*t, *q))
    return f"{sec}.{nsec:09d} {numbers}"


def write_tum(path: Path, poses: Iterable[tuple[int, np.ndarray]]) -> int:
    """Write (stamp ns, [4, 4] camera-to-world) pairs; returns the number of lines."""
    lines = [tum_line(stamp, pose) for stamp, pose in poses]
    path.write_text(f"# {TUM_COLUMNS}\n" + "".join(line + "\n" for line in lines))
    return len(lines)


@dataclass
class Trajectory:
    """stamps: [N] float64 seconds, strictly increasing; positions [N, 3]; quaternions
    [N, 4] (x, y, z, w); camera-to-world."""

    stamps: np.ndarray
    positions: np.ndarray
    quaternions: np.ndarray

    def __len__(self) -> int:
        return len(self.stamps)


def read_tum(path: Path) -> Trajectory:
    """A TUM file; TrajectoryError naming the file, line and problem when it is not one."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise TrajectoryError(f"cannot read trajectory file {path}: {error}") from error
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.replace(",", " ").split()
        if len(fields) != 8:
            raise TrajectoryError(
                f"{path} line {number}: expected 8 columns ({TUM_COLUMNS}), got {len(fields)}"
            )
        try:
            values = [float(v) for v in fields]
        except ValueError as error:
            raise TrajectoryError(f"{path} line {number}: not a number ({error})") from error
        if not np.all(np.isfinite(values)):
            raise TrajectoryError(f"{path} line {number}: non-finite value")
        if np.linalg.norm(values[4:]) < 1e-9:
            raise TrajectoryError(f"{path} line {number}: zero quaternion")
        rows.append(values)
    if not rows:
        raise TrajectoryError(f"{path} holds no poses (expected lines of {TUM_COLUMNS})")
    data = np.array(rows)
    order = np.argsort(data[:, 0], kind="stable")
    data = data[order]
    if np.any(np.diff(data[:, 0]) <= 0):
        raise TrajectoryError(f"{path}: two poses share a stamp")
    quaternions = data[:, 4:] / np.linalg.norm(data[:, 4:], axis=1, keepdims=True)
    return Trajectory(data[:, 0], data[:, 1:4], quaternions)


def trajectory_from_poses(poses: Iterable[tuple[int, np.ndarray]]) -> Trajectory:
    """A Trajectory of (stamp ns, [4, 4]) pairs (sorted by stamp)."""
    items = sorted(poses, key=lambda item: item[0])
    if not items:
        return Trajectory(np.zeros(0), np.zeros((0, 3)), np.zeros((0, 4)))
    return Trajectory(
        np.array([stamp / NSEC_PER_SEC for stamp, _ in items]),
        np.array([pose[:3, 3] for _, pose in items]),
        np.array([quaternion_xyzw(pose[:3, :3]) for _, pose in items]),
    )


def _evo_trajectory(trajectory: Trajectory) -> Any:
    from evo.core.trajectory import PoseTrajectory3D

    return PoseTrajectory3D(
        positions_xyz=trajectory.positions,
        orientations_quat_wxyz=trajectory.quaternions[:, [3, 0, 1, 2]],
        timestamps=trajectory.stamps,
    )


def evaluate(
    estimate: Trajectory,
    groundtruth: Trajectory,
    groundtruth_name: str = "ground truth",
    max_diff_s: float = MAX_STAMP_DIFF_S,
) -> dict[str, Any]:
    """ATE after an SE(3) and after a Sim(3) alignment, and RPE between consecutive poses,
    computed by evo.

    Returns ``ate_rmse_m``, ``ate_mean_m``, ``ate_max_m`` (after the Sim(3)),
    ``ate_se3_rmse_m``, ``ate_se3_mean_m``, ``ate_se3_max_m`` (after the SE(3): no
    scale correction), ``rpe_translation_rmse_m``, ``rpe_rotation_rmse_deg`` (between
    consecutive associated poses, after the Sim(3)), ``scale`` (of the Sim(3): 1 for
    a trajectory in metres), ``associated`` (pose pairs) and ``aligned`` /
    ``reference`` ([M, 3] positions after the Sim(3), for plots) with
    ``aligned_stamps`` ([M] seconds, the estimate's). TrajectoryError
    when fewer than three estimated poses match a ground-truth stamp.
    """
    from evo.core import metrics, sync

    if len(estimate) < 3:
        raise TrajectoryError(f"the estimate has {len(estimate)} poses; at least 3 are needed")
    overlap = np.min(np.abs(groundtruth.stamps[None, :] - estimate.stamps[:, None]), axis=1)
    if np.count_nonzero(overlap <= max_diff_s) < 3:
        raise TrajectoryError(
            f"{groundtruth_name}: no overlapping stamps with the estimate (fewer than 3 within "
            f"{max_diff_s * 1e3:g} ms; ground truth spans {groundtruth.stamps[0]:.3f} to "
            f"{groundtruth.stamps[-1]:.3f} s, the estimate {estimate.stamps[0]:.3f} to "
            f"{estimate.stamps[-1]:.3f} s)"
        )
    reference, estimated = sync.associate_trajectories(
        _evo_trajectory(groundtruth), _evo_trajectory(estimate), max_diff=max_diff_s
    )
    rigid = copy.deepcopy(estimated)
    rigid.align(reference, correct_scale=False)
    ape_se3 = metrics.APE(metrics.PoseRelation.translation_part)
    ape_se3.process_data((reference, rigid))
    _, _, scale = estimated.align(reference, correct_scale=True)
    ape = metrics.APE(metrics.PoseRelation.translation_part)
    ape.process_data((reference, estimated))
    rpe_translation = metrics.RPE(
        metrics.PoseRelation.translation_part, delta=1, delta_unit=metrics.Unit.frames
    )
    rpe_translation.process_data((reference, estimated))
    rpe_rotation = metrics.RPE(
        metrics.PoseRelation.rotation_angle_deg, delta=1, delta_unit=metrics.Unit.frames
    )
    rpe_rotation.process_data((reference, estimated))
    statistic = metrics.StatisticsType
    return {
        "ate_rmse_m": float(ape.get_statistic(statistic.rmse)),
        "ate_mean_m": float(ape.get_statistic(statistic.mean)),
        "ate_max_m": float(ape.get_statistic(statistic.max)),
        "ate_se3_rmse_m": float(ape_se3.get_statistic(statistic.rmse)),
        "ate_se3_mean_m": float(ape_se3.get_statistic(statistic.mean)),
        "ate_se3_max_m": float(ape_se3.get_statistic(statistic.max)),
        "rpe_translation_rmse_m": float(rpe_translation.get_statistic(statistic.rmse)),
        "rpe_rotation_rmse_deg": float(rpe_rotation.get_statistic(statistic.rmse)),
        "scale": float(scale),
        "associated": int(reference.num_poses),
        "aligned": np.asarray(estimated.positions_xyz),
        "reference": np.asarray(reference.positions_xyz),
        "aligned_stamps": np.asarray(estimated.timestamps),
    }
