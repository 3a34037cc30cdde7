"""A rosbags Writer that records what rosbag2 itself records about each topic.

rosbags writes valid rosbag2 files but leaves out three things ``ros2 bag``
writes and uses: the distribution (it states ``ros_distro: rosbags``), the
offered QoS of each topic unless asked (``ros2 bag play`` offers what was
recorded, so a transient-local topic played back from a bag without it comes
out volatile), and, in mcap files, the ``topic_type_hash`` entry of a channel's
metadata, where rosbag2's mcap plugin (Iron and newer) keeps each topic's
RIHS01 type hash. This writer adds them: the QoS passed to add_connection go
to metadata.yaml and the mcap channel, the type hash is the connection's
RIHS01 digest (the one rosidl computes for the built interfaces), and
ros_distro is $ROS_DISTRO or DEFAULT_ROS_DISTRO when no ROS 2 is sourced.
"""

from __future__ import annotations

import os
from io import BytesIO
from pathlib import Path
from typing import Any

import yaml
from rosbags.interfaces import (
    Connection,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.storage_mcap import Channel, McapWriter, write_channel, write_string
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Writer

# The ROS 2 wheels this project is built and tested with (no distribution sourced):
# their interfaces give the RIHS01 hashes the bags carry.
DEFAULT_ROS_DISTRO = "kilted"
UNSET_TIME = QosTime(sec=0, nsec=0)  # rmw's "default" duration (infinite)


def ros_distro() -> str:
    """$ROS_DISTRO of the sourced ROS 2, else DEFAULT_ROS_DISTRO."""
    return os.environ.get("ROS_DISTRO") or DEFAULT_ROS_DISTRO


def offered_qos(reliable: bool = True, transient_local: bool = False, depth: int = 10) -> Qos:
    """A keep-last QoS profile as a publisher offers it (deadline, lifespan unset)."""
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=depth,
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        deadline=UNSET_TIME,
        lifespan=UNSET_TIME,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=UNSET_TIME,
        avoid_ros_namespace_conventions=False,
    )


def _with_distro(serialized_metadata: str) -> str:
    """rosbags' serialized bag information with the real ros_distro."""
    information = yaml.safe_load(serialized_metadata)
    information["ros_distro"] = ros_distro()
    return yaml.safe_dump(information, default_flow_style=False).strip()


class _McapStorage(McapWriter):
    def add_connection(self, connection: Connection, offered_qos_profiles: str) -> None:
        """The channel, with rosbag2's two metadata entries (rosbags writes only the first)."""
        metadata = BytesIO()
        for key, value in (
            ("offered_qos_profiles", offered_qos_profiles),
            ("topic_type_hash", connection.digest),
        ):
            write_string(metadata, key)
            write_string(metadata, value)
        encoding = getattr(connection.ext, "serialization_format", "cdr")
        channel = Channel(
            connection.id, connection.msgtype, connection.topic, encoding, metadata.getvalue()
        )
        self.channels.append(channel)
        self.channel_stats[connection.id] = 0
        write_channel(self.chunk.bio, channel, self.schemas)

    def close(self, version: int, metadata: str) -> None:
        super().close(version, _with_distro(metadata))


class _Sqlite3Storage(Sqlite3Writer):
    def close(self, version: int, metadata: str) -> None:
        super().close(version, _with_distro(metadata))


class Rosbag2Writer(Writer):
    """rosbags.rosbag2.Writer plus rosbag2's ros_distro and mcap topic_type_hash.

    Pass each topic's QoS as ``offered_qos_profiles=[offered_qos(...)]`` to
    add_connection.
    """

    STORAGE_PLUGINS: Any = {
        StoragePlugin.SQLITE3: _Sqlite3Storage,
        StoragePlugin.MCAP: _McapStorage,
    }

    def close(self) -> None:
        super().close()
        information_file = Path(self.metapath)
        document = yaml.safe_load(information_file.read_text())
        document["rosbag2_bagfile_information"]["ros_distro"] = ros_distro()
        information_file.write_text(yaml.safe_dump(document, default_flow_style=False))
