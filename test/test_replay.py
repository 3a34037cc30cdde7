"""`superglue-ros replay`: a bag of the Freiburg sequence through ORB + MNN, every frame.

The expensive replays run once per module; tests read their outputs.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from superglue_ros.io import images, rosbag
from superglue_ros.io.stamps import header_fields, stamp_to_ns
from superglue_ros.pipeline.pipeline import Pipeline
from superglue_ros.tools import bag, cli
from superglue_ros.tools.replay import Progress

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ORB_MNN = PROJECT_ROOT / "config" / "eval" / "orb_mnn.yaml"
REPORT_CONFIG_KEYS = {
    "name", "description", "params", "output_bag", "frames", "keyframes", "keyframe_reasons",
    "keypoints_per_frame", "matches_per_frame", "inlier_ratio", "track_length", "latency_ms",
    "fps", "per_frame_file",
}  # fmt: skip


def run_cli(*argv: str) -> int:
    """superglue-ros with its real dispatch and error handling (exit status returned)."""
    return cli.main(list(argv))


def read_bag(path: Path) -> dict[str, list[tuple[int, bytes, object]]]:
    """topic -> [(bag timestamp, raw payload, message)] using the bag's embedded definitions."""
    topics: dict[str, list[tuple[int, bytes, object]]] = {}
    with AnyReader([path]) as reader:
        for connection, timestamp, raw in reader.messages():
            message = reader.deserialize(raw, connection.msgtype)
            topics.setdefault(connection.topic, []).append((timestamp, bytes(raw), message))
    return topics


