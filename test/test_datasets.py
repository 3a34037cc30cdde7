"""`superglue-ros bag from-dataset`: KITTI, 7-Scenes, TUM RGB-D and EuRoC layouts.

The shared KITTI and 7-Scenes pieces are read where ../shared has them; small
TUM RGB-D, EuRoC and KITTI folders are written here, with known poses, to check
the association, the interpolation, the camera poses and the refusals.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from scipy.spatial.transform import Rotation

from superglue_ros.io import rosbag
from superglue_ros.io.datasets import DatasetError, open_dataset, select
from superglue_ros.io.datasets.tum_rgbd import associate
from superglue_ros.io.images import image_to_array
from superglue_ros.io.stamps import stamp_to_ns
from superglue_ros.odometry.trajectory import read_tum, rotation_from_quaternion
from superglue_ros.pipeline.depth import register_depth
from superglue_ros.tools import cli

from conftest import SHARED

KITTI = SHARED / "data" / "kitti_odometry" / "sequences" / "06"
SEVEN_SCENES = SHARED / "data" / "7scenes_redkitchen"


def run_cli(*argv: str | Path) -> int:
    return cli.main([str(a) for a in argv])


def read_bag(path: Path) -> dict[str, list]:
    """topic -> [(bag timestamp, message)] in bag order; plus "_order": topics in bag order."""
    topics: dict[str, list] = {"_order": []}
    with AnyReader([path]) as reader:
        for connection, stamp, raw in reader.messages():
            message = reader.deserialize(raw, connection.msgtype)
            topics.setdefault(connection.topic, []).append((stamp, message))
            topics["_order"].append((stamp, connection.topic))
    return topics


def tum_poses(path: Path) -> dict[int, np.ndarray]:
    """stamp ns -> [4, 4] of a TUM file (stamps parsed exactly: sec.nanosec as written)."""
    poses = {}
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        fields = line.split()
        pose = np.eye(4)
        pose[:3, :3] = rotation_from_quaternion(np.array(fields[4:8], float))
        pose[:3, 3] = np.array(fields[1:4], float)
        poses[int(Decimal(fields[0]) * 1_000_000_000)] = pose
    assert len(poses) == len(read_tum(path))  # and the project's reader takes the file
    return poses


def skip_without(path: Path) -> None:
    if not path.is_dir():
        pytest.skip(f"{path} is absent (tests that need ../shared skip in a plain clone)")


# ---------------------------------------------------------------- KITTI (shared piece)


def test_kitti_stereo_with_baseline_and_groundtruth(tmp_path: Path) -> None:
    skip_without(KITTI)
    out = tmp_path / "bag"
    assert (
        run_cli("bag", "from-dataset", KITTI, out, "--first", 10, "--last", 20, "--every", 5) == 0
    )
    bag = read_bag(out)
    left, right = bag["/camera/left/image_rect"], bag["/camera/right/image_rect"]
    left_info, right_info = bag["/camera/left/camera_info"], bag["/camera/right/camera_info"]
    assert len(left) == len(right) == len(left_info) == len(right_info) == 3
    times = [float(t) for t in (KITTI / "times.txt").read_text().split()]
    stamps = [stamp_to_ns(m.header.stamp) for _, m in left]
    assert stamps == [round(times[i] * 1e9) for i in (10, 15, 20)]
    assert stamps == [stamp_to_ns(m.header.stamp) for _, m in right]
    assert [t for t, _ in left] == stamps  # bag time = header stamp
    for (_, message), index in zip(left, (10, 15, 20), strict=True):
        expected = cv2.imread(str(KITTI / "image_0" / f"{index:06d}.png"), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(image_to_array(message), expected)
    np.testing.assert_array_equal(
        image_to_array(right[1][1]), cv2.imread(str(KITTI / "image_1" / "000015.png"), 0)
    )
    calib = {
        line.split(":")[0]: np.array(line.split(":")[1].split(), float).reshape(3, 4)
        for line in (KITTI / "calib.txt").read_text().splitlines()
        if line.strip()
    }
    info_l, info_r = left_info[0][1], right_info[0][1]
    np.testing.assert_array_equal(np.reshape(info_l.p, (3, 4)), calib["P0"])
    np.testing.assert_array_equal(np.reshape(info_r.p, (3, 4)), calib["P1"])
    assert info_r.p[3] < 0 and (info_l.width, info_l.height) == (1226, 370)
    np.testing.assert_array_equal(np.reshape(info_r.r, (3, 3)), np.eye(3))
    groundtruth = tum_poses(out / "groundtruth.tum")
    rows = np.loadtxt(KITTI.parent.parent / "poses" / "06.txt")
    assert sorted(groundtruth) == stamps
    for stamp, index in zip(stamps, (10, 15, 20), strict=True):
        # the TUM file prints 9 decimals; the rotation goes through a unit quaternion
        np.testing.assert_allclose(groundtruth[stamp][:3], rows[index].reshape(3, 4), atol=2e-6)


def test_replay_takes_the_left_camera_of_a_stereo_bag(tmp_path: Path) -> None:
    skip_without(KITTI)
    out = tmp_path / "bag"
    assert run_cli("bag", "from-dataset", KITTI, out, "--last", 1) == 0
    with rosbag.BagSource(out) as source:
        assert source.stream.topic == "/camera/left/image_rect"
        assert source.stream.camera_info_topic == "/camera/left/camera_info"
        assert source.stream.count == 2


def test_kitti_intrinsics_override_keeps_the_baseline(tmp_path: Path) -> None:
    skip_without(KITTI)
    dataset = open_dataset(KITTI, (700.0, 710.0, 600.0, 180.0))
    right = dataset.stream("right")
    p1 = np.loadtxt(KITTI / "calib.txt", usecols=range(1, 13))[1]
    baseline = -p1[3] / p1[0]
    assert right.p[0, 3] == pytest.approx(-700.0 * baseline, rel=1e-12)
    np.testing.assert_array_equal(dataset.stream("left").k, right.k)
    assert dataset.stream("left").k[1, 1] == 710.0


# ---------------------------------------------------------------- 7-Scenes (shared piece)


def test_seven_scenes_colour_depth_and_poses(tmp_path: Path) -> None:
    skip_without(SEVEN_SCENES)
    out = tmp_path / "bag"
    assert run_cli("bag", "from-dataset", SEVEN_SCENES, out, "--last", 8, "--every", 3) == 0
    bag = read_bag(out)
    colour, depth = bag["/camera/color/image_raw"], bag["/camera/depth/image_raw"]
    stamps = [stamp_to_ns(m.header.stamp) for _, m in colour]
    assert stamps == [0, 100_000_000, 200_000_000]  # frames 0, 3, 6 at 30 Hz
    sequence = SEVEN_SCENES / "seq-01"
    for (_, image), (_, depth_image), index in zip(colour, depth, (0, 3, 6), strict=True):
        assert image.encoding == "rgb8" and depth_image.encoding == "16UC1"
        expected = cv2.imread(str(sequence / f"frame-{index:06d}.color.jpg"))
        np.testing.assert_array_equal(image_to_array(image), expected[:, :, ::-1])
        raw = cv2.imread(str(sequence / f"frame-{index:06d}.depth.png"), cv2.IMREAD_UNCHANGED)
        pixels = np.frombuffer(depth_image.data, "<u2").reshape(depth_image.height, -1)
        np.testing.assert_array_equal(pixels, raw)
    colour_k = rosbag.camera_matrix(bag["/camera/color/camera_info"][0][1])
    depth_k = rosbag.camera_matrix(bag["/camera/depth/camera_info"][0][1])
    np.testing.assert_array_equal(colour_k, [[525, 0, 320], [0, 525, 240], [0, 0, 1]])
    np.testing.assert_array_equal(depth_k, np.loadtxt(SEVEN_SCENES / "camera-intrinsics.txt"))
    groundtruth = tum_poses(out / "groundtruth.tum")
    assert sorted(groundtruth) == stamps
    for stamp, index in zip(stamps, (0, 3, 6), strict=True):
        expected = np.loadtxt(sequence / f"frame-{index:06d}.pose.txt")
        # the files' rotations are a little off orthonormal: the nearest rotation is written
        u, _, vt = np.linalg.svd(expected[:3, :3])
        np.testing.assert_allclose(groundtruth[stamp][:3, :3], u @ vt, atol=2e-6)
        np.testing.assert_allclose(groundtruth[stamp][:3, :3], expected[:3, :3], atol=1e-3)
        np.testing.assert_allclose(groundtruth[stamp][:3, 3], expected[:3, 3], atol=2e-9)


def test_seven_scenes_depth_registered_to_colour(tmp_path: Path) -> None:
    skip_without(SEVEN_SCENES)
    out = tmp_path / "bag"
    assert run_cli("bag", "from-dataset", SEVEN_SCENES, out, "--last", 0, "--register-depth") == 0
    bag = read_bag(out)
    ((_, aligned),) = bag["/camera/aligned_depth_to_color/image_raw"]
    ((_, info),) = bag["/camera/aligned_depth_to_color/camera_info"]
    colour_info = bag["/camera/color/camera_info"][0][1]
    assert info.header.frame_id == colour_info.header.frame_id
    np.testing.assert_array_equal(info.k, colour_info.k)
    raw = cv2.imread(str(SEVEN_SCENES / "seq-01" / "frame-000000.depth.png"), cv2.IMREAD_UNCHANGED)
    k_depth = np.loadtxt(SEVEN_SCENES / "camera-intrinsics.txt")
    expected = register_depth(raw, k_depth, np.reshape(colour_info.k, (3, 3)), raw.shape)
    pixels = np.frombuffer(aligned.data, "<u2").reshape(aligned.height, -1)
    np.testing.assert_array_equal(pixels, expected)
    assert (pixels != raw).mean() > 0.5  # 585 -> 525 moves most pixels
    assert len(bag["/camera/depth/image_raw"]) == 1  # the raw depth stays
    # KITTI has no depth to register: refused, naming the reason, no bag left.
    skip_without(KITTI)
    assert (
        run_cli("bag", "from-dataset", KITTI, tmp_path / "k", "--last", 0, "--register-depth") == 2
    )
    assert not (tmp_path / "k").exists()


def test_seven_scenes_intrinsics_option(tmp_path: Path) -> None:
    skip_without(SEVEN_SCENES)
    out = tmp_path / "bag"
    assert (
        run_cli(
            "bag",
            "from-dataset",
            SEVEN_SCENES / "seq-01",
            out,
            "--first",
            5,
            "--last",
            5,
            "--intrinsics",
            "585,585,320,240",
        )
        == 0
    )
    bag = read_bag(out)
    assert stamp_to_ns(bag["/camera/color/image_raw"][0][1].header.stamp) == round(5e9 / 30)
    k = rosbag.camera_matrix(bag["/camera/color/camera_info"][0][1])
    assert (k[0, 0], k[1, 1], k[0, 2], k[1, 2]) == (585, 585, 320, 240)


# ---------------------------------------------------------------- TUM RGB-D (written here)


def trajectory_pose(t: float) -> tuple[np.ndarray, np.ndarray]:
    """A smooth known motion: position linear in t, rotation about a fixed axis linear in t."""
    position = np.array([0.1, -0.2, 0.3]) + t * np.array([0.5, 0.1, -0.2])
    rotation = Rotation.from_rotvec(0.2 * t * np.array([0.0, 1.0, 0.0]))
    return position, rotation.as_quat()


def write_tum_folder(root: Path) -> dict[str, list[float]]:
    """A freiburg1-named TUM RGB-D folder: 5 rgb, 6 depth (one unpaired), ground truth at 100 Hz."""
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    rgb = [1.00, 1.033, 1.066, 1.10, 1.133]
    depth = [0.99, 1.02, 1.04, 1.07, 1.18, 1.135]  # 1.02 / 1.04 both near 1.033; 1.18 pairs nothing
    lines = ["# color images"]
    for i, t in enumerate(rgb):
        image = np.full((12, 16, 3), 20 * i, np.uint8)
        cv2.imwrite(str(root / "rgb" / f"{t:.6f}.png"), image)
        lines.append(f"{t:.6f} rgb/{t:.6f}.png")
    (root / "rgb.txt").write_text("\n".join(lines) + "\n")
    lines = ["# depth maps"]
    for i, t in enumerate(depth):
        cv2.imwrite(
            str(root / "depth" / f"{t:.6f}.png"), np.full((12, 16), 5000 + 5 * i, np.uint16)
        )
        lines.append(f"{t:.6f} depth/{t:.6f}.png")
    (root / "depth.txt").write_text("\n".join(lines) + "\n")
    lines = ["# timestamp tx ty tz qx qy qz qw"]
    for t in np.arange(0.95, 1.2, 0.01):
        position, quaternion = trajectory_pose(t)
        lines.append(" ".join(f"{v:.9f}" for v in (t, *position, *quaternion)))
    (root / "groundtruth.txt").write_text("\n".join(lines) + "\n")
    return {"rgb": rgb, "depth": depth}


def test_association_is_closest_first_and_one_to_one() -> None:
    # 10 and 12 both want 11; 12 is closer, so 10 takes 9 (within 2), 20 pairs nothing
    assert associate([10, 12, 20], [9, 11, 30], 3) == [(0, 0), (1, 1)]
    assert associate([10], [13], 3) == []  # the bound is strict, as in associate.py


def test_tum_rgbd_folder(tmp_path: Path) -> None:
    root = tmp_path / "rgbd_dataset_freiburg1_test"
    write_tum_folder(root)
    out = tmp_path / "bag"
    assert run_cli("bag", "from-dataset", root, out) == 0
    bag = read_bag(out)
    colour = bag["/camera/color/image_raw"]
    depth = bag["/camera/aligned_depth_to_color/image_raw"]
    # rgb 1.00-0.99, 1.033-1.04 (closer than 1.02), 1.066-1.07, 1.10 none (1.07 taken),
    # 1.133-1.135; 1.02 and 1.18 are left over
    paired = {1.00: 0, 1.033: 2, 1.066: 3, 1.133: 5}
    assert [stamp_to_ns(m.header.stamp) for _, m in colour] == [round(t * 1e9) for t in paired]
    for (_, message), j in zip(depth, paired.values(), strict=True):
        assert message.encoding == "16UC1"
        pixels = np.frombuffer(message.data, "<u2")
        assert np.all(pixels == (5000 + 5 * j) // 5)  # 5000 units a metre -> millimetres
    info = bag["/camera/color/camera_info"][0][1]
    assert info.k[0] == 517.3 and len(info.d) == 5  # freiburg1's published calibration
    assert bag["/camera/aligned_depth_to_color/camera_info"][0][1].header.frame_id == (
        info.header.frame_id
    )
    groundtruth = tum_poses(out / "groundtruth.tum")
    assert sorted(groundtruth) == [round(t * 1e9) for t in paired]
    for t in paired:
        position, quaternion = trajectory_pose(t)
        pose = groundtruth[round(t * 1e9)]
        # linear position and single-axis rotation at constant rate: interpolation is exact
        # up to the 9 decimals of the files
        np.testing.assert_allclose(pose[:3, 3], position, atol=1e-8)
        np.testing.assert_allclose(
            pose[:3, :3], Rotation.from_quat(quaternion).as_matrix(), atol=1e-8
        )


def test_tum_rgbd_frames_outside_the_groundtruth_have_no_pose(tmp_path: Path) -> None:
    root = tmp_path / "seq"
    write_tum_folder(root)
    truth = (root / "groundtruth.txt").read_text().splitlines()
    kept = [line for line in truth[1:] if float(line.split()[0]) > 1.005]
    (root / "groundtruth.txt").write_text("\n".join(kept) + "\n")
    dataset = open_dataset(root)
    assert [f.pose is None for f in dataset.frames] == [True, False, False, False]
    assert any("no pose" in note for note in dataset.notes)


# ---------------------------------------------------------------- EuRoC (written here)

T_BS_CAM0 = np.array(
    [[0.0, -1.0, 0.0, -0.02], [1.0, 0.0, 0.0, -0.06], [0.0, 0.0, 1.0, 0.01], [0, 0, 0, 1]]
)
T_BS_CAM1 = T_BS_CAM0 @ np.array(
    [[1.0, 0, 0, 0.11], [0, 1.0, 0, 0.0], [0, 0, 1.0, 0.0], [0, 0, 0, 1]]
)  # 0.11 m to the right along cam0's x


def write_sensor_yaml(path: Path, t_bs: np.ndarray, camera: bool) -> None:
    lines = [
        "# General sensor definitions.",
        "sensor_type: camera" if camera else "sensor_type: imu",
    ]
    lines += ["T_BS:", "  cols: 4", "  rows: 4", f"  data: {t_bs.reshape(-1).tolist()}"]
    if camera:
        lines += [
            "rate_hz: 20",
            "resolution: [32, 24]",
            "camera_model: pinhole",
            "intrinsics: [30.0, 31.0, 16.0, 12.0]",
            "distortion_model: radial-tangential",
            "distortion_coefficients: [-0.2, 0.07, 0.0002, 0.00002]",
        ]
    path.write_text("\n".join(lines) + "\n")


def write_euroc_folder(root: Path, frames: int = 6) -> list[int]:
    """mav0 with cam0, cam1 (same stamps), imu0 at 200 Hz and ground truth at 200 Hz."""
    mav0 = root / "mav0"
    stamps = [1_403_636_579_763_555_584 + i * 50_000_000 for i in range(frames)]
    for name, t_bs in (("cam0", T_BS_CAM0), ("cam1", T_BS_CAM1)):
        (mav0 / name / "data").mkdir(parents=True)
        write_sensor_yaml(mav0 / name / "sensor.yaml", t_bs, camera=True)
        lines = ["#timestamp [ns],filename"]
        for i, stamp in enumerate(stamps):
            cv2.imwrite(str(mav0 / name / "data" / f"{stamp}.png"), np.full((24, 32), i, np.uint8))
            lines.append(f"{stamp},{stamp}.png")
        (mav0 / name / "data.csv").write_text("\n".join(lines) + "\n")
    (mav0 / "imu0").mkdir()
    imu_stamps = list(range(stamps[0] - 20_000_000, stamps[-1] + 20_000_000, 5_000_000))
    lines = ["#timestamp [ns],w_RS_S_x,w_RS_S_y,w_RS_S_z,a_RS_S_x,a_RS_S_y,a_RS_S_z"]
    lines += [f"{s},0.1,0.2,{i * 0.001},9.8,0.0,-0.1" for i, s in enumerate(imu_stamps)]
    (mav0 / "imu0" / "data.csv").write_text("\n".join(lines) + "\n")
    truth = mav0 / "state_groundtruth_estimate0"
    truth.mkdir()
    write_sensor_yaml(truth / "sensor.yaml", np.eye(4), camera=False)
    lines = ["#timestamp, p_RS_R_x [m], p_RS_R_y, p_RS_R_z, q_RS_w [], q_RS_x, q_RS_y, q_RS_z"]
    for stamp in range(stamps[0] - 10_000_000, stamps[-1] + 10_000_000, 5_000_000):
        position, (x, y, z, w) = trajectory_pose((stamp - stamps[0]) * 1e-9)
        lines.append(
            f"{stamp}," + ",".join(f"{v:.12f}" for v in (*position, w, x, y, z)) + ",0" * 9
        )
    (truth / "data.csv").write_text("\n".join(lines) + "\n")
    return stamps


def test_euroc_folder(tmp_path: Path) -> None:
    stamps = write_euroc_folder(tmp_path / "MH_test")
    out = tmp_path / "bag"
    assert run_cli("bag", "from-dataset", tmp_path / "MH_test", out, "--first", 1, "--last", 4) == 0
    bag = read_bag(out)
    kept = stamps[1:5]
    left, right = bag["/camera/left/image_raw"], bag["/camera/right/image_raw"]
    assert [stamp_to_ns(m.header.stamp) for _, m in left] == kept
    assert [stamp_to_ns(m.header.stamp) for _, m in right] == kept
    assert int(image_to_array(right[2][1])[0, 0]) == 3
    info_l, info_r = bag["/camera/left/camera_info"][0][1], bag["/camera/right/camera_info"][0][1]
    assert info_l.distortion_model == "plumb_bob" and len(info_l.d) == 4
    p_l, p_r = np.reshape(info_l.p, (3, 4)), np.reshape(info_r.p, (3, 4))
    assert p_l[0, 3] == 0
    assert p_r[0, 3] == pytest.approx(-p_r[0, 0] * 0.11, rel=1e-9)  # -fx * baseline
    np.testing.assert_allclose(p_l[:, :3], p_r[:, :3])
    imu = bag["/imu/data"]
    imu_stamps = [stamp_to_ns(m.header.stamp) for _, m in imu]
    assert imu_stamps == list(range(kept[0], kept[-1] + 1, 5_000_000))
    assert imu[0][1].linear_acceleration.x == 9.8 and imu[0][1].orientation_covariance[0] == -1
    order = [stamp for stamp, _ in bag["_order"]]
    assert order == sorted(order)  # IMU interleaved with the images by stamp
    groundtruth = tum_poses(out / "groundtruth.tum")
    assert sorted(groundtruth) == kept
    for stamp in kept:
        position, quaternion = trajectory_pose((stamp - stamps[0]) * 1e-9)
        body = np.eye(4)
        body[:3, :3] = Rotation.from_quat(quaternion).as_matrix()
        body[:3, 3] = position
        np.testing.assert_allclose(groundtruth[stamp], body @ T_BS_CAM0, atol=1e-8)


# ---------------------------------------------------------------- refusals


def write_kitti_folder(root: Path, frames: int = 3) -> Path:
    sequence = root / "sequences" / "04"
    (sequence / "image_0").mkdir(parents=True)
    for i in range(frames):
        cv2.imwrite(str(sequence / "image_0" / f"{i:06d}.png"), np.zeros((8, 8), np.uint8))
    (sequence / "times.txt").write_text("".join(f"{0.1 * i:e}\n" for i in range(frames)))
    (sequence / "calib.txt").write_text("P0: " + " ".join(["1"] * 12) + "\n")
    (root / "poses").mkdir()
    pose = "1 0 0 0 0 1 0 0 0 0 1 0\n"
    (root / "poses" / "04.txt").write_text(pose * frames)
    return sequence


def refused(capsys: pytest.CaptureFixture[str], path: Path, out: Path, *options: object) -> str:
    """The error line of a from-dataset run that must fail (exit 2, no bag left)."""
    assert run_cli("bag", "from-dataset", path, out, *options) == 2
    assert not out.exists()
    return capsys.readouterr().err


def test_small_kitti_folder_reads(tmp_path: Path) -> None:
    dataset = select(open_dataset(write_kitti_folder(tmp_path)), 1, None)
    assert [f.index for f in dataset.frames] == [1, 2]
    assert [s.name for s in dataset.streams] == ["left"]


def test_refusals_name_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bag"
    (tmp_path / "empty").mkdir()
    assert "not a dataset layout" in refused(capsys, tmp_path / "empty", out)
    sequence = write_kitti_folder(tmp_path / "kitti")
    poses = tmp_path / "kitti" / "poses" / "04.txt"
    poses.write_text("1 0 0 0 0 1 0 0 0 0 1 0\n")
    error = refused(capsys, sequence, out)
    assert str(poses) in error and "1 poses" in error
    poses.unlink()
    assert f"{poses} is missing" in refused(capsys, sequence, out)
    write_kitti_folder(tmp_path / "kitti2")
    sequence = tmp_path / "kitti2" / "sequences" / "04"
    (sequence / "times.txt").write_text("0\n0.1\n0.2\n0.3\n")
    assert str(sequence / "image_0") in refused(capsys, sequence, out)
    sequence = write_kitti_folder(tmp_path / "kitti3")
    assert "--first 5 is after --last 2" in refused(
        capsys, sequence, out, "--first", 5, "--last", 2
    )
    assert "no frame of" in refused(capsys, sequence, out, "--first", 7)
    euroc = tmp_path / "euroc"
    write_euroc_folder(euroc)
    csv = euroc / "mav0" / "cam1" / "data.csv"
    csv.write_text("\n".join(csv.read_text().splitlines()[:-1]) + "\n")
    assert str(csv) in refused(capsys, euroc, out)
    tum = tmp_path / "tum"
    write_tum_folder(tum)
    (tum / "groundtruth.txt").unlink()
    assert f"{tum / 'groundtruth.txt'} is missing" in refused(capsys, tum, out)


def test_seven_scenes_missing_pose_is_refused(tmp_path: Path) -> None:
    sequence = tmp_path / "seq-02"
    sequence.mkdir()
    cv2.imwrite(str(sequence / "frame-000000.color.png"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(sequence / "frame-000000.depth.png"), np.zeros((8, 8), np.uint16))
    with pytest.raises(DatasetError, match="frame-000000.pose.txt is missing"):
        open_dataset(sequence)


def test_default_image_topic_prefers_the_left_or_colour_camera() -> None:
    image = rosbag.IMAGE
    assert rosbag.default_image_topic({"/a/image_raw": image}) == "/a/image_raw"
    stereo = {"/camera/right/image_rect": image, "/camera/left/image_rect": image}
    assert rosbag.default_image_topic(stereo) == "/camera/left/image_rect"
    rgbd = {"/camera/depth/image_raw": image, "/camera/color/image_raw/compressed": image}
    assert rosbag.default_image_topic(rgbd) == "/camera/color/image_raw/compressed"
    assert rosbag.default_image_topic({"/a/image_raw": image, "/b/image_raw": image}) is None
    two_left = {"/x/left/image_raw": image, "/y/left/image_raw": image}
    assert rosbag.default_image_topic(two_left) is None
