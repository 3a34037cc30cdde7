"""The node and replay see the same pixels: one bag's messages through both input paths.

Replay decodes the rosbags messages it reads from a bag. The node decodes the
rclpy messages DDS hands it, which rclpy deserializes from the same CDR bytes.
Both must give identical arrays, and the same error for every bad message, for
every encoding either path has ever accepted (mono16, 8UC1 and 8UC3 included)
and for the cases where they used to disagree (oversized data, compressedDepth).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from superglue_ros.io import images, rosbag
from superglue_ros.io.stamps import header_fields
from superglue_ros.tools import cli

from conftest import PROJECT_ROOT, require_module

ORB_MNN = PROJECT_ROOT / "config" / "eval" / "orb_mnn.yaml"
RNG = np.random.default_rng(3)
HEIGHT, WIDTH = 48, 64
GRAY = cv2.GaussianBlur(RNG.integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8), (3, 3), 0)
RGB = cv2.GaussianBlur(RNG.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8), (3, 3), 0)


def raw_fields(pixels: np.ndarray, encoding: str, pad: int = 0, big: bool = False) -> dict:
    """Image fields (no header) of pixels [H, W, C], pad bytes after every row."""
    rows = pixels.reshape(HEIGHT, -1)
    if pixels.dtype.itemsize > 1:
        rows = rows.astype(pixels.dtype.newbyteorder(">" if big else "<"))
    rows = rows.view(np.uint8).reshape(HEIGHT, -1)
    rows = np.concatenate([rows, np.full((HEIGHT, pad), 0xCD, np.uint8)], axis=1)
    return {
        "height": HEIGHT,
        "width": WIDTH,
        "encoding": encoding,
        "is_bigendian": int(big),
        "step": rows.shape[1],
        "data": rows.reshape(-1),
    }


def raw_cases() -> list[dict]:
    mono16 = (GRAY.astype(np.uint16) << 8 | 0x55)[:, :, None]
    oversized = raw_fields(RGB, "rgb8")
    oversized["data"] = np.concatenate([oversized["data"], np.zeros(7, np.uint8)])
    truncated = raw_fields(GRAY[:, :, None], "mono8")
    truncated["data"] = truncated["data"][:-WIDTH]
    return [
        raw_fields(GRAY[:, :, None], "mono8", pad=3),
        raw_fields(mono16, "mono16", pad=2, big=True),
        raw_fields(mono16, "mono16"),
        raw_fields(GRAY[:, :, None], "8UC1"),
        raw_fields(RGB[:, :, ::-1], "8UC3", pad=1),
        raw_fields(RGB[:, :, ::-1], "bgr8"),
        raw_fields(np.dstack([RGB, GRAY]), "rgba8", pad=4),
        oversized,
        truncated,
        raw_fields(RGB, "yuv422"),
    ]


def compressed_cases() -> list[dict]:
    def encoded(ext: str, image: np.ndarray) -> np.ndarray:
        return cv2.imencode(ext, image)[1].reshape(-1)

    return [
        {"format": "png", "data": encoded(".png", GRAY)},
        {"format": "rgb8; jpeg compressed bgr8", "data": encoded(".jpg", RGB[:, :, ::-1])},
        {"format": "png", "data": encoded(".png", GRAY.astype(np.uint16) << 8)},
        {"format": "16UC1; compressedDepth png", "data": encoded(".png", GRAY)},
        {"format": "jpeg", "data": np.frombuffer(b"\xff\xd8 not a jpeg", np.uint8)},
    ]


def write_bag(path: Path, msgtype: str, cases: list[dict]) -> None:
    typestore = rosbag.make_typestore()
    writer = rosbag.open_writer(path)
    connection = writer.add_connection("/cam/image", msgtype, typestore=typestore)
    for index, fields in enumerate(cases):
        stamp = (index + 1) * 10**8
        message = rosbag.build_message(
            typestore, msgtype, {"header": header_fields(stamp, "cam"), **fields}
        )
        writer.write(connection, stamp, typestore.serialize_cdr(message, msgtype))
    writer.close()


def decoded(msg: Any) -> np.ndarray | str:
    try:
        return images.decode_image(msg)
    except images.BadImageError as error:
        return str(error)


def both_paths(path: Path, rclpy_class: type) -> list[tuple[Any, Any]]:
    """(replay's result, the node's result) per message of the bag."""
    from rclpy.serialization import deserialize_message

    out = []
    with AnyReader([path]) as reader:
        for connection, _, raw in reader.messages():
            as_replay_reads_it = reader.deserialize(raw, connection.msgtype)
            as_the_node_gets_it = deserialize_message(bytes(raw), rclpy_class)
            out.append((decoded(as_replay_reads_it), decoded(as_the_node_gets_it)))
    return out


@pytest.mark.parametrize("compressed", [False, True], ids=["Image", "CompressedImage"])
def test_node_and_replay_decode_every_message_alike(tmp_path: Path, compressed: bool) -> None:
    require_module("rclpy", "the node's messages come from rclpy")
    from sensor_msgs.msg import CompressedImage, Image

    msgtype = rosbag.COMPRESSED_IMAGE if compressed else rosbag.IMAGE
    cases = compressed_cases() if compressed else raw_cases()
    write_bag(tmp_path / "bag", msgtype, cases)
    results = both_paths(tmp_path / "bag", CompressedImage if compressed else Image)
    assert len(results) == len(cases)
    for index, (replay_result, node_result) in enumerate(results):
        assert type(replay_result) is type(node_result), index
        if isinstance(replay_result, str):
            assert replay_result == node_result, index
        else:
            assert replay_result.dtype == node_result.dtype == np.uint8
            np.testing.assert_array_equal(replay_result, node_result, err_msg=str(index))
    kinds = [r.split(":")[0] if isinstance(r, str) else r.shape for r, _ in results]
    if compressed:
        assert kinds == [
            (HEIGHT, WIDTH),
            (HEIGHT, WIDTH, 3),
            (HEIGHT, WIDTH),
            "unsupported_encoding",
            "corrupt_compressed",
        ]
    else:
        gray, colour = (HEIGHT, WIDTH), (HEIGHT, WIDTH, 3)
        assert kinds == [gray] * 4 + [colour] * 3 + [
            "oversized_data",
            "truncated_data",
            "unsupported_encoding",
        ]
        for result in results[:4]:
            np.testing.assert_array_equal(result[0], GRAY)
        for result in results[4:7]:
            np.testing.assert_array_equal(result[0], RGB)


def test_replay_skips_exactly_what_the_node_would(tmp_path: Path) -> None:
    """replay's own loop over the bag: it skips the frames the node rejects, for the same reason."""
    cases = raw_cases()
    write_bag(tmp_path / "bag", rosbag.IMAGE, cases)
    out = tmp_path / "out"
    argv = ["replay", str(tmp_path / "bag"), "--out", str(out), "--params", str(ORB_MNN)]
    assert cli.main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    rejected = {
        index: result
        for index, result in enumerate(decoded(SimpleNamespace(**case)) for case in cases)
        if isinstance(result, str)
    }
    assert sorted(rejected) == [7, 8, 9]
    assert {s["index"]: s["reason"] for s in report["skipped_frames"]} == rejected
    assert report["configs"][0]["frames"] == len(cases) - len(rejected)
