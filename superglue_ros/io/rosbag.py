"""rosbag2 reading and writing without ROS: typestore, messages, image streams.

Everything here uses ``rosbags`` (pure Python); images are decoded by
``superglue_ros.io.images``, the node's decoder. Our own message types are
registered from the ``.msg`` files of ``superglue_ros_msgs`` so that written bags
embed their definitions and ``ros2 bag`` on a ROS install can read them.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.interfaces import Nodetype
from rosbags.rosbag2 import ReaderError, StoragePlugin
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from superglue_ros.io.damaged_bag import (
    Damage,
    DamagedBag,
    DamagedBagError,
    bag_files,
)
from superglue_ros.io.rosbag2_writer import Rosbag2Writer
from superglue_ros.io.topics import camera_info_topic_for

MSGS_PACKAGE = "superglue_ros_msgs"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
CORRESPONDENCES = f"{MSGS_PACKAGE}/msg/Correspondences"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
BAG_VERSION = 8  # rosbag2 metadata version understood by Humble and newer
# With several image topics, the one a mono replay takes by default: the left or
# colour camera of a stereo / RGB-D bag (the names usual drivers and
# ``bag from-dataset`` give them).
PRIMARY_IMAGE_SUFFIXES = (
    "/left/image_rect",
    "/left/image_rect_color",
    "/left/image_raw",
    "/color/image_raw",
    "/rgb/image_raw",
)


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


def write_message(
    writer: Rosbag2Writer,
    typestore: Typestore,
    connection: Any,
    stamp: int,
    msgtype: str,
    fields: Mapping[str, Any],
) -> None:
    """Build msgtype from fields (build_message) and write it as CDR at stamp."""
    message = build_message(typestore, msgtype, fields)
    writer.write(connection, stamp, typestore.serialize_cdr(message, msgtype))


def camera_matrix(info: Any) -> np.ndarray | None:
    """[3, 3] float64 K of a CameraInfo message, None when it is unset (all zeros)."""
    k = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
    return k if k[0, 0] > 0 and k[1, 1] > 0 else None


def open_writer(path: Path, storage: str = "mcap") -> Rosbag2Writer:
    """An open rosbag2 writer at path (a new directory); storage is mcap or sqlite3.

    Give add_connection each topic's QoS (``offered_qos_profiles=[offered_qos(...)]``)
    so that ``ros2 bag play`` offers what the publisher did.
    """
    plugins = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
    if storage not in plugins:
        raise ValueError(f"unknown storage {storage!r}; use mcap or sqlite3")
    if path.exists():
        raise ValueError(f"{path} exists already; choose a new output path")
    writer = Rosbag2Writer(path, version=BAG_VERSION, storage_plugin=plugins[storage])
    writer.open()
    return writer


@contextmanager
def new_bag(path: Path, storage: str = "mcap") -> Iterator[Rosbag2Writer]:
    """open_writer(path, storage), closed when the block ends; when it raises, the writer
    is aborted and the new folder removed, so a failed import leaves no partial bag."""
    writer = open_writer(path, storage)
    try:
        yield writer
    except BaseException:
        writer.abort()
        if path.is_dir():
            for child in path.iterdir():
                child.unlink()
            path.rmdir()
        raise
    writer.close()


@dataclass
class ImageStream:
    """Where the images of a bag are: the image connection and its camera info."""

    topic: str
    msgtype: str
    count: int
    camera_info_topic: str | None


def default_image_topic(image_topics: Mapping[str, str]) -> str | None:
    """The only image topic, else the only left / colour one (PRIMARY_IMAGE_SUFFIXES)."""
    if len(image_topics) == 1:
        return next(iter(image_topics))
    primary = [
        t for t in image_topics if t.removesuffix("/compressed").endswith(PRIMARY_IMAGE_SUFFIXES)
    ]
    return primary[0] if len(primary) == 1 else None


def open_damaged(path: Path, error: Exception) -> list[DamagedBag]:
    """The readable part of each storage file of a bag rosbags cannot open.

    Raises BagError (naming rosbags' error) when there is nothing to read.
    """
    files = [f for f in bag_files(path) if f.suffix in (".mcap", ".db3")]
    if not files:
        raise BagError(f"cannot read bag {path}: {error}") from error
    try:
        damaged = [DamagedBag(f) for f in files]
    except (DamagedBagError, OSError) as second:
        raise BagError(f"cannot read bag {path}: {error}; {second}") from error
    if not any(d.topics for d in damaged):
        raise BagError(f"cannot read bag {path}: {error}; no intact message in it") from error
    return damaged


class BagSource:
    """A bag opened for replay or play: its image topic, camera info and image messages.

    Reads rosbag2 (directory, .mcap or .db3) and ROS 1 (.bag) through AnyReader.
    A damaged rosbag2 file (an mcap cut short, a sqlite3 with a bad tail) gives
    its intact messages instead (see damaged_bag); ``damage`` then says where it
    ended, once frames() has come to that point. Use as a context manager.
    """

    def __init__(
        self, path: Path, image_topic: str | None = None, camera_info_topic: str | None = None
    ) -> None:
        if not path.exists():
            raise BagError(f"bag {path} does not exist")
        self.path = path
        self.damage: Damage | None = None
        self._damaged: list[DamagedBag] = []
        self._typestore = get_typestore(Stores.LATEST)
        try:
            self.reader = AnyReader([path], default_typestore=self._typestore)
            self.reader.open()
        except (AnyReaderError, ReaderError, OSError, KeyError, ValueError) as error:
            self._damaged = open_damaged(path, error)
        try:
            self.stream = self._select(path, image_topic, camera_info_topic)
        except BaseException:
            self.close()
            raise

    def _topics(self) -> tuple[dict[str, int], dict[str, str]]:
        """Message count and type per topic."""
        counts: dict[str, int] = {}
        msgtypes: dict[str, str] = {}
        if self._damaged:
            for damaged in self._damaged:
                for topic, (msgtype, count) in damaged.topics.items():
                    counts[topic] = counts.get(topic, 0) + count
                    msgtypes[topic] = msgtype
            return counts, msgtypes
        for connection in self.reader.connections:
            counts[connection.topic] = counts.get(connection.topic, 0) + connection.msgcount
            msgtypes[connection.topic] = connection.msgtype
        return counts, msgtypes

    def _select(
        self, path: Path, image_topic: str | None, camera_info_topic: str | None
    ) -> ImageStream:
        counts, msgtypes = self._topics()
        images = {t: m for t, m in msgtypes.items() if m in IMAGE_TYPES}
        listing = ", ".join(f"{t} ({images[t]}, {counts[t]} msgs)" for t in sorted(images))
        listing = listing or "none"
        if image_topic is None:
            image_topic = default_image_topic(images)
            if image_topic is None:
                raise BagError(
                    f"bag {path} has {len(images)} image topics; choose one with "
                    f"--image-topic. Image topics: {listing}"
                )
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

    def messages(self, topics: Sequence[str]) -> Iterator[tuple[int, str, Any]]:
        """(bag timestamp ns, topic, deserialized message) of the topics, in bag order;
        stops where the bag is damaged."""
        wanted = set(topics)
        if self._damaged:
            for damaged in self._damaged:
                for message in damaged.messages(wanted):
                    data = self._typestore.deserialize_cdr(message.data, message.msgtype)
                    yield message.timestamp, message.topic, data
                if damaged.damage is not None:
                    self.damage = damaged.damage
                    return
            return
        connections = [c for c in self.reader.connections if c.topic in wanted]
        try:
            for connection, timestamp, raw in self.reader.messages(connections=connections):
                yield timestamp, connection.topic, self.reader.deserialize(raw, connection.msgtype)
        except (AnyReaderError, ReaderError, sqlite3.DatabaseError) as error:
            # The index was intact, the data behind it is not.
            self.damage = Damage(str(self.path), f"reading {', '.join(topics)} failed: {error}")

    def _messages(self, topic: str) -> Iterator[tuple[int, Any]]:
        """(bag timestamp ns, deserialized message) of topic; stops where the bag is damaged."""
        for timestamp, _, msg in self.messages([topic]):
            yield timestamp, msg

    def topic_types(self) -> dict[str, str]:
        """Message type per topic of the bag."""
        return self._topics()[1]

    def topic_counts(self) -> dict[str, int]:
        """Message count per topic of the bag."""
        return self._topics()[0]

    def first_message(self, topic: str) -> Any | None:
        """The first message of topic, None without one."""
        for _, msg in self._messages(topic):
            return msg
        return None

    def first_camera_info(self) -> Any | None:
        """The first CameraInfo message of the camera info topic, None without one."""
        if self.stream.camera_info_topic is None:
            return None
        for _, info in self._messages(self.stream.camera_info_topic):
            return info
        return None

    def frames(self) -> Iterator[tuple[int, Any]]:
        """(bag timestamp ns, deserialized image message) in bag order, up to any damage."""
        yield from self._messages(self.stream.topic)

    def close(self) -> None:
        if not self._damaged:
            self.reader.close()

    def __enter__(self) -> BagSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_correspondences_bag(path: Path) -> bool:
    """True when the bag holds Correspondences messages and no image (a replay's output)."""
    try:
        with AnyReader([path], default_typestore=make_typestore()) as reader:
            types = {c.msgtype for c in reader.connections}
    except (AnyReaderError, ReaderError, OSError, KeyError, ValueError):
        return False  # not readable as a whole: BagSource tells why (or reads the intact part)
    return CORRESPONDENCES in types and not types & set(IMAGE_TYPES)


def read_correspondences(path: Path, topic: str = "/correspondences") -> Iterator[Any]:
    """The Correspondences messages of topic in bag order (rosbags dataclasses, as the
    replay wrote them); BagError when the bag has no such topic."""
    try:
        reader = AnyReader([path], default_typestore=make_typestore())
        reader.open()
    except (AnyReaderError, ReaderError, OSError, KeyError, ValueError) as error:
        raise BagError(f"cannot read bag {path}: {error}") from error
    try:
        connections = [
            c for c in reader.connections if c.topic == topic and c.msgtype == CORRESPONDENCES
        ]
        if not connections:
            listed = ", ".join(sorted(f"{c.topic} ({c.msgtype})" for c in reader.connections))
            raise BagError(f"bag {path} has no {CORRESPONDENCES} topic {topic}; it has {listed}")
        try:
            for connection, _, raw in reader.messages(connections=connections):
                yield reader.deserialize(raw, connection.msgtype)
        except (AnyReaderError, ReaderError, sqlite3.DatabaseError) as error:
            raise BagError(f"bag {path}: reading {topic} failed: {error}") from error
    finally:
        reader.close()
