"""The visual-odometry back-end on pure-geometry input (no images): known points seen
from known poses, as a front-end with ideal (or deliberately wrong) matches would send."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from superglue_ros.odometry import (
    LOST,
    TRACKING,
    CameraIntrinsics,
    FrameObservation,
    KeyframeMatches,
    VisualOdometry,
    geometry,
)
from superglue_ros.odometry.trajectory import evaluate, trajectory_from_poses

from conftest import require_module
from odometry_synthetic import CAMERA, forward_poses, make_sequence, run

# Measured on the oldest stack (make test-oldest, OpenCV 4.6.0): with these seeded USAC
# settings, displaced-match seed 0 ends at 10 % of the path (5.0: under 1.5 % for all
# six) and seed 1 of the seed test leaves one frame unposed. The back-end's outlier
# robustness depends on OpenCV's USAC there; kept visible as an expected failure.
OLD_USAC = pytest.mark.xfail(
    tuple(int(v) for v in cv2.__version__.split(".")[:2]) < (4, 7),
    reason="OpenCV < 4.7: the back-end is less robust to displaced matches (issue 16)",
    strict=False,
)


@pytest.fixture(autouse=True)
def _gtsam() -> None:
    require_module("gtsam", "the back-end's bundle adjustment needs GTSAM (make setup installs it)")
    require_module("evo", "trajectory errors are computed with evo (make setup installs it)")


def ate(odometry: VisualOdometry, sequence, frame_ids: set[int] | None = None) -> dict:
    poses = [(s, p) for f, s, p in odometry.trajectory() if frame_ids is None or f in frame_ids]
    truth = trajectory_from_poses(list(zip(sequence.stamps, sequence.poses, strict=True)))
    return evaluate(trajectory_from_poses(poses), truth)


def test_noiseless_geometry_recovers_the_trajectory_up_to_scale() -> None:
    sequence = make_sequence(30)
    odometry, estimates = run(sequence.frames)
    # frames that waited for the initialisation are answered again once it succeeds
    latest = {e.frame_id: e for e in estimates}
    assert sorted(latest) == list(range(30))
    assert all(e.pose is not None for e in latest.values())
    assert [e.frame_id for e in estimates if e.pose is None] == [0, 1, 2]
    trajectory = odometry.trajectory()
    assert len(trajectory) == 30
    first = min(trajectory, key=lambda item: item[0])
    np.testing.assert_allclose(first[2], np.eye(4), atol=1e-9)  # the first pose is the identity
    result = ate(odometry, sequence)
    path_length = np.sum(
        np.linalg.norm(np.diff([p[:3, 3] for p in sequence.poses], axis=0), axis=1)
    )
    assert result["ate_rmse_m"] < 1e-5 * path_length
    assert result["rpe_rotation_rmse_deg"] < 1e-3
    assert odometry.maps_started == 1 and odometry.state == TRACKING
    # the arbitrary scale was fixed by the first map's median depth, not by the truth
    assert not np.isclose(result["scale"], 1.0, atol=0.05)
    # the stamps written are the frames' own stamps
    assert sorted(s for _, s, _ in trajectory) == sequence.stamps


def test_noise_and_wrong_associations_stay_accurate() -> None:
    clean = make_sequence(30, noise_px=0.5)
    dirty = make_sequence(30, noise_px=0.5, outlier_fraction=0.2)
    odometry_clean, _ = run(clean.frames)
    odometry_dirty, estimates = run(dirty.frames)
    assert len(odometry_dirty.trajectory()) == 30
    assert all(e.state == TRACKING for e in estimates if e.pose is not None)
    error_clean = ate(odometry_clean, clean)["ate_rmse_m"]
    error_dirty = ate(odometry_dirty, dirty)["ate_rmse_m"]
    # a 3.2 m path: centimetre accuracy with 20 % of the track ids wrong in every frame
    assert error_clean < 0.02
    assert error_dirty < 0.03
    # and without robust handling (no RANSAC threshold to speak of) it would not be
    fragile, _ = run(dirty.frames, pnp_threshold_px=1e6, max_reprojection_px=1e6, robust_k=1e6)
    assert ate(fragile, dirty)["ate_rmse_m"] > 3 * error_dirty


def path_length(sequence) -> float:
    positions = np.array([p[:3, 3] for p in sequence.poses])
    return float(np.sum(np.linalg.norm(np.diff(positions, axis=0), axis=1)))


def initialisation_frame(frames: list[FrameObservation], **conf: float) -> int | None:
    """The frame whose arrival started the first map."""
    odometry = VisualOdometry(CAMERA, conf)
    for frame in frames:
        odometry.process(frame)
        if odometry.maps_started:
            return frame.frame_id
    return None


def test_forward_motion_initialises_within_a_few_frames() -> None:
    # Driving 3 cm a frame towards the far wall: the points near the focus of expansion
    # keep a small parallax for long, the median of all points stays under 2 deg until
    # about frame 16; the points off the axis are well conditioned by frame 4.
    sequence = make_sequence(poses=forward_poses(30, 0.03), keyframe_every=2, noise_px=0.5)
    assert initialisation_frame(sequence.frames) <= 6
    odometry, estimates = run(sequence.frames)
    assert odometry.maps_started == 1 and len(odometry.trajectory()) == 30
    # a 0.9 m drive with half-pixel noise: about 1 % of the path
    assert ate(odometry, sequence)["ate_rmse_m"] < 0.01 * path_length(sequence)


@OLD_USAC
@pytest.mark.parametrize("seed", range(6))
def test_displaced_wrong_matches_keep_one_map(seed: int) -> None:
    # A third of every frame's keypoints 4-40 px off their point with the right track
    # id, drawn anew each frame (what mutual nearest neighbours without a ratio test
    # send on repeated texture), in a sparse room (about 200 points in view).
    sequence = make_sequence(30, noise_px=0.5, displaced_fraction=0.35, num_points=1500, seed=seed)
    odometry, estimates = run(sequence.frames)
    assert not [e for e in estimates if e.state == LOST]
    assert odometry.maps_started == 1 and len(odometry.trajectory()) == 30
    # 3.2 m of path: within 1.5 % of it (clean data: 0.1 %)
    assert ate(odometry, sequence)["ate_rmse_m"] < 0.015 * path_length(sequence)


@OLD_USAC
def test_seeds_change_the_ransac_samples_and_one_seed_repeats_exactly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sequence = make_sequence(18, noise_px=1.0, outlier_fraction=0.2)

    def poses_for(seed: int) -> np.ndarray:
        monkeypatch.setattr(geometry, "RANSAC_SEED", seed)
        odometry, _ = run(sequence.frames)
        return np.array([pose for _, _, pose in odometry.trajectory()])

    first, again, other = poses_for(0), poses_for(0), poses_for(1)
    np.testing.assert_array_equal(first, again)  # bit for bit
    assert first.shape == other.shape and not np.array_equal(first, other)
    # another sample, not another answer: the two runs agree far within the noise
    scale = np.max(np.linalg.norm(first[:, :3, 3], axis=1))
    np.testing.assert_allclose(other[:, :3, 3], first[:, :3, 3], atol=0.05 * scale)
    # and the seed reaches OpenCV's RANSAC itself: other samples, other inlier sets
    k, pixels = CAMERA.matrix, sequence.frames[0].keypoints
    frame = sequence.frames[6]
    shared = np.intersect1d(sequence.frames[0].track_ids, frame.track_ids, return_indices=True)
    a, b = pixels[shared[1]], frame.keypoints[shared[2]]
    results = [geometry.two_view(k, a, b, 1.0, 3.0, 0.5, seed=s) for s in (0, 0, 1, 2)]
    points = [r.points for r in results]
    np.testing.assert_array_equal(points[0], points[1])
    assert any(p.shape != points[0].shape or not np.array_equal(p, points[0]) for p in points[2:])


def with_new_tracks(frame: FrameObservation, offset: int, reset: bool) -> FrameObservation:
    """The frame as a front-end would send it after losing every track."""
    matches = (
        []
        if reset
        else [KeyframeMatches(m.keyframe_id, *(np.zeros(0),) * 3) for m in frame.matches]
    )
    return dataclasses.replace(frame, track_ids=frame.track_ids + offset, matches=matches)


@pytest.mark.parametrize("reset", [False, True], ids=["tracks-lost", "front-end-reset"])
def test_lost_tracking_is_said_and_reinitialised(reset: bool) -> None:
    sequence = make_sequence(36)
    # From frame 15 (a keyframe) on every track id is new: the map cannot place it.
    frames = [
        f if f.frame_id < 15 else with_new_tracks(f, 1_000_000, reset and f.frame_id == 15)
        for f in sequence.frames
    ]
    odometry, estimates = run(frames)
    lost = [e for e in estimates if e.state == LOST]
    assert [e.frame_id for e in lost] == [15]
    assert lost[0].pose is None
    expected = "keyframe buffer was reset" if reset else "keyframe not localised"
    assert expected in lost[0].reason
    assert odometry.maps_started == 2 and odometry.state == TRACKING
    # the lost keyframe is the new map's reference: it gets its pose once that map starts
    poses = {f: p for f, _, p in odometry.trajectory()}
    assert sorted(poses) == list(range(36))
    # the new map starts where the old one's velocity predicts the lost keyframe
    predicted = poses[14] @ np.linalg.inv(poses[13]) @ poses[14]
    np.testing.assert_allclose(poses[15], predicted, atol=1e-9)
    # each map is exact up to its own similarity
    assert ate(odometry, sequence, set(range(15)))["ate_rmse_m"] < 1e-4
    assert ate(odometry, sequence, set(range(15, 36)))["ate_rmse_m"] < 1e-4
    # and the two maps join up: velocity-predicted start, scale from the keyframe spacing
    assert ate(odometry, sequence)["ate_rmse_m"] < 0.01


def test_no_parallax_waits_and_frames_without_map_points_get_no_pose() -> None:
    sequence = make_sequence(12)
    # the camera stays still: never enough parallax to start a map
    first = sequence.frames[0]
    still = [first] + [
        dataclasses.replace(
            first,
            frame_id=f.frame_id,
            stamp_ns=f.stamp_ns,
            is_keyframe=f.is_keyframe,
            matches=with_new_tracks(f, 0, reset=False).matches,
        )
        for f in sequence.frames[1:]
    ]
    odometry, estimates = run(still)
    assert odometry.trajectory() == [] and odometry.maps_started == 0
    assert all(e.pose is None and e.state == "initializing" for e in estimates)
    assert any("parallax" in e.reason for e in estimates)
    # a tracked frame whose keypoints name no landmark: no pose, a reason, tracking goes on
    sequence = make_sequence(12)
    frames = list(sequence.frames)
    frames[10] = dataclasses.replace(frames[10], track_ids=frames[10].track_ids + 1_000_000)
    odometry, estimates = run(frames)
    by_id = {e.frame_id: e for e in estimates}
    assert by_id[10].pose is None and "map points" in by_id[10].reason
    assert by_id[10].state == TRACKING and by_id[11].pose is not None


def test_frame_ids_going_backwards_start_a_new_map() -> None:
    sequence = make_sequence(24)
    restarted = [dataclasses.replace(f, frame_id=f.frame_id + 100) for f in sequence.frames[:12]]
    again = [
        dataclasses.replace(f, frame_id=f.frame_id - 12, stamp_ns=f.stamp_ns + 10**10)
        for f in sequence.frames[12:]
    ]
    odometry, estimates = run(restarted + again)
    lost = [e for e in estimates if e.state == LOST]
    assert len(lost) == 1 and "backwards" in lost[0].reason
    assert odometry.maps_started == 2


def test_bad_settings_and_inconsistent_frames_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown odometry setting"):
        VisualOdometry(CAMERA, {"window": 3})
    with pytest.raises(ValueError, match="must exceed"):
        VisualOdometry(CAMERA, {"window_keyframes": 2, "fixed_keyframes": 2})
    with pytest.raises(ValueError, match="focal"):
        CameraIntrinsics(0.0, 1.0, 0.0, 0.0, 10, 10)
    with pytest.raises(ValueError, match="track ids"):
        FrameObservation(0, 0, True, (10, 10), np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="indexes past"):
        FrameObservation(
            0,
            0,
            True,
            (10, 10),
            np.zeros((3, 2)),
            np.arange(3),
            [KeyframeMatches(0, np.array([5]), np.array([0]), np.ones(1))],
        )


def test_the_backend_package_imports_without_ros_torch_or_gtsam() -> None:
    code = (
        "import sys, superglue_ros.odometry, superglue_ros.odometry.trajectory; "
        "print(sorted(m for m in ('rclpy', 'torch', 'gtsam', 'evo') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@OLD_USAC  # OpenCV 4.6.0: seed 0 ends 1.03 deg off (make test-oldest)
def test_two_view_keeps_the_best_scoring_of_several_ransac_runs(tmp_path: Path) -> None:
    """7-Scenes redkitchen, ORB + MNN, the initial pair of the 10 Hz benchmark (frames 0
    and 33, 6 cm apart, 517 shared tracks at about a 56 % inlier rate). One USAC run with
    seed 1 stopped on a motion 3.2 deg off in rotation that explained the pairs worse
    (epipolar score 4564 against about 4970) but triangulated more points (its rotation
    error inflates the parallax), so it won initialisation and the map's scale drifted to
    3.9 % of the path. The best of the tries must be near the ground truth for every seed."""
    from superglue_ros.io.rosbag import read_correspondences
    from superglue_ros.odometry import observation_from_message
    from superglue_ros.odometry.backend import shared_tracks
    from superglue_ros.odometry.trajectory import read_tum, rotation_from_quaternion
    from superglue_ros.tools import cli

    from conftest import PROJECT_ROOT, SHARED

    scene = SHARED / "data" / "7scenes_redkitchen"
    if not scene.is_dir():
        pytest.skip(f"{scene} is absent (tests that need ../shared skip in a plain clone)")
    require_module("rosbags", "the replay reads and writes rosbag2")
    bag, out = tmp_path / "rk", tmp_path / "replay"
    assert (
        cli.main(["bag", "from-dataset", str(scene), str(bag), "--every", "3", "--last", "33"]) == 0
    )
    orb = PROJECT_ROOT / "config" / "eval" / "orb_mnn.yaml"
    assert cli.main(["replay", str(bag), "--out", str(out), "--params", str(orb)]) == 0
    frames = [
        observation_from_message(m)
        for m in read_correspondences(out / "orb_mnn" / "correspondences")
    ]
    first, last = frames[0], frames[11]
    in_first, in_last = shared_tracks(first, last)
    truth = read_tum(bag / "groundtruth.tum")
    poses = []
    for index in (0, 11):
        pose = np.eye(4)
        pose[:3, :3] = rotation_from_quaternion(truth.quaternions[index])
        poses.append(pose)
    relative = poses[0][:3, :3].T @ poses[1][:3, :3]
    k = np.asarray(json.loads((out / "report.json").read_text())["intrinsics"])
    for seed in range(8):
        result = geometry.two_view(
            k, first.keypoints[in_first], last.keypoints[in_last], 1.0, 3.0, 1.0,
            seed=seed, tries=4,
        )  # fmt: skip
        assert not isinstance(result, str), result
        cosine = (np.trace(result.pose_b[:3, :3].T @ relative) - 1) / 2
        # about 0.4-0.5 deg from the depth camera's ground truth for the good motions
        assert np.degrees(np.arccos(np.clip(cosine, -1, 1))) < 1.0, seed
