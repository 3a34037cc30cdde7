"""Bags of generated stereo pairs and RGB-D frames (stereo_scene.py), written with rosbags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from stereo_scene import PlaneScene

from superglue_ros.io import images, rosbag
from superglue_ros.io.stamps import header_fields


def camera_info_fields(scene: PlaneScene, stamp: int, tx: float = 0.0, r=None) -> dict:
    rotation = np.eye(3) if r is None else r
    p = [scene.fx, 0, scene.cx, tx, 0, scene.fy, scene.cy, 0, 0, 0, 1, 0]
    return {
        "header": header_fields(stamp, "cam"),
        "height": scene.height,
        "width": scene.width,
        "distortion_model": "plumb_bob",
        "d": np.zeros(5),
        "k": np.array([scene.fx, 0, scene.cx, 0, scene.fy, scene.cy, 0, 0, 1], np.float64),
        "r": np.asarray(rotation, np.float64).reshape(-1),
        "p": np.array(p, np.float64),
        "binning_x": 0,
        "binning_y": 0,
        "roi": {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False},
    }


class BagBuilder:
    """Writes messages to a new mcap bag in the order they are given (the bag's order)."""

    def __init__(self, path: Path) -> None:
        self.typestore = rosbag.make_typestore()
        self.writer = rosbag.open_writer(path, "mcap")
        self.connections: dict[str, object] = {}

    def write(self, topic: str, msgtype: str, fields: dict, bag_stamp: int) -> None:
        if topic not in self.connections:
            self.connections[topic] = self.writer.add_connection(
                topic, msgtype, typestore=self.typestore
            )
        message = rosbag.build_message(self.typestore, msgtype, fields)
        data = self.typestore.serialize_cdr(message, msgtype)
        self.writer.write(self.connections[topic], bag_stamp, data)

    def image(self, topic: str, array: np.ndarray, stamp: int, bag_stamp: int) -> None:
        fields = {"header": header_fields(stamp, "cam"), **images.array_to_image_fields(array)}
        self.write(topic, rosbag.IMAGE, fields, bag_stamp)

    def close(self) -> None:
        self.writer.close()
