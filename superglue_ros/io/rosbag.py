"""rosbag2 reading and writing without ROS: typestore, messages, image streams.

Everything here uses ``rosbags`` (pure Python); images are decoded by
``superglue_ros.io.images``, the node's decoder. Our own message types are
registered from the ``.msg`` files of ``superglue_ros_msgs`` so that written bags
embed their definitions and ``ros2 bag`` on a ROS install can read them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import Connection, Nodetype
from rosbags.rosbag2 import ReaderError, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

MSGS_PACKAGE = "superglue_ros_msgs"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
CORRESPONDENCES = f"{MSGS_PACKAGE}/msg/Correspondences"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
BAG_VERSION = 8  # rosbag2 metadata version understood by Humble and newer


class BagError(ValueError):
    """A bag that cannot be read or does not hold what was asked for."""


def find_msg_dir() -> Path:
    """The folder holding ``superglue_ros_msgs``' ``.msg`` files.

    The source tree's ``msg/msg`` first (a development checkout), then
    ``share/superglue_ros_msgs/msg`` of every prefix in ``AMENT_PREFIX_PATH``.
    """
    candidates = [Path(__file__).resolve().parents[2] / "msg" / "msg"]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / MSGS_PACKAGE / "msg")
    for candidate in candidates:
        if (candidate / "Correspondences.msg").is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"cannot find {MSGS_PACKAGE}'s .msg files; looked in {looked}")


def make_typestore() -> Typestore:
    """ROS 2 standard types plus ``superglue_ros_msgs`` from its ``.msg`` files."""
    typestore = get_typestore(Stores.LATEST)
    types: dict[str, Any] = {}
    for path in sorted(find_msg_dir().glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{MSGS_PACKAGE}/msg/{path.stem}"))
    typestore.register(types)
    return typestore


def build_message(typestore: Typestore, msgtype: str, fields: Mapping[str, Any]) -> Any:
    """A rosbags message dataclass of msgtype from nested plain fields.

    Nested messages are mappings, sequences of messages are lists of mappings,
    everything else (numbers, strings, numpy arrays) is passed through.
    """
    _, field_defs = typestore.fielddefs[msgtype]
    values = {}
    for name, (kind, detail) in field_defs:
        value = fields[name]
        if kind == Nodetype.NAME:
            value = build_message(typestore, detail, value)
        elif kind in (Nodetype.SEQUENCE, Nodetype.ARRAY) and detail[0][0] == Nodetype.NAME:
            value = [build_message(typestore, detail[0][1], item) for item in value]
        values[name] = value
    return typestore.types[msgtype](**values)


def camera_matrix(info: Any) -> np.ndarray | None:
    """[3, 3] float64 K of a CameraInfo message, None when it is unset (all zeros)."""
    k = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
    return k if k[0, 0] > 0 and k[1, 1] > 0 else None


def open_writer(path: Path, storage: str = "mcap") -> Writer:
    """An open rosbag2 writer at path (a new directory); storage is mcap or sqlite3."""
    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise ValueError(f"unknown storage {storage!r}; use mcap or sqlite3")
    if path.exists():
        raise ValueError(f"{path} exists already; choose a new output path")
    writer = Writer(path, version=BAG_VERSION, storage_plugin=plugins[storage])
    writer.open()
    return writer


@dataclass
class ImageStream:
    """Where the images of a bag are: the image connection and its camera info."""

    topic: str
    msgtype: str
    count: int
    camera_info_topic: str | None


def camera_info_topic_for(image_topic: str) -> str:
    """``/cam/image_raw`` -> ``/cam/camera_info`` (``/compressed`` suffixes ignored)."""
    base = image_topic.removesuffix("/compressed")
    namespace = base.rsplit("/", 1)[0]
    return f"{namespace}/camera_info"


class BagSource:
    """A bag opened for replay or play: its image topic, camera info and image messages.

    Reads rosbag2 (directory, .mcap or .db3) and ROS 1 (.bag) through AnyReader.
    Use as a context manager.
    """

    def __init__(
        self, path: Path, image_topic: str | None = None, camera_info_topic: str | None = None
    ) -> None:
        if not path.exists():
            raise BagError(f"bag {path} does not exist")
        try:
            self.reader = AnyReader([path], default_typestore=get_typestore(Stores.LATEST))
            self.reader.open()
        except (AnyReaderError, ReaderError, OSError, KeyError, ValueError) as error:
            raise BagError(f"cannot read bag {path}: {error}") from error
        try:
            self.stream = self._select(path, image_topic, camera_info_topic)
        except BaseException:
            self.reader.close()
            raise

    def _select(
        self, path: Path, image_topic: str | None, camera_info_topic: str | None
    ) -> ImageStream:
        counts: dict[str, int] = {}
        msgtypes: dict[str, str] = {}
        for connection in self.reader.connections:
            counts[connection.topic] = counts.get(connection.topic, 0) + connection.msgcount
            msgtypes[connection.topic] = connection.msgtype
        images = {t: m for t, m in msgtypes.items() if m in IMAGE_TYPES}
        listing = ", ".join(f"{t} ({images[t]}, {counts[t]} msgs)" for t in sorted(images))
        listing = listing or "none"
        if image_topic is None:
            if len(images) != 1:
                raise BagError(
                    f"bag {path} has {len(images)} image topics; choose one with "
                    f"--image-topic. Image topics: {listing}"
                )
            image_topic = next(iter(images))
        if image_topic not in images:
            raise BagError(f"bag {path} has no image topic {image_topic}. Image topics: {listing}")
        if counts[image_topic] == 0:
            raise BagError(f"bag {path} has no messages on {image_topic}")
        wanted_info = camera_info_topic or camera_info_topic_for(image_topic)
        if msgtypes.get(wanted_info) != CAMERA_INFO:
            if camera_info_topic is not None:
                infos = sorted(t for t, m in msgtypes.items() if m == CAMERA_INFO) or ["none"]
                raise BagError(
                    f"bag {path} has no camera info topic {camera_info_topic}. "
                    f"CameraInfo topics: {', '.join(infos)}"
                )
            wanted_info = None
        return ImageStream(image_topic, images[image_topic], counts[image_topic], wanted_info)

    def _connections(self, topic: str) -> list[Connection]:
        return [c for c in self.reader.connections if c.topic == topic]

    def first_camera_info(self) -> Any | None:
        """The first CameraInfo message of the camera info topic, None without one."""
        if self.stream.camera_info_topic is None:
            return None
        for connection, _, raw in self.reader.messages(
            connections=self._connections(self.stream.camera_info_topic)
        ):
            return self.reader.deserialize(raw, connection.msgtype)
        return None

    def frames(self) -> Iterator[tuple[int, Any]]:
        """(bag timestamp ns, deserialized image message) in bag order."""
        connections = self._connections(self.stream.topic)
        try:
            for connection, timestamp, raw in self.reader.messages(connections=connections):
                yield timestamp, self.reader.deserialize(raw, connection.msgtype)
        except (AnyReaderError, ReaderError) as error:
            raise BagError(f"cannot read {self.stream.topic}: {error}") from error

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> BagSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
