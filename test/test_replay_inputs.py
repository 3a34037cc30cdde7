"""replay with input stereo / rgbd: bags of generated pairs and depth, paired by the node's
synchroniser, with depth at keypoints against the exact depth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from stereo_bags import BagBuilder, camera_info_fields
from stereo_scene import BoxScene, PlaneScene

from superglue_ros.io import images, rosbag
from superglue_ros.io.frames import synchroniser_for
from superglue_ros.io.stamps import stamp_to_ns
from superglue_ros.io.topics import depth_topics_for, right_topic_for
from superglue_ros.pipeline.params import validate
from superglue_ros.tools import cli

MS = 1_000_000
START = 10**9
PARAMS = "frontend: orb\nmatcher: mnn\nclassical:\n  max_keypoints: 400\n"


# Stereo stream: (topic index, header stamp offset in ms from frame i's stamp), in bag
# order. The right camera runs 3 ms late and is sometimes written first; frame 3's
# right image is lost, frame 5's left.
STEREO_FRAMES = 8


def stereo_schedule() -> list[tuple[int, int]]:
    events = []
    for i in range(STEREO_FRAMES):
        stamp = START + 100 * MS * i
        pair = [(0, stamp), (1, stamp + 3 * MS)]
        if i == 3:
            pair = pair[:1]
        if i == 5:
            pair = pair[1:]
        events += pair[::-1] if i % 2 else pair
    return events


@pytest.fixture(scope="module")
def stereo_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scene = PlaneScene()
    left, right = scene.pair()
    path = tmp_path_factory.mktemp("stereo") / "bag"
    builder = BagBuilder(path)
    tx = -scene.fx * scene.baseline_m
    builder.write("/cam/left/camera_info", rosbag.CAMERA_INFO, camera_info_fields(scene, START), 1)
    builder.write(
        "/cam/right/camera_info", rosbag.CAMERA_INFO, camera_info_fields(scene, START, tx), 1
    )
    for order, (topic, stamp) in enumerate(stereo_schedule()):
        name = ("/cam/left/image_rect", "/cam/right/image_rect")[topic]
        # A slight shift per frame so that consecutive frames are not identical.
        shift = (stamp - START) // (100 * MS)
        image = np.roll((left, right)[topic], int(shift), axis=1)
        builder.image(name, image, stamp, START + order * MS)
    builder.close()
    return path


def run_replay(bag: Path, out: Path, params: str, *extra: str) -> int:
    params_file = out.parent / f"{out.name}.yaml"
    params_file.write_text(params)
    return cli.main(["replay", str(bag), "--out", str(out), "--params", str(params_file), *extra])


def correspondences(out: Path) -> list[object]:
    bag = next(out.glob("*/correspondences"))
    with AnyReader([bag]) as reader:
        connections = [c for c in reader.connections if c.topic == "/correspondences"]
        return [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(connections)]


STEREO_PARAMS = PARAMS + "input: stereo\nsync:\n  policy: approximate\n  slop_s: 0.01\n"


def test_pair_topics_beside_the_image_topic() -> None:
    assert right_topic_for("/cam/left/image_rect") == "/cam/right/image_rect"
    assert right_topic_for("/zed/left/image_rect_color/compressed") == "/zed/right/image_rect_color"
    assert right_topic_for("left/image_rect") == "right/image_rect"  # relative stays relative
    assert right_topic_for("/cam/image_raw") is None
    assert depth_topics_for("/camera/color/image_raw") == [
        "/camera/aligned_depth_to_color/image_raw",
        "/camera/depth_registered/image_raw",
    ]
    assert depth_topics_for("color/image_raw")[0] == "aligned_depth_to_color/image_raw"


def test_stereo_replay_pairs_as_the_node_and_gives_depth(
    stereo_bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert run_replay(stereo_bag, out, STEREO_PARAMS) == 0
    messages = correspondences(out)

    # The node's synchroniser, fed the same stamps in the bag's order.
    sync = synchroniser_for(validate({"input": "stereo", "sync.slop_s": 0.01}))
    expected = []
    for topic, stamp in stereo_schedule():
        expected += [s.stamp_ns for s in sync.push(topic, stamp, None)]
    sync.flush()
    stamps = [stamp_to_ns(m.header.stamp) for m in messages]
    assert stamps == expected
    # Frames 3 (no right) and 5 (no left) are the ones missing.
    assert stamps == [START + 100 * MS * i for i in range(STEREO_FRAMES) if i not in (3, 5)]

    scene = PlaneScene()
    for message in messages:
        keypoints = np.asarray(message.features.keypoints).reshape(-1, 2)
        depths = np.asarray(message.features.depths)
        right_x = np.asarray(message.features.right_x)
        found = np.isfinite(depths)
        assert found.mean() > 0.5
        np.testing.assert_array_equal(found, np.isfinite(right_x))
        exact = scene.depth_at(keypoints[found, 1])
        # pipeline/stereo's sub-pixel disparity error (~0.1 px) at disparities of
        # ~10 px: about 1 % of the depth; the median is well inside 2 %.
        assert np.median(np.abs(depths[found] / exact - 1)) < 0.02

    report = json.loads((out / "report.json").read_text())
    assert report["input"] == "stereo"
    assert report["image_topics"] == ["/cam/left/image_rect", "/cam/right/image_rect"]
    assert report["unpaired"] == dict(zip(report["image_topics"], sync.unpaired, strict=True))
    assert report["unpaired"] == {"/cam/left/image_rect": 1, "/cam/right/image_rect": 1}
    assert "in no stereo frame: /cam/left/image_rect 1" in capsys.readouterr().err

    again = tmp_path / "again"
    assert run_replay(stereo_bag, again, STEREO_PARAMS) == 0
    for first, second in zip(messages, correspondences(again), strict=True):
        np.testing.assert_array_equal(first.features.keypoints, second.features.keypoints)
        np.testing.assert_array_equal(first.features.depths, second.features.depths)
        np.testing.assert_array_equal(first.features.right_x, second.features.right_x)


def test_stereo_replay_refusals(
    stereo_bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No right topic of that name.
    argv = ("--pair-topic", "/cam/middle/image_rect")
    assert run_replay(stereo_bag, tmp_path / "a", STEREO_PARAMS, *argv) == 2
    assert "no right image topic /cam/middle/image_rect" in capsys.readouterr().err
    # Configurations that would pair the bag differently.
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text(STEREO_PARAMS)
    second.write_text(PARAMS + "input: stereo\nsync:\n  slop_s: 0.02\n")
    argv = ["replay", str(stereo_bag), "--out", str(tmp_path / "b"), "--params"]
    assert cli.main([*argv, str(first), str(second)]) == 2
    assert "differ in sync.slop_s" in capsys.readouterr().err

    # An unrectified right camera is refused with the reason.
    scene = PlaneScene()
    left, right = scene.pair()
    path = tmp_path / "tilted"
    builder = BagBuilder(path)
    tilted = np.array([[1, 0, 0], [0, 0.9998, -0.02], [0, 0.02, 0.9998]])
    tx = -scene.fx * scene.baseline_m
    builder.write("/cam/left/camera_info", rosbag.CAMERA_INFO, camera_info_fields(scene, START), 1)
    builder.write(
        "/cam/right/camera_info",
        rosbag.CAMERA_INFO,
        camera_info_fields(scene, START, tx, tilted),
        1,
    )
    builder.image("/cam/left/image_rect", left, START, 2)
    builder.image("/cam/right/image_rect", right, START, 3)
    builder.close()
    assert run_replay(path, tmp_path / "c", STEREO_PARAMS) == 2
    assert "not rectified" in capsys.readouterr().err


def test_rgbd_replay_reads_depth_at_keypoints(tmp_path: Path) -> None:
    scene = BoxScene()
    colour, depth = scene.rgbd()
    depth_mm = np.rint(depth * 1000).astype(np.uint16)
    path = tmp_path / "rgbd"
    builder = BagBuilder(path)
    builder.write("/cam/color/camera_info", rosbag.CAMERA_INFO, camera_info_fields(scene, START), 1)
    stamps = [START + 100 * MS * i for i in range(4)]
    for i, stamp in enumerate(stamps):
        builder.image("/cam/color/image_raw", np.roll(colour, i, axis=1), stamp, stamp)
        fields = images.depth_image_fields(np.roll(depth_mm, i, axis=1), stamp, "cam")
        builder.write("/cam/aligned_depth_to_color/image_raw", rosbag.IMAGE, fields, stamp + 1)
    builder.close()

    out = tmp_path / "out"
    assert run_replay(path, out, PARAMS + "input: rgbd\nsync:\n  policy: exact\n") == 0
    messages = correspondences(out)
    assert [stamp_to_ns(m.header.stamp) for m in messages] == stamps
    for i, message in enumerate(messages):
        keypoints = np.asarray(message.features.keypoints).reshape(-1, 2)
        depths = np.asarray(message.features.depths)
        assert len(message.features.right_x) == 0  # stereo only
        # The scene as it is in this frame: shifted i pixels right.
        points = keypoints - [i, 0]
        away = ~scene.near_box_edge(points, radius=2)  # depth.window_px
        assert np.isfinite(depths[away]).all()
        # As pipeline/depth's own test: the window's median over the plane's slope
        # (half a row's change) and the millimetre quantum.
        tolerance = 0.5 * scene.max_depth_slope() + 0.5e-3 + 1e-5
        np.testing.assert_allclose(
            depths[away], scene.exact_depth(points[away]), rtol=0, atol=tolerance
        )
    report = json.loads((out / "report.json").read_text())
    assert report["input"] == "rgbd"
    assert report["unpaired"] == {
        "/cam/color/image_raw": 0,
        "/cam/aligned_depth_to_color/image_raw": 0,
    }
