"""generate room --stereo / --depth / --layout tum: exact depth, exact rectified pairs, the TUM
RGB-D layout through ``bag from-dataset``, and a metric RGB-D replay of a rendered room."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from superglue_ros.evaluation import room
from superglue_ros.evaluation.textures import procedural_texture
from superglue_ros.io.datasets.bag_writer import read_depth
from superglue_ros.odometry.trajectory import read_tum, rotation_from_quaternion
from superglue_ros.odometry.types import CameraIntrinsics
from superglue_ros.tools import cli
from superglue_ros.tools.generate import generate_room, room_camera

from conftest import require_module


def intrinsics_of(camera: CameraIntrinsics) -> tuple[float, float, float, float]:
    return camera.fx, camera.fy, camera.cx, camera.cy


def ray_cast(quads: list[room.Quad], camera: CameraIntrinsics, pose: np.ndarray, pixels):
    """Exact camera-z depth and index of the nearest quad hit through each [N, 2] pixel,
    by ray-rectangle intersection in float64 (independent of the rasteriser)."""
    rays = np.column_stack(
        [(pixels[:, 0] - camera.cx) / camera.fx, (pixels[:, 1] - camera.cy) / camera.fy]
    )
    directions = np.column_stack([rays, np.ones(len(rays))]) @ pose[:3, :3].T  # camera z = 1
    origin = pose[:3, 3]
    depth = np.full(len(pixels), np.inf)
    nearest = np.full(len(pixels), -1)
    for index, quad in enumerate(quads):
        c0, along, down = (
            quad.corners[0],
            quad.corners[1] - quad.corners[0],
            quad.corners[3] - quad.corners[0],
        )
        normal = np.cross(along, down)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (normal @ (c0 - origin)) / (directions @ normal)
        offsets = origin + t[:, None] * directions - c0
        basis = np.column_stack([along, down])
        s, r = np.linalg.lstsq(basis, offsets.T, rcond=None)[0]
        hit = (t > 0) & (s >= 0) & (s <= 1) & (r >= 0) & (r <= 1) & (t < depth)
        depth[hit], nearest[hit] = t[hit], index
    return depth, nearest


@pytest.fixture(scope="module")
def scene() -> list[room.Quad]:
    rng = np.random.default_rng(3)
    return room.build_room([procedural_texture(rng, (64, 64)) for _ in range(3)], rng)


def test_rendered_depth_is_the_exact_depth_of_the_scene(scene: list[room.Quad]) -> None:
    camera = room_camera(160, 120)
    # A pose of the default path, and one looking at a box in front of a wall (occlusion).
    poses = [room.camera_path(5, 1.0)[2], room.look_at(np.array([0.0, 0.0, 1.4]), [2.0, 1.6, 0.5])]
    u, v = np.meshgrid(np.arange(3, camera.width - 3, 5), np.arange(3, camera.height - 3, 5))
    pixels = np.column_stack([u.ravel(), v.ravel()]).astype(np.float64)
    for pose in poses:
        _, depth = room.render(scene, camera, pose)
        exact, quad = ray_cast(scene, camera, pose, pixels)
        # Pixels next to a surface edge may be covered by either surface: keep pixels whose
        # four neighbours see the same quad.
        same = np.ones(len(pixels), bool)
        for step in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            same &= ray_cast(scene, camera, pose, pixels + step)[1] == quad
        assert same.mean() > 0.8 and len(set(quad[same])) >= 3
        rendered = depth[v.ravel(), u.ravel()][same]
        # float64 ray-plane depth stored as float32
        np.testing.assert_allclose(rendered, exact[same], rtol=2 * np.finfo(np.float32).eps)
        # 16-bit images: rounded to the unit (0.2 mm in TUM's 5000 a metre, 1 mm in 16UC1)
        for units in (5000.0, 1000.0):
            image = room.depth_image(depth, units)[v.ravel(), u.ravel()][same]
            assert image.dtype == np.uint16
            np.testing.assert_array_less(np.abs(image / units - exact[same]), 0.5 / units + 1e-6)


def test_depth_images_mark_no_surface_and_out_of_range_as_zero() -> None:
    depth = np.array([[np.inf, 0.0, 13.2], [1.0, 13.1, np.nan]], np.float32)
    np.testing.assert_array_equal(room.depth_image(depth, 5000.0), [[0, 0, 0], [5000, 65500, 0]])


def read_bag(path: Path) -> dict[str, list]:
    from rosbags.highlevel import AnyReader

    messages: dict[str, list] = {}
    with AnyReader([path]) as reader:
        for connection, _, raw in reader.messages():
            message = reader.deserialize(raw, connection.msgtype)
            messages.setdefault(connection.topic, []).append(message)
    return messages


def stamp_ns(message) -> int:
    return message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec


def test_stereo_pairs_are_rectified_with_disparity_f_b_over_z(tmp_path: Path) -> None:
    require_module("rosbags", "the generator writes rosbag2 files")
    from superglue_ros.io import images

    baseline, camera = 0.12, room_camera(200, 150)
    out = tmp_path / "stereo"
    generate_room(out, frames=3, width=200, height=150, path_length=0.3, noise=0.0,
                  stereo_baseline=baseline, depth=True)  # fmt: skip
    bag = read_bag(out / "bag")
    assert sorted(bag) == sorted(
        f"/camera/{name}/{kind}"
        for name, image in (("left", "image_rect"), ("right", "image_rect"),
                            ("depth_registered", "image_raw"))
        for kind in (image, "camera_info")
    )  # fmt: skip
    assert all(len(messages) == 3 for messages in bag.values())
    left_info, right_info = bag["/camera/left/camera_info"][0], bag["/camera/right/camera_info"][0]
    np.testing.assert_allclose(left_info.k, right_info.k)
    np.testing.assert_allclose(np.reshape(right_info.r, (3, 3)), np.eye(3))
    p = np.reshape(right_info.p, (3, 4))
    np.testing.assert_allclose(p[0, 3], -camera.fx * baseline)
    np.testing.assert_allclose(np.delete(p, 3, axis=1), np.reshape(left_info.k, (3, 3)))
    assert np.reshape(left_info.p, (3, 4))[0, 3] == 0.0
    left = images.image_to_array(bag["/camera/left/image_rect"][0])
    right = images.image_to_array(bag["/camera/right/image_rect"][0])
    depth = images.decode_depth(bag["/camera/depth_registered/image_raw"][0]).metres()
    assert left.ndim == 2 and left.dtype == np.uint8  # mono8, as image_rect is
    corners = cv2.goodFeaturesToTrack(left, 300, 0.01, 5, blockSize=5).reshape(-1, 2)
    z = depth[np.round(corners[:, 1]).astype(int), np.round(corners[:, 0]).astype(int)]
    corners, z = corners[np.isfinite(z)], z[np.isfinite(z)]
    expected = camera.fx * baseline / z
    # Start the search 0.8 px off along the row and 0.5 px off across it.
    guess = (corners - np.column_stack([expected + 0.8, np.full(len(z), -0.5)])).astype(np.float32)
    found, status, _ = cv2.calcOpticalFlowPyrLK(
        left, right, corners.astype(np.float32).reshape(-1, 1, 2), guess.reshape(-1, 1, 2),
        winSize=(11, 11), flags=cv2.OPTFLOW_USE_INITIAL_FLOW,
    )  # fmt: skip
    tracked = status.ravel() == 1
    assert tracked.sum() > 50
    found = found.reshape(-1, 2)[tracked]
    row_error = found[:, 1] - corners[tracked, 1]
    disparity_error = corners[tracked, 0] - found[:, 0] - expected[tracked]
    # Sub-pixel tracking of linearly interpolated texture: a few hundredths of a pixel; the
    # 1 mm depth rounding adds under 0.01 px here. A wrong baseline (or a vertical offset)
    # would be off by whole pixels.
    assert np.median(np.abs(row_error)) < 0.05
    assert np.median(np.abs(disparity_error)) < 0.1


def test_the_tum_layout_round_trips_through_bag_from_dataset(tmp_path: Path) -> None:
    require_module("rosbags", "bag from-dataset writes rosbag2 files")
    from superglue_ros.io import images
    from superglue_ros.tools.bag import import_dataset

    camera, frames = room_camera(160, 120), 5
    out = tmp_path / "tum"
    generate_room(out, frames=frames, width=160, height=120, path_length=0.4, rate_hz=30.0,
                  layout="tum", depth=True)  # fmt: skip
    lines = {
        name: [line.split() for line in (out / f"{name}.txt").read_text().splitlines()
               if not line.startswith("#")]
        for name in ("rgb", "depth", "groundtruth")
    }  # fmt: skip
    # 30 Hz in microseconds, as TUM prints stamps: 1.000000, 1.033333, 1.066667, ...
    expected_stamps = [f"{1 + round(i * 1e6 / 30) / 1e6:.6f}" for i in range(frames)]
    assert [row[0] for row in lines["rgb"]] == expected_stamps
    assert [row[1] for row in lines["rgb"]] == [f"rgb/{s}.png" for s in expected_stamps]
    assert [row[0] for row in lines["depth"]] == expected_stamps
    assert all(len(row) == 8 for row in lines["groundtruth"])
    depth_png = cv2.imread(str(out / lines["depth"][2][1]), cv2.IMREAD_UNCHANGED)
    assert depth_png.dtype == np.uint16 and depth_png.shape == (120, 160)

    bag_path = tmp_path / "bag"
    import_dataset(out, bag_path, intrinsics=intrinsics_of(camera))
    bag = read_bag(bag_path)
    colour, depth = bag["/camera/color/image_raw"], bag["/camera/aligned_depth_to_color/image_raw"]
    stamps = [round(float(s) * 1e6) * 1000 for s in expected_stamps]
    assert [stamp_ns(m) for m in colour] == stamps == [stamp_ns(m) for m in depth]
    np.testing.assert_allclose(
        np.reshape(bag["/camera/color/camera_info"][0].k, (3, 3)), camera.matrix
    )
    # depth: 5000 a metre in the PNG, millimetres in the bag
    millimetres = images.decode_depth(depth[2]).depth
    assert millimetres.dtype == np.uint16
    np.testing.assert_array_equal(millimetres, read_depth(out / lines["depth"][2][1], 5.0))
    valid = depth_png > 0
    assert valid.mean() > 0.99  # a closed room: every pixel sees a surface
    assert np.abs(millimetres[valid] - depth_png[valid] / 5.0).max() <= 0.5
    # the colour image is the rendered one
    png = cv2.cvtColor(cv2.imread(str(out / lines["rgb"][0][1])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(images.image_to_array(colour[0]), png)
    # ground truth: the generator's path, written by the importer on the image stamps
    truth = read_tum(bag_path / "groundtruth.tum")
    np.testing.assert_allclose(truth.stamps, np.array(stamps) * 1e-9)
    for pose, position, quaternion in zip(
        room.camera_path(frames, 0.4), truth.positions, truth.quaternions, strict=True
    ):
        np.testing.assert_allclose(position, pose[:3, 3], atol=2e-9)
        np.testing.assert_allclose(rotation_from_quaternion(quaternion), pose[:3, :3], atol=1e-8)


@pytest.mark.parametrize("sensors", [{}, {"stereo_baseline": 0.1, "depth": True}])
def test_every_generated_bag_offers_its_topics_qos(tmp_path: Path, sensors: dict) -> None:
    """The one-camera room as the stereo / depth ones: each topic records the QoS a camera
    driver offers (reliable, keep-last 10, volatile), so ``ros2 bag play`` offers it."""
    require_module("rosbags", "the generator writes rosbag2 files")
    import yaml

    out = tmp_path / "room"
    generate_room(out, frames=2, width=32, height=24, path_length=0.1, **sensors)
    information = yaml.safe_load((out / "bag" / "metadata.yaml").read_text())
    topics = information["rosbag2_bagfile_information"]["topics_with_message_count"]
    assert len(topics) == (2 if not sensors else 6)
    for topic in topics:
        (profile,) = yaml.safe_load(topic["topic_metadata"]["offered_qos_profiles"])
        # rmw's enum values: KEEP_LAST 1, RELIABLE 1, VOLATILE 2
        assert (profile["history"], profile["depth"]) == (1, 10), topic
        assert (profile["reliability"], profile["durability"]) == (1, 2), topic


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--layout", "tum", "--stereo", "0.1"], "--layout tum holds one colour camera"),
        (["--stereo", "0"], "--stereo BASELINE must be a positive"),
        (["--stereo", "nan"], "--stereo BASELINE must be a positive"),
    ],
)
def test_bad_sensor_options_are_refused_before_anything_is_written(
    tmp_path: Path, options: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    assert cli.main(["generate", "room", "--out", str(out), "--frames", "2", *options]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_rendered_rgbd_room_replays_metric_with_near_zero_se3_ate(tmp_path: Path) -> None:
    require_module("rosbags", "the replay reads rosbag2 files")
    require_module("gtsam", "the back-end needs GTSAM (make setup installs it)")
    require_module("evo", "trajectory errors come from evo (make setup installs it)")
    # 640x480: at 320x240 ORB's keypoints are about 0.7 px off the exact projection
    # (SIFT's 0.13 px) and its PnP poses jitter by 1-2 cm a frame, a front-end limit.
    camera, frames = room_camera(640, 480), 8
    rendered, bag = tmp_path / "tum", tmp_path / "bag"
    generate_room(rendered, frames=frames, width=640, height=480, path_length=0.6,
                  layout="tum", depth=True)  # fmt: skip
    intrinsics = ",".join(repr(value) for value in intrinsics_of(camera))
    assert (
        cli.main(["bag", "from-dataset", str(rendered), str(bag), "--intrinsics", intrinsics]) == 0
    )
    params = tmp_path / "orb_rgbd.yaml"
    params.write_text(
        "frontend: orb\nmatcher: mnn\ninput: rgbd\nclassical:\n  max_keypoints: 1000\n"
    )
    out = tmp_path / "replay"
    assert cli.main([
        "replay", str(bag), "--out", str(out), "--params", str(params),
        "--odometry", "--groundtruth", str(bag / "groundtruth.tum"),
    ]) == 0  # fmt: skip
    odometry = json.loads((out / "report.json").read_text())["configs"][0]["odometry"]
    assert odometry["frames_with_pose"] == frames and odometry["maps_started"] == 1
    accuracy = odometry["accuracy"]
    # Depth exact to 1 mm, ORB keypoints to under a pixel (f = 525 px, 1-3 m away: a few
    # mm a point, averaged over hundreds): millimetres, and metric with no scale fitted.
    assert accuracy["ate_se3_rmse_m"] < 0.01
    assert accuracy["scale"] == pytest.approx(1.0, abs=0.01)
