"""stereo.rectify: a raw, distorted, rotated stereo pair rectified from its camera_info.

The raw pair is made from an exact rectified pair of the generated room (its depth
known at every pixel) by the inverse of what camera_info says: each raw pixel takes
the rectified image at cv2.undistortPoints(pixel, K, D, R, P).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from stereo_bags import BagBuilder
from test_node_inputs import BASE, prime, publish_set

from superglue_ros.evaluation import room
from superglue_ros.evaluation.textures import procedural_texture
from superglue_ros.io import images, rosbag
from superglue_ros.io.frames import decode_frame, stereo_input_from_camera_infos
from superglue_ros.io.stamps import header_fields
from superglue_ros.io.topics import double_rectification_warning, rectified_image_topics
from superglue_ros.odometry.types import CameraIntrinsics
from superglue_ros.pipeline.rectify import RawCamera, stereo_rectification
from superglue_ros.pipeline.stereo import NotRectifiedError
from superglue_ros.tools import cli

from ros_helpers import (
    NodeProcess,
    image_msg,
    probe,  # noqa: F401  (fixture)
    reliable,
    stamp_ns,
    wait_subscribed,
    wait_until,
)
from synthetic import orb_pipeline

WIDTH, HEIGHT, BASELINE = 320, 240, 0.12
FOCAL = 0.82 * WIDTH
RECTIFIED = CameraIntrinsics(FOCAL, FOCAL, (WIDTH - 1) / 2, (HEIGHT - 1) / 2, WIDTH, HEIGHT)
DISTORTION = np.array([-0.12, 0.03, 0.0006, -0.0008, 0.0])
ITERATE = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)


def undistort(pixels: np.ndarray, k, d, r, new_k) -> np.ndarray:
    """cv2.undistortPoints iterated to convergence (OpenCV 4 names it undistortPointsIter)."""
    if hasattr(cv2, "undistortPointsIter"):
        return cv2.undistortPointsIter(pixels, k, d, r, new_k, ITERATE)
    return cv2.undistortPoints(pixels, k, d, R=r, P=new_k, criteria=ITERATE)


def rotation(x_deg: float, y_deg: float) -> np.ndarray:
    return cv2.Rodrigues(np.radians([x_deg, y_deg, 0.0]))[0]


def camera_info(side: str, model: str = "plumb_bob", p_changes: dict | None = None):
    """camera_info of the raw left / right camera: its own K, distortion, R and the pair's P."""
    k = np.array([[FOCAL * 1.04, 0, 163.0], [0, FOCAL * 1.03, 118.0], [0, 0, 1]])
    if side == "right":
        k[0, 2] -= 3.0
    r = rotation(0.6, 1.5) if side == "left" else rotation(-0.4, 0.8)
    p = np.zeros((3, 4))
    p[:, :3] = RECTIFIED.matrix
    p[0, 3] = 0.0 if side == "left" else -FOCAL * BASELINE
    for (row, column), value in (p_changes or {}).items():
        p[row, column] = value
    return SimpleNamespace(
        width=WIDTH, height=HEIGHT, k=k.reshape(-1), d=DISTORTION, r=r.reshape(-1),
        p=p.reshape(-1), distortion_model=model,
    )  # fmt: skip


def raw_image(rectified: np.ndarray, info) -> np.ndarray:
    """The raw camera's view: each raw pixel samples the rectified image where it goes."""
    u, v = np.meshgrid(np.arange(WIDTH, dtype=np.float64), np.arange(HEIGHT, dtype=np.float64))
    pixels = np.stack([u, v], -1).reshape(-1, 1, 2)
    k, r, p = (np.reshape(info.k, (3, 3)), np.reshape(info.r, (3, 3)), np.reshape(info.p, (3, 4)))
    target = undistort(pixels, k, info.d, r, p[:, :3])
    target = target.reshape(HEIGHT, WIDTH, 2).astype(np.float32)
    return cv2.remap(rectified, target[..., 0], target[..., 1], cv2.INTER_LINEAR)


@pytest.fixture(scope="module")
def scene() -> dict:
    rng = np.random.default_rng(5)
    quads = room.build_room([procedural_texture(rng) for _ in range(6)], rng)
    pose = room.camera_path(5, 1.0)[2]
    left, depth = room.render(quads, RECTIFIED, pose)
    right, _ = room.render(quads, RECTIFIED, room.right_camera_pose(pose, BASELINE))
    grey = [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in (left, right)]
    infos = [camera_info("left"), camera_info("right")]
    raw = [raw_image(image, info) for image, info in zip(grey, infos, strict=True)]
    return {"rectified": grey, "raw": raw, "infos": infos, "depth": depth}


