"""The launch file under the real ``ros2 launch``, as a user runs it, Ctrl-C included.

Runs where launch_ros and the ``ros2`` command are installed (a ROS 2 distribution)
and skips elsewhere; test_launch_file.py covers the launch file's logic here.
``ros2 launch`` forwards SIGINT to its nodes and the terminal's Ctrl-C reaches them
too, so the launch gets two SIGINTs in its process group, as from a terminal.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from conftest import PROJECT_ROOT, require_module
from ros_helpers import probe, reliable, sequence_frames, wait_until  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

IMAGE_TOPIC = "/cam/image_raw"
FRAMES = 12
SHUTDOWN_LIMIT_S = 20.0  # launch waits up to 5 s per stage before escalating


def require_ros2_launch() -> str:
    if importlib.util.find_spec("launch_ros") is None:
        pytest.skip("launch_ros is not installed (a ROS 2 distribution has it; PyPI does not)")
    ros2 = shutil.which("ros2")
    if ros2 is None:
        pytest.skip("the ros2 command (ros2cli, ros2launch) is not on PATH")
    require_module("superglue_ros_msgs", "needs the built interface package (make test builds it)")
    return ros2


def write_bag(tmp_path: Path) -> Path:
    """A bag with FRAMES images on IMAGE_TOPIC and camera info beside it."""
    from superglue_ros.io import image_files
    from superglue_ros.tools.bag import write_from_images

    frames, stamps, camera_yaml = sequence_frames(FRAMES)
    folder = tmp_path / "frames"
    folder.mkdir()
    for image, stamp in zip(frames, stamps, strict=True):
        cv2.imwrite(str(folder / f"{stamp * 1e-9:.6f}.png"), image[:, :, ::-1])
    if camera_yaml is None:
        height, width = frames[0].shape[:2]
        camera_yaml = folder / "camera.yaml"
        camera_yaml.write_text(
            f"image_width: {width}\nimage_height: {height}\n"
            f"fx: 300.0\nfy: 300.0\ncx: {width / 2}\ncy: {height / 2}\n"
        )
    assert len(image_files.list_images(folder)) == FRAMES
    bag = tmp_path / "bag"
    write_from_images(folder, bag, topic=IMAGE_TOPIC, camera_yaml=camera_yaml)
    return bag


def test_launch_with_odometry_plays_a_bag_and_stops_cleanly_on_two_sigints(
    ros_env,
    tmp_path,
    probe,  # noqa: F811
) -> None:
    ros2 = require_ros2_launch()
    require_module("gtsam", "odometry_node needs GTSAM (make setup installs it)")
    import superglue_ros_msgs.msg as msgs

    bag = write_bag(tmp_path)
    corrs = probe.collect("/correspondences", msgs.Correspondences, reliable(100))
    log_path = tmp_path / "launch.log"
    with log_path.open("w") as log:
        launch = subprocess.Popen(
            [
                ros2, "launch", "superglue_ros", "matcher.launch.py", "frontend:=orb",
                "matcher:=mnn", "odometry:=true", f"image:={IMAGE_TOPIC}",
                "image_reliability:=reliable", "image_qos_depth:=10",
            ],
            env=ros_env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
            # its own process group, SIGINT at its default (a job started from a
            # non-interactive shell inherits it ignored), as in a terminal
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )  # fmt: skip
    try:

        def output() -> str:
            return log_path.read_text()

        def started() -> bool:
            assert launch.poll() is None, f"launch exited ({launch.returncode}):\n{output()}"
            return "listening on" in output() and "odometry from" in output()

        wait_until(started, 60, "both nodes to start")
        # The camera info beside the image topic, for both nodes.
        assert "camera info on /cam/camera_info" in output(), output()
        play = subprocess.run(
            [sys.executable, "-m", "superglue_ros.tools.cli", "play", str(bag), "--rate", "5",
             "--wait-subscribers", "1", "--wait-timeout", "60"],
            env=ros_env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert play.returncode == 0, play.stdout + play.stderr
        assert f"on {IMAGE_TOPIC} and /cam/camera_info" in play.stdout, play.stdout
        wait_until(lambda: len(corrs) > 0, 10, "the matcher's correspondences")
        time.sleep(1.0)  # the last frames through both nodes
        assert launch.poll() is None, output()

        start = time.monotonic()
        os.killpg(launch.pid, signal.SIGINT)
        time.sleep(0.05)
        os.killpg(launch.pid, signal.SIGINT)
        code = launch.wait(timeout=SHUTDOWN_LIMIT_S + 10)
        took = time.monotonic() - start
        log = output()
        assert code == 0, f"ros2 launch exited {code}:\n{log}"
        assert "Traceback" not in log and "KeyboardInterrupt" not in log, log
        assert "process has died" not in log, log  # a node exited non-zero or by a signal
        assert log.count("shutting down (SIGINT") == 2, log  # both nodes, our own shutdown
        assert took < SHUTDOWN_LIMIT_S, log
    finally:
        if launch.poll() is None:
            os.killpg(launch.pid, signal.SIGKILL)
            launch.wait(timeout=10)