@pytest.fixture(scope="module")
def input_bag(freiburg_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("input") / "freiburg"
    bag.write_from_images(freiburg_dir, path, camera_yaml=freiburg_dir / "camera.yaml")
    return path


@pytest.fixture(scope="module")
def small_orb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("params") / "orb_small.yaml"
    path.write_text("frontend: orb\nmatcher: mnn\nclassical:\n  max_keypoints: 300\n")
    return path


def replay(input_bag: Path, out: Path, *params: Path) -> int:
    args = ["replay", str(input_bag), "--out", str(out)]
    if params:
        args += ["--params", *map(str, params)]
    return run_cli(*args)


@pytest.fixture(scope="module")
def replayed(input_bag: Path, small_orb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("replay") / "out"
    assert replay(input_bag, out, ORB_MNN, small_orb) == 0
    return out


def test_one_consistent_message_per_frame(input_bag: Path, replayed: Path) -> None:
    inputs = read_bag(input_bag)["/camera/image_raw"]
    input_stamps = [stamp_to_ns(m.header.stamp) for _, _, m in inputs]
    for name in ("orb_mnn", "orb_small"):
        topics = read_bag(replayed / name / "correspondences")
        messages = [m for _, _, m in topics["/correspondences"]]
        assert len(messages) == len(inputs) == 17
        assert [t for t, _, _ in topics["/correspondences"]] == [t for t, _, _ in inputs]
        assert [stamp_to_ns(m.header.stamp) for m in messages] == input_stamps
        frame_ids = [m.frame_id for m in messages]
        assert frame_ids == sorted(set(frame_ids))
        keyframe_ids = [m.frame_id for _, _, m in topics["/keyframes"]]
        assert keyframe_ids == [m.frame_id for m in messages if m.is_keyframe]
        assert messages[0].is_keyframe and len(keyframe_ids) >= 2

        points: dict[int, int] = {}  # keypoint count of every keyframe seen so far
        for message in messages:
            features = message.features
            count = len(features.scores)
            assert message.header.frame_id == "camera" and features.frame_id == message.frame_id
            assert (features.image_width, features.image_height) == (640, 480)
            assert len(features.keypoints) == 2 * count == 2 * len(features.track_ids)
            assert len(features.descriptors) == count * features.descriptor_dim
            assert features.descriptor_dim == 32  # ORB bytes, sent as floats
            for match in message.matches:
                assert match.keyframe_id in points and match.keyframe_id < message.frame_id
                assert len(match.frame_indices) == len(match.keyframe_indices) == len(match.scores)
                assert np.all((match.frame_indices >= 0) & (match.frame_indices < count))
                assert np.all(match.keyframe_indices < points[match.keyframe_id])
                assert np.all(match.keyframe_indices >= 0)
            if message.is_keyframe:
                points[message.frame_id] = count


def test_replay_is_deterministic(input_bag: Path, replayed: Path, tmp_path: Path) -> None:
    assert replay(input_bag, tmp_path / "again", ORB_MNN) == 0
    first = read_bag(replayed / "orb_mnn" / "correspondences")
    second = read_bag(tmp_path / "again" / "orb_mnn" / "correspondences")
    assert first.keys() == second.keys()
    for topic in first:
        assert [raw for _, raw, _ in first[topic]] == [raw for _, raw, _ in second[topic]]


def test_report_files_and_fields(replayed: Path) -> None:
    report = json.loads((replayed / "report.json").read_text())
    assert report["interrupted"] is False and report["frames_read"] == 17
    assert report["image_topic"] == "/camera/image_raw"
    assert report["camera_info_topic"] == "/camera/camera_info"
    assert report["intrinsics"][0][0] == pytest.approx(535.4)
    assert [c["name"] for c in report["configs"]] == ["orb_mnn", "orb_small"]
    for config in report["configs"]:
        assert config.keys() >= REPORT_CONFIG_KEYS
        assert config["frames"] == 17
        per_frame = (replayed / config["per_frame_file"]).read_text().splitlines()
        assert [json.loads(line)["frame_id"] for line in per_frame] == list(range(17))
        assert config["output_bag"] == f"{config['name']}/correspondences"
        assert config["inlier_ratio"]["method"] == "essential"
        assert 0.0 < config["inlier_ratio"]["median"] <= 1.0
        assert config["matches_per_frame"]["newest_keyframe"]["count"] == 16
        assert set(config["latency_ms"]) == {"frontend", "matcher", "policy", "total"}
        assert {"median", "p90", "max"} <= config["latency_ms"]["total"].keys()
        assert config["fps"] > 0 and config["track_length"]["max"] >= 2
        assert sum(config["keyframe_reasons"].values()) == config["keyframes"]
        assert config["keyframe_reasons"]["first frame"] == 1
    small = report["configs"][1]
    assert small["params"]["classical.max_keypoints"] == 300
    assert small["keypoints_per_frame"]["max"] <= 300
    markdown = (replayed / "report.md").read_text()
    assert "| metric | orb_mnn | orb_small |" in markdown and "interrupted" not in markdown
    for plot in (
        "matches_per_frame",
        "keyframe_timeline",
        "inlier_ratio",
        "track_length",
        "latency",
    ):
        path = replayed / "plots" / f"{plot}.png"
        assert path.read_bytes().startswith(b"\x89PNG") and f"plots/{plot}.png" in markdown


def test_interrupted_replay_leaves_a_readable_bag(
    input_bag: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    process = Pipeline.process
    calls = []

    def interrupt_at_fifth(self: Pipeline, image: np.ndarray, stamp_ns: int, *companions):
        calls.append(stamp_ns)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return process(self, image, stamp_ns, *companions)

    monkeypatch.setattr(Pipeline, "process", interrupt_at_fifth)
    out = tmp_path / "out"
    assert replay(input_bag, out, ORB_MNN) == 130
    topics = read_bag(out / "orb_mnn" / "correspondences")
    assert len(topics["/correspondences"]) == 4
    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] is True and report["configs"][0]["frames"] == 4
    assert "interrupted" in (out / "report.md").read_text()


def test_wrong_topic_lists_image_topics(
    input_bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["replay", str(input_bag), "--out", str(tmp_path / "o"), "--image-topic", "/nope"]
    assert run_cli(*argv) == 2
    error = capsys.readouterr().err
    assert "/nope" in error and "/camera/image_raw (sensor_msgs/msg/Image, 17 msgs)" in error
    assert not (tmp_path / "o").exists()


def test_missing_corrupt_and_empty_bags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corrupt = tmp_path / "corrupt.mcap"
    corrupt.write_bytes(b"\x89MCAP0\r\n" + b"garbage" * 100)
    no_metadata = tmp_path / "no_metadata"
    no_metadata.mkdir()
    empty = tmp_path / "empty"
    typestore = rosbag.make_typestore()
    writer = rosbag.open_writer(empty)
    writer.add_connection("/camera/image_raw", rosbag.IMAGE, typestore=typestore)
    writer.close()
    cases = {
        tmp_path / "missing": "does not exist",
        corrupt: "cannot read bag",
        no_metadata: "cannot read bag",
        empty: "no messages on /camera/image_raw",
    }
    for path, message in cases.items():
        assert run_cli("replay", str(path), "--out", str(tmp_path / "o")) == 2
        assert message in capsys.readouterr().err, path


def test_compressed_images_in_sqlite3(tmp_path: Path) -> None:
    """CompressedImage input, a sqlite3 bag, no CameraInfo: fundamental-matrix inlier ratio."""
    typestore = rosbag.make_typestore()
    source = tmp_path / "compressed"
    writer = rosbag.open_writer(source, "sqlite3")
    connection = writer.add_connection(
        "/cam/image/compressed", rosbag.COMPRESSED_IMAGE, typestore=typestore
    )
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (240, 320), dtype=np.uint8), (3, 3), 0)
    stamps = [1_000_000_000 + i * 50_000_000 for i in range(4)]
    for i, stamp in enumerate(stamps):
        shifted = np.roll(texture, 2 * i, axis=1)
        fields = {
            "header": header_fields(stamp, "cam"),
            "format": "png",
            "data": np.frombuffer(cv2.imencode(".png", shifted)[1].tobytes(), np.uint8),
        }
        message = rosbag.build_message(typestore, rosbag.COMPRESSED_IMAGE, fields)
        writer.write(connection, stamp, typestore.serialize_cdr(message, rosbag.COMPRESSED_IMAGE))
    writer.close()

    out = tmp_path / "out"
    argv = ["replay", str(source), "--out", str(out), "--no-descriptors", "--params", str(ORB_MNN)]
    assert run_cli(*argv) == 0
    messages = [m for _, _, m in read_bag(out / "orb_mnn" / "correspondences")["/correspondences"]]
    assert [stamp_to_ns(m.header.stamp) for m in messages] == stamps
    assert all(m.features.descriptor_dim == 0 for m in messages)
    report = json.loads((out / "report.json").read_text())
    assert report["intrinsics"] is None
    assert report["configs"][0]["inlier_ratio"]["method"] == "fundamental"


def test_ros1_bag_with_bgr8_images(tmp_path: Path) -> None:
    from rosbags.rosbag1 import Writer
    from rosbags.typesys import Stores, get_typestore

    typestore = get_typestore(Stores.ROS1_NOETIC)
    source = tmp_path / "input.bag"
    rng = np.random.default_rng(1)
    texture = cv2.GaussianBlur(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), (3, 3), 0)
    with Writer(source) as writer:
        connection = writer.add_connection("/cam/image", rosbag.IMAGE, typestore=typestore)
        for i in range(3):
            fields = images.image_fields(np.roll(texture, i, axis=1), (10 + i) * 10**9, "cam")
            fields |= {"encoding": "bgr8", "header": {**fields["header"], "seq": i}}
            message = rosbag.build_message(typestore, rosbag.IMAGE, fields)
            writer.write(
                connection, (10 + i) * 10**9, typestore.serialize_ros1(message, rosbag.IMAGE)
            )
    out = tmp_path / "out"
    assert run_cli("replay", str(source), "--out", str(out), "--params", str(ORB_MNN)) == 0
    messages = [m for _, _, m in read_bag(out / "orb_mnn" / "correspondences")["/correspondences"]]
    assert [m.header.stamp.sec for m in messages] == [10, 11, 12]
    assert len(messages[2].matches[0].frame_indices) > 0


class FakeTerminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_progress_bar_only_on_a_terminal(tty: bool) -> None:
    stream = FakeTerminal(tty)
    progress = Progress(4, stream)
    progress.update(2)
    progress.close()
    assert ("2/4 frames" in stream.getvalue()) is tty
    assert (stream.getvalue() == "") is not tty


def test_output_bag_embeds_definitions_matching_the_built_interfaces(replayed: Path) -> None:
    """The type hash written to the bag is the one rosidl computed for the built package."""
    path = replayed / "orb_mnn" / "correspondences"
    with AnyReader([path]) as reader:
        (connection, *_) = reader.connections
        assert connection.msgdef.data.startswith("std_msgs/Header header")
        assert "MSG: superglue_ros_msgs/KeyframeMatches" in connection.msgdef.data
    built = [
        Path(prefix) / "share" / "superglue_ros_msgs" / "msg" / "Correspondences.json"
        for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)
        if prefix
    ]
    built = [p for p in built if p.is_file()]
    if not built:
        pytest.skip(
            "superglue_ros_msgs is not built (no Correspondences.json on AMENT_PREFIX_PATH)"
        )
    hashes = json.loads(built[0].read_text())["type_hashes"]
    expected = next(h["hash_string"] for h in hashes if h["type_name"].endswith("/Correspondences"))
    assert connection.digest == expected