def test_the_maps_invert_the_camera_info_model() -> None:
    for side in ("left", "right"):
        info = camera_info(side)
        camera = RawCamera.from_fields(
            WIDTH, HEIGHT, info.k, info.d, info.r, info.p, info.distortion_model
        )
        map_x, map_y = camera.maps()
        rows, columns = np.mgrid[10:HEIGHT:23, 10:WIDTH:29]
        raw = np.stack([map_x[rows, columns], map_y[rows, columns]], -1).reshape(-1, 1, 2)
        back = undistort(
            raw.astype(np.float64), np.reshape(info.k, (3, 3)), info.d,
            np.reshape(info.r, (3, 3)), np.reshape(info.p, (3, 4))[:, :3],
        ).reshape(-1, 2)  # fmt: skip
        expected = np.stack([columns, rows], -1).reshape(-1, 2)
        # float32 maps of coordinates below 320: about 1e-5 px
        np.testing.assert_allclose(back, expected, atol=1e-3)


def test_a_raw_pair_is_rectified_and_gives_the_exact_depth(scene: dict) -> None:
    left_info, right_info = scene["infos"]
    with pytest.raises(NotRectifiedError, match="not the identity"):
        stereo_input_from_camera_infos(left_info, right_info, rectify=False)
    calibration, rectification = stereo_input_from_camera_infos(left_info, right_info, rectify=True)
    assert rectification is not None
    assert calibration.baseline_m == pytest.approx(BASELINE)
    assert (calibration.fx, calibration.cx, calibration.cy) == (FOCAL, RECTIFIED.cx, RECTIFIED.cy)
    messages = [
        SimpleNamespace(header=header_fields(0, "cam"), **images.array_to_image_fields(raw))
        for raw in scene["raw"]
    ]
    image, companions = decode_frame("stereo", messages, calibration, rectification)
    # Back on the rectified images, up to resampling twice (the border the raw cameras
    # do not see aside): under 2 grey levels on average where the raw images are 15 off.
    inner = np.s_[30:-30, 30:-30]
    for got, raw, exact in zip(
        (image, companions.right.image), scene["raw"], scene["rectified"], strict=True
    ):
        error = np.abs(got[inner].astype(float) - exact[inner]).mean()
        assert error < 3.0
        assert np.abs(raw[inner].astype(float) - exact[inner]).mean() > 5 * error

    result = orb_pipeline({"input": "stereo"}).process(image, 0, companions)
    found = np.isfinite(result.depths)
    assert found.mean() > 0.4
    keypoints = np.round(result.features.keypoints[found]).astype(int)
    exact = scene["depth"][keypoints[:, 1], keypoints[:, 0]]
    # disparities of 10-30 px; sub-pixel stereo's ~0.1-0.2 px error: a percent or so
    assert np.median(np.abs(result.depths[found] / exact - 1)) < 0.02


def test_pairs_that_cannot_be_rectified_from_camera_info_are_refused() -> None:
    left = camera_info("left")
    cases = [
        (camera_info("right", p_changes={(1, 2): 130.0}), r"cannot rectify.*P rows disagree"),
        (camera_info("right", model="kannala_brandt"), "distortion model 'kannala_brandt'"),
        (SimpleNamespace(**{**vars(camera_info("right")), "width": 640}), "differ in size"),
    ]
    for right, message in cases:
        with pytest.raises(NotRectifiedError, match=message):
            stereo_input_from_camera_infos(left, right, rectify=True)


def test_a_rectified_pair_is_used_as_it_is() -> None:
    infos = []
    for side in ("left", "right"):
        info = camera_info(side)
        info.k, info.d, info.r = RECTIFIED.matrix.reshape(-1), np.zeros(5), np.eye(3).reshape(-1)
        infos.append(RawCamera.from_fields(WIDTH, HEIGHT, info.k, info.d, info.r, info.p, ""))
    assert stereo_rectification(*infos) is None


def test_topics_named_as_rectified_images() -> None:
    topics = [
        "/cam/left/image_rect", "right/image_rect_color", "/d435/infra1/image_rect_raw",
        "/cam/left/image_rect/compressed", "/cam/left/image_raw", "/cam/rectangle/image",
        "/cam/left/image_rectified", "image_color",
    ]  # fmt: skip
    assert rectified_image_topics(topics) == topics[:4]
    assert double_rectification_warning(topics[4:]) is None
    warning = double_rectification_warning(["/a/left/image_rect", "/a/right/image_raw"])
    assert warning is not None and "/a/left/image_rect are named as rectified" in warning


