"""Replay's output bags as rosbag2 writes them, read back with ``mcap`` + ``mcap-ros2-support``
(an independent reader: the project writes with rosbags)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from superglue_ros.tools import cli

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ORB_MNN = PROJECT_ROOT / "config" / "eval" / "orb_mnn.yaml"
TRANSIENT_LOCAL, VOLATILE, RELIABLE, KEEP_LAST = 1, 2, 1, 1  # rmw's enum values


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from superglue_ros.io import images, rosbag

    from synthetic import sequence, translation

    root = tmp_path_factory.mktemp("output_bags")
    source = root / "input"
    typestore = rosbag.make_typestore()
    writer = rosbag.open_writer(source)
    connection = writer.add_connection("/cam/image_raw", rosbag.IMAGE, typestore=typestore)
    for i, image in enumerate(sequence([translation(3.0 * i, 0) for i in range(6)]).images):
        stamp = 10**9 + i * 10**8
        fields = images.image_fields(image, stamp, "cam")
        message = rosbag.build_message(typestore, rosbag.IMAGE, fields)
        writer.write(connection, stamp, typestore.serialize_cdr(message, rosbag.IMAGE))
    writer.close()
    out = root / "out"
    argv = ["replay", str(source), "--out", str(out), "--params", str(ORB_MNN)]
    assert cli.main(argv) == 0
    return out / "orb_mnn" / "correspondences"


def built_type_hash() -> str | None:
    """RIHS01 hash of Correspondences as rosidl computed it for the built package."""
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        path = Path(prefix) / "share" / "superglue_ros_msgs" / "msg" / "Correspondences.json"
        if prefix and path.is_file():
            hashes = json.loads(path.read_text())["type_hashes"]
            return next(
                h["hash_string"] for h in hashes if h["type_name"].endswith("/Correspondences")
            )
    return None


def test_metadata_yaml_records_qos_distro_and_hash(replayed: Path) -> None:
    information = yaml.safe_load((replayed / "metadata.yaml").read_text())
    information = information["rosbag2_bagfile_information"]
    assert information["ros_distro"] == (os.environ.get("ROS_DISTRO") or "kilted")
    topics = {
        t["topic_metadata"]["name"]: t["topic_metadata"]
        for t in information["topics_with_message_count"]
    }
    assert set(topics) == {"/correspondences", "/keyframes"}
    for name, durability in (("/keyframes", TRANSIENT_LOCAL), ("/correspondences", VOLATILE)):
        (profile,) = yaml.safe_load(topics[name]["offered_qos_profiles"])
        assert profile["durability"] == durability, name
        assert (profile["reliability"], profile["history"], profile["depth"]) == (
            RELIABLE,
            KEEP_LAST,
            10,
        )
    expected_hash = built_type_hash()
    if expected_hash is not None:
        assert topics["/keyframes"]["type_description_hash"] == expected_hash


def test_mcap_channels_carry_qos_and_type_hash(replayed: Path) -> None:
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    information = yaml.safe_load((replayed / "metadata.yaml").read_text())
    topics = {
        t["topic_metadata"]["name"]: t["topic_metadata"]
        for t in information["rosbag2_bagfile_information"]["topics_with_message_count"]
    }
    (path,) = replayed.glob("*.mcap")
    with path.open("rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == "ros2"
        channels = {c.topic: c for c in reader.get_summary().channels.values()}
        for name, channel in channels.items():
            assert channel.message_encoding == "cdr"
            assert channel.metadata["offered_qos_profiles"] == topics[name]["offered_qos_profiles"]
            assert channel.metadata["topic_type_hash"] == topics[name]["type_description_hash"]
            assert channel.metadata["topic_type_hash"].startswith("RIHS01_")
        (record,) = [m for m in reader.iter_metadata() if m.name == "rosbag2"]
        stored = yaml.safe_load(record.metadata["serialized_metadata"])
        assert stored["ros_distro"] == (os.environ.get("ROS_DISTRO") or "kilted")
        # Decoded with the schemas embedded in the file only.
        decoded = [(c.topic, m) for _, c, _, m in reader.iter_decoded_messages()]
    frames = [m for topic, m in decoded if topic == "/correspondences"]
    keyframes = [m for topic, m in decoded if topic == "/keyframes"]
    assert [m.frame_id for m in frames] == list(range(6))
    assert [m.frame_id for m in keyframes] == [m.frame_id for m in frames if m.is_keyframe]
    assert keyframes and keyframes[0].features.descriptor_dim == 32
    count = len(frames[1].features.scores)
    assert len(frames[1].features.descriptors) == 32 * count
    assert np.asarray(frames[1].features.descriptors).max() > 1.0  # ORB bytes, not unit vectors


def test_ros_distro_comes_from_the_sourced_ros(monkeypatch: pytest.MonkeyPatch) -> None:
    from superglue_ros.io.rosbag2_writer import DEFAULT_ROS_DISTRO, ros_distro

    monkeypatch.setenv("ROS_DISTRO", "jazzy")
    assert ros_distro() == "jazzy"
    monkeypatch.delenv("ROS_DISTRO")
    assert ros_distro() == DEFAULT_ROS_DISTRO == "kilted"
