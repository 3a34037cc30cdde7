"""Pure-geometry input for the back-end: known 3D points seen by known poses, no images.

Points lie on the walls, floor and ceiling of a box room; the camera moves along
a smooth path inside it. Each visible point is a keypoint whose track id is the
point's index (perfect data association), so frames carry what a front-end with
ideal matches would send.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from superglue_ros.evaluation.room import look_at
from superglue_ros.odometry import (
    CameraIntrinsics,
    FrameObservation,
    KeyframeMatches,
    PoseEstimate,
    VisualOdometry,
)

CAMERA = CameraIntrinsics(fx=400.0, fy=400.0, cx=319.5, cy=239.5, width=640, height=480)


def room_points(count: int, rng: np.random.Generator) -> np.ndarray:
    """[count, 3] points on the six faces of a 6 x 5 x 2.6 m room."""
    half = np.array([3.0, 2.5, 1.3])
    points = rng.uniform(-half, half, size=(count, 3))
    face = rng.integers(0, 6, size=count)
    axis, side = face // 2, np.where(face % 2 == 0, -1.0, 1.0)
    points[np.arange(count), axis] = side * half[axis]
    return points + [0.0, 0.0, 1.3]


def forward_poses(count: int, step: float) -> list[np.ndarray]:
    """Camera-to-world poses driving forward along the room's long axis, step metres
    a frame, drifting slightly sideways (a Sim(3) alignment needs a non-straight path)."""
    target = np.array([3.0, 0.5, 1.1])
    return [
        look_at(np.array([-2.4 + step * i, 0.3 + 0.3 * (i / count) ** 2, 1.2]), target)
        for i in range(count)
    ]


def path_poses(count: int, length: float = 3.2) -> list[np.ndarray]:
    """Camera-to-world poses along an arc of about `length` metres, looking outwards."""
    poses = []
    radius = 1.0
    sweep = length / radius
    for i in range(count):
        angle = -0.5 * sweep + sweep * i / max(count - 1, 1)
        position = np.array([radius * np.cos(angle), radius * np.sin(angle), 1.3])
        target = position + [np.cos(angle * 0.5 + 0.3), np.sin(angle * 0.5 + 0.3), -0.2]
        poses.append(look_at(position, target))
    return poses


@dataclass
class Sequence:
    frames: list[FrameObservation]
    poses: list[np.ndarray]  # ground truth camera-to-world, one per frame
    stamps: list[int]


def make_sequence(
    count: int = 30,
    keyframe_every: int = 3,
    noise_px: float = 0.0,
    outlier_fraction: float = 0.0,
    num_points: int = 3000,
    seed: int = 0,
    poses: list[np.ndarray] | None = None,
    displaced_fraction: float = 0.0,
    displacement_px: tuple[float, float] = (4.0, 40.0),
    stereo_baseline: float | None = None,
    rgbd: bool = False,
    depth_noise: float = 0.0,
    nan_fraction: float = 0.0,
) -> Sequence:
    """Frames seeing room_points from path_poses (or the given poses).

    outlier_fraction: share of each frame's keypoints given the track id of
    another visible point (wrong data association). displaced_fraction: share of
    each frame's keypoints moved by a random offset of displacement_px (a length
    range) while keeping their id, as a matcher without a ratio test sends a
    similar-looking neighbour: wrong matches near the right place, a new draw
    every frame.

    stereo_baseline: frames carry stereo observations of a rectified pair with this
    baseline (metres): right_x is the exact right-image x plus noise_px noise (drawn
    apart from the left's), the depth fx * baseline / (x - right_x) from the noisy
    pair, as the front-end computes it. rgbd: frames carry depths, the exact ones times
    (1 + depth_noise * N(0, 1)). nan_fraction: share of each frame's depths (and right_x)
    set NaN, as holes and unmatched keypoints are.
    """
    rng = np.random.default_rng(seed)
    points = room_points(num_points, rng)
    poses = poses if poses is not None else path_poses(count)
    k = CAMERA.matrix
    frames: list[FrameObservation] = []
    keyframes: list[FrameObservation] = []
    stamps = [1_000_000_000 + i * 100_000_000 for i in range(len(poses))]
    for i, (pose, stamp) in enumerate(zip(poses, stamps, strict=True)):
        world_to_camera = np.linalg.inv(pose)
        camera = points @ world_to_camera[:3, :3].T + world_to_camera[:3, 3]
        depth = camera[:, 2]
        pixels = camera[:, :2] / np.maximum(depth, 1e-9)[:, None] * [k[0, 0], k[1, 1]]
        pixels += [k[0, 2], k[1, 2]]
        visible = (
            (depth > 0.1)
            & (pixels[:, 0] >= 0)
            & (pixels[:, 0] < CAMERA.width)
            & (pixels[:, 1] >= 0)
            & (pixels[:, 1] < CAMERA.height)
        )
        track_ids = np.flatnonzero(visible).astype(np.int64)
        keypoints = pixels[visible] + rng.normal(0.0, noise_px, size=(len(track_ids), 2))
        depths = right_x = None
        if stereo_baseline is not None:
            exact_right = pixels[visible, 0] - k[0, 0] * stereo_baseline / depth[visible]
            right_x = exact_right + rng.normal(0.0, noise_px, size=len(track_ids))
            disparity = keypoints[:, 0] - right_x
            with np.errstate(divide="ignore"):
                depths = np.where(disparity > 0, k[0, 0] * stereo_baseline / disparity, np.nan)
            right_x[~np.isfinite(depths)] = np.nan
        elif rgbd:
            depths = depth[visible] * (1.0 + depth_noise * rng.normal(size=len(track_ids)))
        if depths is not None and nan_fraction > 0:
            holes = rng.random(len(track_ids)) < nan_fraction
            depths[holes] = np.nan
            if right_x is not None:
                right_x[holes] = np.nan
        if displaced_fraction > 0:
            moved = rng.random(len(track_ids)) < displaced_fraction
            angle = rng.uniform(0.0, 2 * np.pi, moved.sum())
            length = rng.uniform(*displacement_px, moved.sum())
            keypoints[moved] += np.c_[np.cos(angle), np.sin(angle)] * length[:, None]
        if outlier_fraction > 0 and len(track_ids) > 2:
            wrong = rng.choice(
                len(track_ids), int(outlier_fraction * len(track_ids)), replace=False
            )
            track_ids[wrong] = track_ids[rng.permutation(wrong)]
            # Keep ids unique in the frame, as the front-end does.
            _, first = np.unique(track_ids, return_index=True)
            keep = np.zeros(len(track_ids), bool)
            keep[first] = True
            track_ids, keypoints = track_ids[keep], keypoints[keep]
            depths = None if depths is None else depths[keep]
            right_x = None if right_x is None else right_x[keep]
        is_keyframe = i % keyframe_every == 0
        matches = []
        for keyframe in reversed(keyframes[-4:]):
            _, in_frame, in_keyframe = np.intersect1d(
                track_ids, keyframe.track_ids, return_indices=True
            )
            matches.append(
                KeyframeMatches(
                    keyframe.frame_id,
                    in_frame.astype(np.int32),
                    in_keyframe.astype(np.int32),
                    np.ones(len(in_frame), np.float32),
                )
            )
        frame = FrameObservation(
            frame_id=i,
            stamp_ns=stamp,
            is_keyframe=is_keyframe,
            image_size=(CAMERA.height, CAMERA.width),
            keypoints=keypoints,
            track_ids=track_ids,
            matches=matches,
            depths=depths,
            right_x=right_x,
        )
        frames.append(frame)
        if is_keyframe:
            keyframes.append(frame)
    return Sequence(frames, poses, stamps)


def run(frames: list[FrameObservation], **conf: float) -> tuple[VisualOdometry, list[PoseEstimate]]:
    """The back-end with CAMERA and conf over frames: (back-end, every pose estimate)."""
    odometry = VisualOdometry(CAMERA, conf)
    estimates = []
    for frame in frames:
        estimates += odometry.process(frame)
    return odometry, estimates