def write_raw_bag(path: Path, scene: dict, image_name: str) -> None:
    """The raw pair and its camera_info under /cam/{left,right}/, images on image_name."""
    builder = BagBuilder(path)
    for side, info, raw in zip(("left", "right"), scene["infos"], scene["raw"], strict=True):
        fields = {
            "header": header_fields(10**9, "cam"), "height": HEIGHT, "width": WIDTH,
            "distortion_model": info.distortion_model, "d": np.asarray(info.d),
            "k": np.asarray(info.k), "r": np.asarray(info.r), "p": np.asarray(info.p),
            "binning_x": 0, "binning_y": 0,
            "roi": {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False},
        }  # fmt: skip
        builder.write(f"/cam/{side}/camera_info", rosbag.CAMERA_INFO, fields, 1)
        builder.image(f"/cam/{side}/{image_name}", raw, 10**9, 2)
    builder.close()


def test_replay_rectifies_a_raw_stereo_bag(scene: dict, tmp_path: Path, capsys) -> None:
    path = tmp_path / "raw"
    write_raw_bag(path, scene, "image_raw")
    base = "frontend: orb\nmatcher: mnn\ninput: stereo\n"
    argv = ["replay", str(path), "--image-topic", "/cam/left/image_raw"]
    for name, params, status in (("refused", base, 2), ("rectified", base + RECTIFY, 0)):
        params_file = tmp_path / f"{name}.yaml"
        params_file.write_text(params)
        out = tmp_path / name
        assert cli.main([*argv, "--out", str(out), "--params", str(params_file)]) == status
    err = capsys.readouterr().err
    assert "not rectified" in err and "rectified twice" not in err
    frame = json.loads((tmp_path / "rectified" / "rectified" / "frames.jsonl").read_text())
    assert frame["keypoints"] > 100
    from rosbags.highlevel import AnyReader

    with AnyReader([tmp_path / "rectified" / "rectified" / "correspondences"]) as reader:
        connections = [c for c in reader.connections if c.topic == "/correspondences"]
        (message,) = [
            reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(connections)
        ]
    assert np.isfinite(np.asarray(message.features.depths)).mean() > 0.4
    # The same pair on image_rect topics, as image_proc names its output: a warning.
    write_raw_bag(tmp_path / "named_rect", scene, "image_rect")
    argv = ["replay", str(tmp_path / "named_rect"), "--image-topic", "/cam/left/image_rect"]
    argv += ["--out", str(tmp_path / "out_rect"), "--params", str(params_file)]
    assert cli.main(argv) == 0
    assert "/cam/left/image_rect, /cam/right/image_rect are named as rectified images" in (
        capsys.readouterr().err
    )


RECTIFY = "stereo:\n  rectify: true\n"


@pytest.mark.slow
def test_the_node_rectifies_a_raw_pair(scene: dict, ros_env, tmp_path, probe) -> None:  # noqa: F811
    import superglue_ros_msgs.msg as msgs
    from sensor_msgs.msg import CameraInfo, Image

    def info_msg(info) -> CameraInfo:
        msg = CameraInfo(width=WIDTH, height=HEIGHT, distortion_model=info.distortion_model)
        msg.k, msg.d, msg.r, msg.p = (
            np.asarray(v, np.float64) for v in (info.k, info.d, info.r, info.p)
        )
        return msg

    corrs = probe.collect("correspondences", msgs.Correspondences, reliable(100))
    images = [
        probe.publisher(t, Image, reliable(5)) for t in ("left/image_rect", "right/image_rect")
    ]
    infos = [
        probe.publisher(t, CameraInfo, reliable(5))
        for t in ("left/camera_info", "right/camera_info")
    ]
    params = {**BASE, "input": "stereo", "stereo.rectify": True}
    with NodeProcess(ros_env, tmp_path, params) as node:
        for publisher in images + infos:
            wait_subscribed(publisher, node)
        wait_until(lambda: probe.node.count_publishers("correspondences") > 0, 10, "publishers")
        raw = scene["raw"]
        make_set = lambda stamp: [image_msg(raw[0], stamp), image_msg(raw[1], stamp)]  # noqa: E731
        prime(node, infos, [info_msg(i) for i in scene["infos"]], images, make_set, corrs)
        publish_set(node, images, make_set(10**9), corrs)
        (message,) = corrs
        assert stamp_ns(message.header.stamp) == 10**9
        keypoints = np.round(np.asarray(message.features.keypoints).reshape(-1, 2)).astype(int)
        depths = np.asarray(message.features.depths)
        found = np.isfinite(depths)
        assert found.mean() > 0.4
        exact = scene["depth"][keypoints[found, 1], keypoints[found, 0]]
        assert np.median(np.abs(depths[found] / exact - 1)) < 0.02  # as replay's
        code, _ = node.interrupt()
        assert code == 0, node.output()
    assert "Traceback" not in node.output()
    # The raw pair came on the default left/image_rect names: the node says so, once.
    assert node.output().count("would be rectified twice") == 1, node.output()
