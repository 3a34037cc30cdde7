"""Poses given as position + quaternion, and ground truth interpolated onto image stamps."""

from __future__ import annotations

import numpy as np

MAX_INTERPOLATION_GAP_S = 0.1  # no pose is made up across a longer hole in the ground truth


def with_nearest_rotation(pose: np.ndarray) -> np.ndarray:
    """pose with its 3x3 block replaced by the nearest rotation (SVD): datasets print
    their matrices rounded, and KinectFusion's are not quite orthonormal."""
    u, _, vt = np.linalg.svd(pose[:3, :3])
    out = np.array(pose, dtype=np.float64)
    out[:3, :3] = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt
    return out


def interpolate_poses(
    stamps_ns: np.ndarray,
    positions: np.ndarray,
    quaternions_xyzw: np.ndarray,
    targets_ns: list[int],
    max_gap_s: float = MAX_INTERPOLATION_GAP_S,
) -> list[np.ndarray | None]:
    """[4, 4] pose at each target stamp: linear in position, spherical-linear in rotation.

    stamps_ns [N] strictly increasing. A target outside the samples' span, or
    between two samples more than max_gap_s apart, gets None.
    """
    from scipy.spatial.transform import Rotation, Slerp

    stamps = np.asarray(stamps_ns, dtype=np.int64)
    if len(stamps) < 2:
        return [None] * len(targets_ns)
    slerp = Slerp(stamps.astype(np.float64), Rotation.from_quat(quaternions_xyzw))
    poses: list[np.ndarray | None] = []
    for target in targets_ns:
        after = int(np.searchsorted(stamps, target, side="left"))
        if after < len(stamps) and stamps[after] == target:
            before = after
        elif after == 0 or after == len(stamps):
            poses.append(None)
            continue
        else:
            before = after - 1
            if (stamps[after] - stamps[before]) * 1e-9 > max_gap_s:
                poses.append(None)
                continue
        t0, t1 = stamps[before], stamps[after]
        weight = 0.0 if t1 == t0 else (target - t0) / (t1 - t0)
        pose = np.eye(4)
        pose[:3, 3] = (1 - weight) * positions[before] + weight * positions[after]
        pose[:3, :3] = slerp([float(target)]).as_matrix()[0]
        poses.append(pose)
    return poses
