"""Generated room sequences and ``replay --odometry --groundtruth`` end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from superglue_ros.evaluation.room import LOOP_RADII
from superglue_ros.odometry.trajectory import (
    TrajectoryError,
    evaluate,
    quaternion_xyzw,
    read_tum,
    rotation_from_quaternion,
    trajectory_from_poses,
)

from conftest import PROJECT_ROOT, require_module

SIFT = PROJECT_ROOT / "config" / "eval" / "sift_mnn.yaml"
FRAMES = 16


def cli(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from superglue_ros.tools.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=PROJECT_ROOT
    )


@pytest.fixture(scope="session")
def room(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated room sequence (procedural textures, 320x240, 1.6 m)."""
    require_module("rosbags", "the generator writes rosbag2 files")
    out = tmp_path_factory.mktemp("room") / "seq"
    done = cli(
        "generate", "room", "--out", str(out), "--frames", str(FRAMES),
        "--width", "320", "--height", "240", "--path-length", "1.6",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="session")
def replayed(room: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_module("gtsam", "the back-end needs GTSAM (make setup installs it)")
    require_module("evo", "trajectory errors come from evo (make setup installs it)")
    out = tmp_path_factory.mktemp("replay") / "out"
    done = cli(
        "replay", str(room / "bag"), "--out", str(out), "--params", str(SIFT),
        "--odometry", "--groundtruth", str(room / "groundtruth.tum"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "frames with a pose" in done.stderr
    return out


def test_generated_room_has_consistent_ground_truth(room: Path) -> None:
    from rosbags.highlevel import AnyReader

    truth = read_tum(room / "groundtruth.tum")
    assert len(truth) == FRAMES
    path = np.sum(np.linalg.norm(np.diff(truth.positions, axis=0), axis=1))
    assert path == pytest.approx(1.6, rel=0.02)
    images, infos = [], 0
    with AnyReader([room / "bag"]) as reader:
        for connection, _, raw in reader.messages():
            message = reader.deserialize(raw, connection.msgtype)
            if connection.topic == "/camera/image_raw":
                stamp = message.header.stamp.sec + 1e-9 * message.header.stamp.nanosec
                images.append((stamp, np.asarray(message.data).reshape(240, 320, 3)))
            else:
                infos += 1
                k = np.asarray(message.k).reshape(3, 3)
    assert infos == FRAMES and len(images) == FRAMES
    np.testing.assert_allclose([s for s, _ in images], truth.stamps)
    # The images agree with the poses: the essential matrix between two frames gives
    # the ground-truth relative rotation and translation direction.
    first, last = images[0][1], images[4][1]
    sift = cv2.SIFT_create()
    kp0, d0 = sift.detectAndCompute(cv2.cvtColor(first, cv2.COLOR_RGB2GRAY), None)
    kp1, d1 = sift.detectAndCompute(cv2.cvtColor(last, cv2.COLOR_RGB2GRAY), None)
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(d0, d1, k=2)
    matches = [m for m, n in pairs if m.distance < 0.8 * n.distance]
    p0 = np.array([kp0[m.queryIdx].pt for m in matches])
    p1 = np.array([kp1[m.trainIdx].pt for m in matches])
    cv2.setRNGSeed(0)
    essential, mask = cv2.findEssentialMat(p0, p1, k, cv2.RANSAC, 0.999, 1.0)
    _, rotation, translation, _ = cv2.recoverPose(essential, p0, p1, k, mask=mask)
    pose = [np.eye(4), np.eye(4)]
    for i, index in enumerate((0, 4)):
        pose[i][:3, :3] = rotation_from_quaternion(truth.quaternions[index])
        pose[i][:3, 3] = truth.positions[index]
    relative = np.linalg.inv(pose[1]) @ pose[0]  # camera 0 -> camera 1
    angle = np.degrees(np.arccos(np.clip((np.trace(rotation.T @ relative[:3, :3]) - 1) / 2, -1, 1)))
    assert angle < 0.5
    direction = relative[:3, 3] / np.linalg.norm(relative[:3, 3])
    assert float(direction @ translation.reshape(3)) > 0.99


def test_replay_with_odometry_and_groundtruth(replayed: Path, room: Path) -> None:
    report = json.loads((replayed / "report.json").read_text())
    odometry = report["configs"][0]["odometry"]
    assert odometry["frames"] == FRAMES
    assert odometry["pose_fraction"] >= 0.8
    # sift_mnn.yaml keeps loop_closure.enabled at its default (off): no loops reach it
    assert odometry["loop_closure_enabled"] is False and odometry["loop_closures"] == []
    accuracy = odometry["accuracy"]
    assert accuracy["associated"] == odometry["frames_with_pose"]
    # a 1.6 m path in a 320x240 room rendered with procedural textures
    assert accuracy["ate_rmse_m"] < 0.03
    assert accuracy["rpe_rotation_rmse_deg"] < 1.0
    # the trajectory file: TUM, stamps are image stamps, the first pose the identity
    estimate = read_tum(replayed / "sift_mnn" / "trajectory.tum")
    truth = read_tum(room / "groundtruth.tum")
    assert len(estimate) == odometry["frames_with_pose"]
    assert set(np.round(estimate.stamps, 6)) <= set(np.round(truth.stamps, 6))
    np.testing.assert_allclose(estimate.positions[0], 0.0, atol=1e-9)
    np.testing.assert_allclose(np.abs(estimate.quaternions[0]), [0, 0, 0, 1], atol=1e-9)
    # report.md and the plot
    markdown = (replayed / "report.md").read_text()
    assert "ATE RMSE after Sim(3) alignment" in markdown
    assert "plots/trajectory.png" in markdown
    assert (replayed / "plots" / "trajectory.png").stat().st_size > 10_000


def test_bad_groundtruth_files_are_named_with_the_problem(room: Path, tmp_path: Path) -> None:
    columns = tmp_path / "seven_columns.txt"
    columns.write_text("# stamp x y z\n1.0 0 0 0 0 0 1\n")
    done = cli(
        "replay", str(room / "bag"), "--out", str(tmp_path / "a"), "--params", str(SIFT),
        "--odometry", "--groundtruth", str(columns),
    )  # fmt: skip
    assert done.returncode == 2
    assert str(columns) in done.stderr and "expected 8 columns" in done.stderr
    assert not (tmp_path / "a").exists(), "a bad ground truth fails before the replay"
    text = tmp_path / "text.tum"
    text.write_text("1.0 0 0 zero 0 0 0 1\n")
    with pytest.raises(TrajectoryError, match=r"text.tum line 1: not a number"):
        read_tum(text)
    with pytest.raises(TrajectoryError, match="no poses"):
        (tmp_path / "empty.tum").write_text("# nothing\n")
        read_tum(tmp_path / "empty.tum")
    with pytest.raises(TrajectoryError, match="cannot read"):
        read_tum(tmp_path / "missing.tum")


def test_groundtruth_without_overlapping_stamps_is_an_error(room: Path, tmp_path: Path) -> None:
    require_module("evo", "trajectory errors come from evo")
    shifted = tmp_path / "shifted.tum"
    lines = (room / "groundtruth.tum").read_text().splitlines()[1:]
    shifted.write_text(
        "".join(f"{float(line.split()[0]) + 1000:.9f} {line.split(' ', 1)[1]}\n" for line in lines)
    )
    estimate = trajectory_from_poses([(10**9 * (1 + i // 10), np.eye(4)) for i in range(0, 50, 10)])
    with pytest.raises(TrajectoryError, match=r"shifted.tum: no overlapping stamps"):
        evaluate(estimate, read_tum(shifted), str(shifted))


def test_replay_odometry_option_checks(room: Path, tmp_path: Path) -> None:
    done = cli("replay", str(room / "bag"), "--out", str(tmp_path / "b"), "--groundtruth", "x")
    assert done.returncode == 2 and "need --odometry" in done.stderr


def test_tum_quaternions_round_trip() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        rotation *= np.sign(np.linalg.det(rotation))
        q = quaternion_xyzw(rotation)
        assert q[3] >= 0 and np.linalg.norm(q) == pytest.approx(1.0)
        np.testing.assert_allclose(rotation_from_quaternion(q), rotation, atol=1e-12)


def test_evaluate_undoes_a_similarity_and_measures_what_is_left() -> None:
    require_module("evo", "trajectory errors come from evo")
    from odometry_synthetic import path_poses

    poses = path_poses(20)
    stamps = [10**9 + i * 10**8 for i in range(20)]
    truth = trajectory_from_poses(list(zip(stamps, poses, strict=True)))
    similarity = np.eye(4)
    similarity[:3, :3] = rotation_from_quaternion([0.2, -0.4, 0.1, 0.9])
    similarity[:3, 3] = [3.0, -1.0, 0.5]
    scale = 0.37
    moved = []
    for pose in poses:
        out = similarity @ pose
        out[:3, 3] = scale * (similarity[:3, :3] @ pose[:3, 3]) + similarity[:3, 3]
        moved.append(out)
    result = evaluate(trajectory_from_poses(list(zip(stamps, moved, strict=True))), truth)
    assert result["ate_rmse_m"] < 1e-9 and result["rpe_rotation_rmse_deg"] < 1e-6
    assert result["scale"] == pytest.approx(1 / scale)
    assert result["associated"] == 20
    # one pose 10 cm off (in ground-truth units) shows up in the ATE
    moved[10] = moved[10].copy()
    moved[10][:3, 3] += scale * np.array([0.1, 0.0, 0.0])
    result = evaluate(trajectory_from_poses(list(zip(stamps, moved, strict=True))), truth)
    assert 0.1 / np.sqrt(20) * 0.8 < result["ate_rmse_m"] < 0.1 / np.sqrt(20) * 1.2


def test_odometry_needs_intrinsics_and_takes_them_from_camera(room: Path, tmp_path: Path) -> None:
    """A bag without camera_info: --odometry says what is missing; --camera supplies it."""
    require_module("gtsam", "the back-end needs GTSAM")
    from rosbags.highlevel import AnyReader

    from superglue_ros.io import rosbag

    images_only = tmp_path / "images_only"
    writer = rosbag.open_writer(images_only)
    with AnyReader([room / "bag"]) as reader:
        connections = [c for c in reader.connections if c.topic == "/camera/image_raw"]
        out = writer.add_connection(
            "/camera/image_raw", connections[0].msgtype, typestore=rosbag.make_typestore()
        )
        for _, timestamp, raw in reader.messages(connections=connections):
            writer.write(out, timestamp, raw)
    writer.close()
    done = cli("replay", str(images_only), "--out", str(tmp_path / "a"), "--odometry")
    assert done.returncode == 2 and "--camera" in done.stderr
    done = cli(
        "replay", str(images_only), "--out", str(tmp_path / "b"), "--params", str(SIFT),
        "--odometry", "--camera", str(room / "camera.yaml"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["configs"][0]["odometry"]["pose_fraction"] >= 0.8
    assert "accuracy" not in report["configs"][0]["odometry"]  # no ground truth given


def test_a_loop_path_goes_once_round_looking_outward_and_returns(tmp_path: Path) -> None:
    require_module("rosbags", "the generator writes rosbag2 files")
    frames = 24
    out = tmp_path / "loop"
    done = cli(
        "generate", "room", "--out", str(out), "--frames", str(frames), "--width", "64",
        "--height", "48", "--path", "loop", "--repeat-textures", "3",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    truth = read_tum(out / "groundtruth.tum")
    steps = np.linalg.norm(np.diff(truth.positions, axis=0), axis=1)
    # the last frame is half a step short of the first
    closing = np.linalg.norm(truth.positions[-1] - truth.positions[0])
    assert closing == pytest.approx(0.5 * steps[0], rel=0.05)
    # looking outward along the ellipse's normal: away from the room's centre, turning
    # once round; the last frame is half an angle step (delta) short of the start, where
    # the normal of (a cos t, b sin t) is at atan(a / b tan delta) below the x axis
    axes = np.array([rotation_from_quaternion(q)[:, 2] for q in truth.quaternions])
    assert np.all(np.einsum("ij,ij->i", axes[:, :2], truth.positions[:, :2]) > 0)
    headings = np.degrees(np.unwrap(np.arctan2(axes[:, 1], axes[:, 0])))
    a, b = LOOP_RADII
    delta = 0.5 * 2 * np.pi / (frames - 0.5)
    expected = 360 - np.degrees(np.arctan(a / b * np.tan(delta)))
    assert headings[-1] - headings[0] == pytest.approx(expected, abs=1e-3)  # TUM: 6+ digits
    for bad, why in (
        (["--path", "loop", "--path-length", "2"], "--path-length applies to --path arc"),
        (["--repeat-textures", "5"], "--repeat-textures must be 0 to 4"),
        (["--path", "spiral"], "invalid choice"),
    ):
        done = cli("generate", "room", "--out", str(tmp_path / "bad"), "--frames", "8", *bad)
        assert done.returncode == 2 and why in done.stderr, done.stderr
        assert not (tmp_path / "bad").exists()


def test_backend_on_the_recorded_correspondences_repeats_the_live_replay(
    replayed: Path, room: Path, tmp_path: Path
) -> None:
    """replay --odometry on a replay's correspondences bag: the back-end alone, fed the
    very messages the live replay fed it, gives the same trajectory bit for bit."""
    bag = replayed / "sift_mnn" / "correspondences"
    out = tmp_path / "recorded"
    done = cli(
        "replay", str(bag), "--out", str(out), "--odometry",
        "--groundtruth", str(room / "groundtruth.tum"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    live = replayed / "sift_mnn" / "trajectory.tum"
    assert (out / "sift_mnn" / "trajectory.tum").read_bytes() == live.read_bytes()
    expected = json.loads((replayed / "report.json").read_text())["configs"][0]
    report = json.loads((out / "report.json").read_text())
    assert report["input"] == "correspondences"
    assert report["intrinsics"] == json.loads((replayed / "report.json").read_text())["intrinsics"]
    (config,) = report["configs"]
    timing = ("ms_per_frame", "ms_per_keyframe")
    got = {k: v for k, v in config["odometry"].items() if k not in timing}
    assert got == {k: v for k, v in expected["odometry"].items() if k not in timing}
    # the front-end's own figures come along from the replay that recorded the bag
    assert config["latency_ms"] == expected["latency_ms"]
    assert config["params"] == expected["params"]
    assert (out / "plots" / "trajectory.png").is_file()


def test_backend_on_recorded_correspondences_refuses_what_it_cannot_repeat(
    replayed: Path, tmp_path: Path
) -> None:
    bag = replayed / "sift_mnn" / "correspondences"
    done = cli("replay", str(bag), "--out", str(tmp_path / "a"))
    assert done.returncode == 2 and "add --odometry" in done.stderr
    done = cli(
        "replay", str(bag), "--out", str(tmp_path / "b"), "--odometry", "--params", str(SIFT)
    )
    assert done.returncode == 2 and "leave it out" in done.stderr
    # the bag moved away from its replay's report: no intrinsics unless --camera
    moved = tmp_path / "elsewhere" / "sift_mnn" / "correspondences"
    moved.parent.mkdir(parents=True)
    shutil.copytree(bag, moved)
    done = cli("replay", str(moved), "--out", str(tmp_path / "c"), "--odometry")
    assert done.returncode == 2 and "--camera" in done.stderr
    assert not (tmp_path / "c").exists()  # refused before anything was written
