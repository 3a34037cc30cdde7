"""``superglue-ros play`` over real DDS: an image folder and a bag, stamps and CameraInfo."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import PROJECT_ROOT
from ros_helpers import (
    probe,  # noqa: F401  (fixture)
    reliable,
    stamp_ns,
    wait_until,
)

pytestmark = pytest.mark.slow


def play_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "superglue_ros.tools.cli", "play", *args]


def write_folder(tmp_path, count=4):
    import cv2

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(1)
    images = []
    for i in range(count):
        image = rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{100 + i * 0.25:.6f}.png"), image)
        images.append(image[:, :, ::-1])  # RGB
    (folder / "camera.yaml").write_text(
        "image_width: 32\nimage_height: 24\nfx: 50.0\nfy: 51.0\ncx: 16.0\ncy: 12.0\n"
        "distortion: [0.1, 0.0, 0.0, 0.0, 0.0]\n"
    )
    return folder, images


def run_play(env, *args):
    proc = subprocess.Popen(
        play_cmd(*args),
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc


def test_play_folder_publishes_images_stamps_and_camera_info(ros_env, tmp_path, probe) -> None:  # noqa: F811
    from sensor_msgs.msg import CameraInfo, Image

    from superglue_ros.io.images import image_to_array

    folder, images = write_folder(tmp_path)
    got = probe.collect("/cam/image_raw", Image, reliable(50))
    infos = probe.collect("/cam/camera_info", CameraInfo, reliable(50))
    proc = run_play(
        ros_env,
        str(folder),
        "--topic",
        "/cam/image_raw",
        "--camera-info-topic",
        "/cam/camera_info",
        "--rate",
        "20",
        "--wait-subscribers",
        "1",
        "--frame-id",
        "optical",
    )
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    wait_until(lambda: len(got) == len(images), 5, "all frames")
    assert [stamp_ns(m.header.stamp) for m in got] == [
        100_000_000_000 + i * 250_000_000 for i in range(len(images))
    ]
    for msg, image in zip(got, images, strict=True):
        assert msg.header.frame_id == "optical"
        np.testing.assert_array_equal(image_to_array(msg), image)
    wait_until(lambda: len(infos) == len(images), 5, "camera infos")
    assert [stamp_ns(m.header.stamp) for m in infos] == [stamp_ns(m.header.stamp) for m in got]
    assert infos[0].k[0] == 50.0 and infos[0].k[5] == 12.0 and infos[0].d[0] == pytest.approx(0.1)
    assert "published 4 frames" in out


def test_play_bag_publishes_on_its_own_topics(ros_env, tmp_path, probe) -> None:  # noqa: F811
    """By default a bag's images and camera info go out on the bag's own topics (what a
    node remapped to them listens on); --topic moves camera info along with the images."""
    from sensor_msgs.msg import CameraInfo, Image

    from superglue_ros.io.images import image_to_array
    from superglue_ros.tools.bag import write_from_images

    folder, images = write_folder(tmp_path, count=3)
    bag = tmp_path / "bag"
    write_from_images(folder, bag, topic="/camera/image_raw", camera_yaml=folder / "camera.yaml")
    got = probe.collect("/camera/image_raw", Image, reliable(50))
    infos = probe.collect("/camera/camera_info", CameraInfo, reliable(50))
    proc = run_play(ros_env, str(bag), "--rate", "20", "--wait-subscribers", "1")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    wait_until(lambda: len(got) == 3 and len(infos) == 3, 5, "bag frames")
    assert [stamp_ns(m.header.stamp) for m in got] == [
        100_000_000_000 + i * 250_000_000 for i in range(3)
    ]
    np.testing.assert_array_equal(image_to_array(got[2]), images[2])
    assert infos[0].k[4] == 51.0
    assert "on /camera/image_raw and /camera/camera_info" in out

    moved = probe.collect("/relay/image", Image, reliable(50))
    moved_infos = probe.collect("/relay/camera_info", CameraInfo, reliable(50))
    proc = run_play(
        ros_env, str(bag), "--topic", "/relay/image", "--rate", "20", "--wait-subscribers", "1"
    )
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    wait_until(lambda: len(moved) == 3 and len(moved_infos) == 3, 5, "remapped bag frames")
    assert len(got) == 3  # nothing more on the bag's own topic


def test_play_stereo_bag_publishes_every_stream(ros_env, tmp_path, probe) -> None:  # noqa: F811
    """A bag with several image topics is played whole: each stream on its own topic with
    its own camera info; --topic cannot rename several streams."""
    from sensor_msgs.msg import CameraInfo, Image
    from stereo_bags import BagBuilder, camera_info_fields
    from stereo_scene import PlaneScene

    from superglue_ros.io.images import image_to_array

    scene = PlaneScene(height=24, width=32)
    left, right = scene.pair()
    bag = tmp_path / "stereo"
    builder = BagBuilder(bag)
    tx = -scene.fx * scene.baseline_m
    stamps = [10**9 + i * 50_000_000 for i in range(3)]
    for stamp in stamps:
        for side, image, info_tx in (("left", left, 0.0), ("right", right, tx)):
            fields = camera_info_fields(scene, stamp, info_tx)
            builder.write(f"/cam/{side}/camera_info", "sensor_msgs/msg/CameraInfo", fields, stamp)
            builder.image(f"/cam/{side}/image_rect", image, stamp, stamp)
    builder.close()
    infos = {
        side: probe.collect(f"/cam/{side}/camera_info", CameraInfo, reliable(50))
        for side in ("left", "right")
    }
    got = {
        side: probe.collect(f"/cam/{side}/image_rect", Image, reliable(50))
        for side in ("left", "right")
    }
    proc = run_play(ros_env, str(bag), "--rate", "20", "--wait-subscribers", "1")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    wait_until(lambda: all(len(v) == 3 for v in [*got.values(), *infos.values()]), 5, "streams")
    for side, image in (("left", left), ("right", right)):
        assert [stamp_ns(m.header.stamp) for m in got[side]] == stamps
        np.testing.assert_array_equal(image_to_array(got[side][0]), image)
    assert infos["left"][0].p[3] == 0.0 and infos["right"][0].p[3] == pytest.approx(tx)
    assert "/cam/right/image_rect and /cam/right/camera_info" in out

    proc = run_play(ros_env, str(bag), "--topic", "/relay/image")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "choose one with --bag-topic" in out, out


def test_play_bad_path_exits_non_zero(ros_env, tmp_path) -> None:
    proc = run_play(ros_env, str(tmp_path / "nothing_here"))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "nothing_here" in out and "does not exist" in out
    assert "Traceback" not in out
