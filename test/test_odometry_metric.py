"""The back-end with stereo and RGB-D depths: a map from the first frame at metric scale,
stereo factors in bundle adjustment, and trajectories that need no scale alignment.

Input is pure geometry (known points seen from known poses) with the per-keypoint
depths and right-image x a front-end sends for stereo or RGB-D input.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from superglue_ros.odometry import (
    TRACKING,
    VisualOdometry,
    geometry,
    observation_from_message,
)
from superglue_ros.odometry.trajectory import (
    evaluate,
    rotation_from_quaternion,
    trajectory_from_poses,
)

from conftest import require_module
from odometry_synthetic import CAMERA, forward_poses, make_sequence, path_poses, run

BASELINE = 0.1  # metres: disparities of 10-40 px over the room's 1-4 m depths at fx = 400


@pytest.fixture(autouse=True)
def _gtsam() -> None:
    require_module("gtsam", "the back-end's bundle adjustment needs GTSAM (make setup installs it)")
    require_module("evo", "trajectory errors are computed with evo (make setup installs it)")


def accuracy(odometry: VisualOdometry, sequence) -> dict:
    poses = [(s, p) for _, s, p in odometry.trajectory()]
    truth = trajectory_from_poses(list(zip(sequence.stamps, sequence.poses, strict=True)))
    return evaluate(trajectory_from_poses(poses), truth)


def path_length(sequence) -> float:
    positions = np.array([p[:3, 3] for p in sequence.poses])
    return float(np.sum(np.linalg.norm(np.diff(positions, axis=0), axis=1)))


def assert_metric_from_frame_zero(odometry: VisualOdometry, estimates: list, frames: int) -> None:
    first = estimates[0]
    assert first.frame_id == 0 and first.pose is not None and first.state == TRACKING
    assert "at metric scale" in first.reason
    # no frame waited: each got its answer on arrival, with a pose
    assert [e.frame_id for e in estimates] == list(range(frames))
    assert all(e.pose is not None for e in estimates)
    assert odometry.metric and odometry.maps_started == 1
    np.testing.assert_allclose(odometry.trajectory()[0][2], np.eye(4), atol=1e-12)


@pytest.mark.parametrize("mode", ["stereo", "rgbd"])
def test_exact_depths_give_the_trajectory_in_metres(mode: str) -> None:
    depth = {"stereo_baseline": BASELINE} if mode == "stereo" else {"rgbd": True}
    sequence = make_sequence(30, **depth)
    odometry, estimates = run(sequence.frames)
    assert_metric_from_frame_zero(odometry, estimates, 30)
    result = accuracy(odometry, sequence)
    # exact data: only the optimiser's convergence separates the estimate from the truth
    assert result["ate_se3_rmse_m"] < 1e-5 * path_length(sequence)
    assert result["scale"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("mode", "depth"),
    [
        ("stereo", {"stereo_baseline": BASELINE}),
        ("rgbd", {"rgbd": True, "depth_noise": 0.01, "nan_fraction": 0.1}),
    ],
)
def test_noisy_depths_stay_metric_without_scale_alignment(mode: str, depth: dict) -> None:
    # Half-pixel keypoint noise; stereo: each disparity off by about 0.7 px (2-7 % of its
    # depth); RGB-D: 1 % depth noise, a tenth of the depths missing. Each keyframe sees
    # about 400 points, so its scale is held to a few 0.1 %; 1 % leaves a wide margin.
    # 45 frames on a 3.2 m arc: the window of 8 keyframes slides along it five times, so
    # a scale drift would show in the second half.
    sequence = make_sequence(45, noise_px=0.5, **depth)
    odometry, estimates = run(sequence.frames)
    assert_metric_from_frame_zero(odometry, estimates, 45)
    result = accuracy(odometry, sequence)
    assert result["ate_se3_rmse_m"] < 0.01 * path_length(sequence)
    assert result["scale"] == pytest.approx(1.0, abs=0.01)
    # no scale drift: the path's second half has the scale of the whole
    half = dataclasses.replace(
        sequence, poses=sequence.poses[22:], stamps=sequence.stamps[22:], frames=[]
    )
    poses = [(s, p) for f, s, p in odometry.trajectory() if f >= 22]
    truth = trajectory_from_poses(list(zip(half.stamps, half.poses, strict=True)))
    assert evaluate(trajectory_from_poses(poses), truth)["scale"] == pytest.approx(1.0, abs=0.01)


def test_frames_without_depth_are_triangulated_in_the_metric_map() -> None:
    # Only the first keyframe has depths: every later landmark comes from triangulation
    # against keyframes posed from the metric map, so the metric scale carries on.
    sequence = make_sequence(30, stereo_baseline=BASELINE)
    frames = [sequence.frames[0]] + [
        dataclasses.replace(f, depths=np.full(len(f.track_ids), np.nan), right_x=None)
        for f in sequence.frames[1:]
    ]
    odometry, estimates = run(frames)
    assert_metric_from_frame_zero(odometry, estimates, 30)
    result = accuracy(odometry, sequence)
    assert result["ate_se3_rmse_m"] < 1e-4 * path_length(sequence)
    assert result["scale"] == pytest.approx(1.0, abs=1e-4)


def test_wrong_depths_are_rejected() -> None:
    # 5 % of every frame's depths off by a factor of 0.5-2 (an RGB-D edge, a wrong
    # left-right match): the robust kernel and the disparity check keep them out.
    sequence = make_sequence(30, noise_px=0.5, rgbd=True, depth_noise=0.01)
    rng = np.random.default_rng(1)
    frames = []
    for frame in sequence.frames:
        depths = frame.depths.copy()
        wrong = rng.random(len(depths)) < 0.05
        depths[wrong] *= np.exp(rng.choice([-1.0, 1.0], wrong.sum()) * rng.uniform(0.3, 0.7))
        frames.append(dataclasses.replace(frame, depths=depths))
    odometry, estimates = run(frames)
    assert_metric_from_frame_zero(odometry, estimates, 30)
    result = accuracy(odometry, sequence)
    assert result["ate_se3_rmse_m"] < 0.01 * path_length(sequence)
    assert result["scale"] == pytest.approx(1.0, abs=0.01)


def test_forward_motion_with_stereo_needs_no_parallax() -> None:
    # Where mono waits several frames for parallax, stereo starts at frame 0.
    sequence = make_sequence(
        poses=forward_poses(30, 0.03), keyframe_every=2, noise_px=0.5, stereo_baseline=BASELINE
    )
    odometry, estimates = run(sequence.frames)
    assert_metric_from_frame_zero(odometry, estimates, 30)
    result = accuracy(odometry, sequence)
    assert result["ate_se3_rmse_m"] < 0.01 * path_length(sequence)


def test_later_depths_place_landmarks_once_a_second_view_agrees() -> None:
    frames = make_sequence(30, rgbd=True, nan_fraction=0.3).frames
    odometry = VisualOdometry(CAMERA)
    odometry.process(frames[0])
    initial = set(odometry._landmarks)  # the first keyframe's depths, unchecked
    assert len(initial) > 0.6 * len(frames[0].track_ids)
    for frame in frames[1:4]:
        odometry.process(frame)
    added = set(odometry._landmarks) - initial
    new_at_3 = set(frames[3].track_ids.tolist()) - set(frames[0].track_ids.tolist())
    # keyframe 3 maps tracks keyframe 0 saw without a depth, none it sees first
    assert added and not added & new_at_3
    for frame in frames[4:7]:
        odometry.process(frame)
    assert set(odometry._landmarks) & new_at_3  # keyframe 6 is their second view


def test_a_keyframe_the_map_cannot_place_is_bridged_at_the_depths_scale() -> None:
    # The map lags (only 10 of the landmarks keyframe 15 sees are left, PnP needs 15):
    # the two-view motion from keyframe 12 takes its scale from keyframe 12's depths.
    sequence = make_sequence(30, stereo_baseline=BASELINE)
    odometry = VisualOdometry(CAMERA)
    for frame in sequence.frames[:15]:
        odometry.process(frame)
    keyframe = sequence.frames[15]
    assert keyframe.is_keyframe
    seen = [t for t in keyframe.track_ids.tolist() if t in odometry._landmarks]
    for track in seen[10:]:
        del odometry._landmarks[track]
    (estimate,) = odometry.process(keyframe)
    assert estimate.pose is not None and estimate.state == TRACKING
    truth = np.linalg.inv(sequence.poses[0]) @ sequence.poses[15]
    # exact input: the bridged pose is exact but for the optimiser's convergence
    np.testing.assert_allclose(estimate.pose[:3, 3], truth[:3, 3], atol=1e-5)
    for frame in sequence.frames[16:]:
        odometry.process(frame)
    assert odometry.maps_started == 1 and len(odometry.trajectory()) == 30


def test_a_narrow_stereo_pair_maps_its_nearest_far_points_too() -> None:
    # A 5 cm baseline: only the points within 40 baselines (2 m) count as close, about
    # 60 at the first keyframe; the nearest far ones make up min_depth_landmarks.
    frames = make_sequence(12, stereo_baseline=0.05).frames
    first = frames[0]
    close = int(np.count_nonzero(first.depths <= 40 * 0.05))
    assert 40 <= close < 100  # enough to start a map, fewer than min_depth_landmarks
    _, estimates = run(frames)
    assert estimates[0].inliers == 100
    _, estimates = run(frames, min_depth_landmarks=0)
    assert estimates[0].inliers == close


def test_too_few_depths_fall_back_to_the_monocular_start() -> None:
    sequence = make_sequence(30, rgbd=True)
    frames = [
        dataclasses.replace(f, depths=np.full(len(f.track_ids), np.nan)) for f in sequence.frames
    ]
    odometry, estimates = run(frames)
    assert not odometry.metric and odometry.maps_started == 1
    assert [e.frame_id for e in estimates if e.pose is None] == [0, 1, 2]  # as mono
    assert len(odometry.trajectory()) == 30
    assert accuracy(odometry, sequence)["ate_rmse_m"] < 1e-5 * path_length(sequence)


def test_stereo_baseline_is_read_from_the_depths() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 640, 200)
    depths = rng.uniform(1.0, 20.0, 200).astype(np.float32)  # as the message carries them
    # cx_right 3 px left of cx_left: the disparity is x - right_x plus 3 px
    right_x = (x - 400.0 * 0.54 / depths.astype(np.float64) + 3.0).astype(np.float32)
    # float32 right_x and depths: about 1e-7 relative each, the slope fit keeps that
    assert geometry.stereo_baseline(400.0, x, right_x, depths) == pytest.approx(0.54, rel=1e-5)
    flat = np.full(200, 5.0)  # one depth: no line to fit, the offset is taken as zero
    assert geometry.stereo_baseline(400.0, x, x - 400.0 * 0.54 / flat, flat) == pytest.approx(0.54)
    assert geometry.stereo_baseline(400.0, x, np.full(200, np.nan), depths) is None


def test_messages_carry_depths_and_right_x() -> None:
    def message(keypoints: int, depths: list, right_x: list) -> SimpleNamespace:
        features = SimpleNamespace(
            keypoints=np.zeros(2 * keypoints, np.float32),
            track_ids=np.arange(keypoints),
            image_width=640,
            image_height=480,
            depths=np.array(depths, np.float32),
            right_x=np.array(right_x, np.float32),
        )
        return SimpleNamespace(
            frame_id=3,
            header=SimpleNamespace(stamp=SimpleNamespace(sec=1, nanosec=0)),
            is_keyframe=True,
            features=features,
            matches=[],
            evicted_keyframe_ids=[],
        )

    mono = observation_from_message(message(2, [], []))
    assert mono.depths is None and mono.right_x is None
    rgbd = observation_from_message(message(2, [1.5, np.nan], []))
    np.testing.assert_array_equal(rgbd.depths, [1.5, np.nan])
    assert rgbd.right_x is None
    stereo = observation_from_message(message(2, [1.5, np.nan], [10.0, np.nan]))
    np.testing.assert_array_equal(stereo.right_x, [10.0, np.nan])
    with pytest.raises(ValueError, match="2 keypoints but 1 depths"):
        observation_from_message(message(2, [1.5], []))
    with pytest.raises(ValueError, match="right_x without depths"):
        observation_from_message(message(2, [], [10.0, 11.0]))
    with pytest.raises(ValueError, match="rgbd_baseline_m must be positive"):
        VisualOdometry(CAMERA, {"rgbd_baseline_m": 0.0})


def test_ate_after_se3_keeps_the_scale_error_and_sim3_removes_it() -> None:
    poses = path_poses(20)
    stamps = [10**9 + i * 10**8 for i in range(20)]
    truth = trajectory_from_poses(list(zip(stamps, poses, strict=True)))
    rigid = np.eye(4)
    rigid[:3, :3] = rotation_from_quaternion([0.2, -0.4, 0.1, 0.9])
    rigid[:3, 3] = [3.0, -1.0, 0.5]
    moved = [rigid @ pose for pose in poses]
    result = evaluate(trajectory_from_poses(list(zip(stamps, moved, strict=True))), truth)
    assert result["ate_se3_rmse_m"] < 1e-9 and result["ate_rmse_m"] < 1e-9
    assert result["scale"] == pytest.approx(1.0)
    # 5 % too long: Sim(3) hides it; SE(3) shows it, exactly 5 % of the positions' RMS
    # distance to their centroid (the best rigid fit of a scaled copy is the identity)
    scaled = []
    for pose in moved:
        out = pose.copy()
        out[:3, 3] = 1.05 * pose[:3, 3]
        scaled.append(out)
    result = evaluate(trajectory_from_poses(list(zip(stamps, scaled, strict=True))), truth)
    assert result["ate_rmse_m"] < 1e-9 and result["scale"] == pytest.approx(1 / 1.05)
    positions = np.array([p[:3, 3] for p in poses])
    spread = np.sqrt(np.mean(np.sum((positions - positions.mean(axis=0)) ** 2, axis=1)))
    assert result["ate_se3_rmse_m"] == pytest.approx(0.05 * spread, rel=1e-6)
