"""Damaged input bags: every intact frame is replayed (and played), and where the bag ended is said.

A recording killed mid-write leaves an mcap without summary or footer, its last
chunk cut; a sqlite3 file can lose its last pages. rosbags refuses both whole.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from superglue_ros.io import images, rosbag
from superglue_ros.io.damaged_bag import DamagedBag, bag_files
from superglue_ros.io.stamps import stamp_to_ns
from superglue_ros.tools import cli

from conftest import PROJECT_ROOT

ORB_MNN = PROJECT_ROOT / "config" / "eval" / "orb_mnn.yaml"
FRAMES = 40
STAMPS = [10**9 + i * 50_000_000 for i in range(FRAMES)]


def write_bag(path: Path, storage: str) -> None:
    """FRAMES 320x240 mono8 frames of a sliding texture (77 KB each: several mcap chunks)."""
    from synthetic import sequence, translation

    frames = sequence([translation(2.0 * i, 1.0 * i) for i in range(FRAMES)]).images
    typestore = rosbag.make_typestore()
    writer = rosbag.open_writer(path, storage)
    connection = writer.add_connection("/cam/image_raw", rosbag.IMAGE, typestore=typestore)
    for image, stamp in zip(frames, STAMPS, strict=True):
        message = rosbag.build_message(
            typestore, rosbag.IMAGE, images.image_fields(image, stamp, "cam")
        )
        writer.write(connection, stamp, typestore.serialize_cdr(message, rosbag.IMAGE))
    writer.close()


def cut(path: Path, fraction: float) -> int:
    """Cut the bag's storage file to fraction of its length; returns the new length."""
    (storage,) = bag_files(path)
    data = storage.read_bytes()
    storage.write_bytes(data[: int(len(data) * fraction)])
    return int(len(data) * fraction)


def replayed_stamps(out: Path) -> list[int]:
    with AnyReader([out / "orb_mnn" / "correspondences"]) as reader:
        return [
            stamp_to_ns(reader.deserialize(raw, c.msgtype).header.stamp)
            for c, _, raw in reader.messages()
            if c.topic == "/correspondences"
        ]


@pytest.mark.parametrize(("storage", "fraction"), [("mcap", 0.5), ("sqlite3", 0.75)])
def test_replay_of_a_damaged_bag(
    storage: str, fraction: float, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "input"
    write_bag(source, storage)
    size = cut(source, fraction)
    out = tmp_path / "out"
    assert cli.main(["replay", str(source), "--out", str(out), "--params", str(ORB_MNN)]) == 3
    stamps = replayed_stamps(out)
    # The intact frames are a prefix of the recording; most of the kept part is used.
    assert 0 < len(stamps) < FRAMES and stamps == STAMPS[: len(stamps)]
    assert len(stamps) >= int(FRAMES * fraction) - 4
    report = json.loads((out / "report.json").read_text())
    damage = report["input_damage"]
    assert damage["file"].endswith(".mcap" if storage == "mcap" else ".db3")
    assert report["frames_read"] == report["configs"][0]["frames"] == len(stamps)
    if storage == "mcap":
        assert damage["size"] == size and 0 < damage["offset"] <= size
    assert "damaged" in (out / "report.md").read_text()
    error = capsys.readouterr().err
    assert "is damaged" in error and f"replayed the {len(stamps)} frames" in error


@pytest.mark.parametrize("compression", ["NONE", "ZSTD", "LZ4"])
def test_damaged_mcap_reader_keeps_every_complete_message(compression: str, tmp_path: Path) -> None:
    """Files written by the mcap package itself, chunked and compressed, cut anywhere."""
    from mcap.reader import make_reader
    from mcap.writer import CompressionType, Writer

    path = tmp_path / "bag.mcap"
    payloads = [bytes([i]) * (300 + 7 * i) for i in range(60)]
    with path.open("wb") as stream:
        writer = Writer(stream, chunk_size=2000, compression=CompressionType[compression])
        writer.start(profile="ros2", library="test")
        schema = writer.register_schema("sensor_msgs/msg/Image", "ros2msg", b"")
        channel = writer.register_channel("/cam/image_raw", "cdr", schema)
        for i, payload in enumerate(payloads):
            writer.add_message(channel, log_time=i, data=payload, publish_time=i)
        writer.finish()
    with path.open("rb") as stream:
        expected = [m.data for _, _, m in make_reader(stream).iter_messages()]
    intact = DamagedBag(path)
    assert intact.damage is None and [m.data for m in intact.messages()] == expected
    data = path.read_bytes()
    counts = []
    for fraction in (0.2, 0.5, 0.77, 0.95):
        path.write_bytes(data[: int(len(data) * fraction)])
        damaged = DamagedBag(path)
        got = [m.data for m in damaged.messages()]
        assert got == payloads[: len(got)], "a prefix of the messages, each one whole"
        assert damaged.damage is not None and damaged.topics["/cam/image_raw"][1] == len(got)
        counts.append(len(got))
    assert counts == sorted(counts) and counts[-1] > counts[0] > 0
    if compression == "NONE":  # a cut chunk's complete messages are kept, not only whole chunks
        assert counts[1] >= int(0.5 * len(payloads)) - 3


def test_play_of_a_damaged_bag(ros_env, tmp_path: Path) -> None:
    source = tmp_path / "input"
    write_bag(source, "mcap")
    cut(source, 0.5)
    run = subprocess.run(
        [sys.executable, "-m", "superglue_ros.tools.cli", "play", str(source), "--rate", "200"],
        env=ros_env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 3, run.stdout + run.stderr
    published = int(run.stdout.split("play: published ", 1)[1].split()[0])
    assert 0 < published < FRAMES and "is damaged" in run.stdout
    assert "Traceback" not in run.stderr


def test_unreadable_start_is_still_an_error(tmp_path: Path, capsys) -> None:
    source = tmp_path / "input"
    write_bag(source, "mcap")
    (storage,) = bag_files(source)
    storage.write_bytes(storage.read_bytes()[:30])  # not even the first message
    assert cli.main(["replay", str(source), "--out", str(tmp_path / "o")]) == 2
    assert "cannot read bag" in capsys.readouterr().err
    assert np.all([not (tmp_path / "o").exists()])
