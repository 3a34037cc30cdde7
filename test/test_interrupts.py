"""`replay` and `play` under repeated Ctrl-C: a clean stop, valid outputs, no traceback.

Each tool runs in its own process group and gets its signals there, as from a
terminal where Ctrl-C is pressed more than once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from conftest import PROJECT_ROOT
from ros_helpers import wait_until

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "superglue_ros.tools.cli"]
ORB_MNN = PROJECT_ROOT / "config" / "eval" / "orb_mnn.yaml"


@pytest.fixture(scope="module")
def long_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 frames of 320x240 synthetic camera motion: a replay takes several seconds."""
    from superglue_ros.io import images, rosbag

    from synthetic import sequence, translation

    path = tmp_path_factory.mktemp("interrupts") / "long"
    motions = [translation(2.0 * np.sin(i / 9.0) * 20, 0.5 * i % 40) for i in range(300)]
    frames = sequence(motions).images
    typestore = rosbag.make_typestore()
    writer = rosbag.open_writer(path)
    connection = writer.add_connection("/cam/image_raw", rosbag.IMAGE, typestore=typestore)
    for i, image in enumerate(frames):
        stamp = 10**9 + i * 33_000_000
        message = rosbag.build_message(
            typestore, rosbag.IMAGE, images.image_fields(image, stamp, "cam")
        )
        writer.write(connection, stamp, typestore.serialize_cdr(message, rosbag.IMAGE))
    writer.close()
    return path


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [*CLI, *args],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def signal_group(proc: subprocess.Popen, signals: list[signal.Signals], gap: float) -> None:
    for index, signum in enumerate(signals):
        if index:
            time.sleep(gap)
        if proc.poll() is None:
            os.killpg(proc.pid, signum)


@pytest.mark.parametrize(
    ("signals", "gap"),
    [
        ([signal.SIGINT, signal.SIGINT, signal.SIGINT], 0.0),
        ([signal.SIGINT, signal.SIGINT, signal.SIGINT], 0.1),
        ([signal.SIGTERM, signal.SIGINT], 0.3),
    ],
)
def test_replay_under_repeated_ctrl_c(long_bag: Path, tmp_path: Path, signals, gap) -> None:
    out = tmp_path / "out"
    log = tmp_path / "replay.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = start(["replay", str(long_bag), "--out", str(out), "--params", str(ORB_MNN)], env, log)
    frames_file = out / "orb_mnn" / "frames.jsonl"
    try:
        wait_until(
            lambda: frames_file.is_file() and len(frames_file.read_bytes().splitlines()) >= 3,
            30,
            "the replay to process frames",
        )
        signal_group(proc, signals, gap)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = log.read_text()
    assert code == 130 and "Traceback" not in output, output
    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] is True
    written = report["configs"][0]["frames"]
    assert 3 <= written < 300
    assert len(frames_file.read_bytes().splitlines()) == written
    with AnyReader([out / "orb_mnn" / "correspondences"]) as reader:
        stored = sum(1 for c, _, _ in reader.messages() if c.topic == "/correspondences")
    assert stored == written


def test_play_under_repeated_ctrl_c(ros_env, tmp_path: Path, long_bag: Path) -> None:
    log = tmp_path / "play.log"
    proc = start(["play", str(long_bag), "--rate", "30"], ros_env, log)
    try:
        wait_until(lambda: "play: 300 frames" in log.read_text(), 30, "play to start")
        time.sleep(0.5)
        signal_group(proc, [signal.SIGINT, signal.SIGINT, signal.SIGTERM], 0.02)
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = log.read_text()
    assert code == 130 and "Traceback" not in output, output
    assert "play: stopped by SIGINT" in output
