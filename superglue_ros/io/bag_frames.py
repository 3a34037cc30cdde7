"""A bag's image messages as pipeline frames, for replay: mono one by one, stereo and
RGB-D paired by the node's own synchroniser.

The bag's image messages of every topic of the ``input`` mode are pushed, in bag
order and with their header stamps, into the Synchroniser the node builds from
the same ``sync.*`` parameters (io/frames.py ``synchroniser_for``), and each
complete set is decoded by the node's ``decode_frame``: a bag replays exactly as
the live node would have paired it. Messages left without a partner are counted
per topic (``unpaired``), those still queued at the end included.

Topics: the frame's image topic is the one BagSource chose (``--image-topic``,
else the bag's left / colour camera); the second one is given, else found beside
it (io/topics.py: ``left`` -> ``right``, the colour camera's aligned depth).
Stereo takes its calibration from the first camera_info of each camera, once (and
with stereo.rectify, the maps that rectify a raw pair).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from superglue_ros.pipeline.rectify import StereoRectification
from superglue_ros.pipeline.stereo import NotRectifiedError
from superglue_ros.pipeline.synchroniser import Synchroniser
from superglue_ros.pipeline.types import Companions, StereoCalibration

from .frames import (
    CAMERA_INFO_TOPICS,
    decode_frame,
    stereo_input_from_camera_infos,
    synchroniser_for,
)
from .rosbag import CAMERA_INFO, IMAGE, IMAGE_TYPES, BagError, BagSource
from .stamps import stamp_to_ns
from .topics import camera_info_topic_for, depth_topics_for, right_topic_for

# Parameters that decide how a bag's messages become frames: every configuration of
# one replay must agree on them, for all run over the same frames.
INPUT_PARAMS = ("input", "sync.policy", "sync.slop_s", "sync.queue_size", "stereo.rectify")


@dataclass
class BagFrame:
    """One frame: its messages in IMAGE_TOPICS[mode] order and the bag time it was whole."""

    bag_stamp: int  # bag timestamp (ns) of the message that completed the set
    msgs: tuple[Any, ...]

    @property
    def header(self) -> Any:
        return self.msgs[0].header


@dataclass
class BagInput:
    """The topics, synchroniser and calibration of one replay's input mode."""

    mode: str
    topics: tuple[str, ...]  # image topics, IMAGE_TOPICS[mode] order
    camera_info_topics: tuple[str | None, ...]
    sync: Synchroniser | None = None
    calibration: StereoCalibration | None = None
    rectification: StereoRectification | None = None  # stereo.rectify of a raw pair
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {topic: index for index, topic in enumerate(self.topics)}

    def frames(self, source: BagSource) -> Iterator[BagFrame]:
        """Every frame of the bag in the order the node would have completed it."""
        if self.sync is None:
            for bag_stamp, _, msg in source.messages(self.topics):
                yield BagFrame(bag_stamp, (msg,))
            return
        for bag_stamp, topic, msg in source.messages(self.topics):
            for synced in self.sync.push(self._index[topic], stamp_to_ns(msg.header.stamp), msg):
                yield BagFrame(bag_stamp, synced.items)
        self.sync.flush()

    def decode(self, frame: BagFrame) -> tuple[np.ndarray, Companions]:
        """The frame's image and companions (BadImageError, a ValueError, when undecodable)."""
        return decode_frame(self.mode, frame.msgs, self.calibration, self.rectification)

    def unpaired(self) -> dict[str, int]:
        """Per image topic, the messages that were in no frame (empty for mono)."""
        if self.sync is None:
            return {}
        return dict(zip(self.topics, self.sync.unpaired, strict=True))


def common_input(configs: Sequence[tuple[str, Mapping[str, Any]]]) -> Mapping[str, Any]:
    """The input parameters all configurations share; BagError naming the first that differs."""
    first_name, first = configs[0]
    for name, params in configs[1:]:
        for key in INPUT_PARAMS:
            if params[key] != first[key]:
                raise BagError(
                    f"configurations {first_name} and {name} differ in {key} "
                    f"({first[key]!r}, {params[key]!r}); one replay pairs the bag's "
                    "messages one way, so replay them separately"
                )
    return first


def open_input(
    source: BagSource, params: Mapping[str, Any], pair_topic: str | None = None
) -> BagInput:
    """The BagInput of the parameters' input mode over source's image topic.

    pair_topic: stereo's right image topic or rgbd's depth topic (default: found
    beside the image topic). Raises BagError for a missing topic or camera_info, and
    for a stereo pair that is not rectified; ValueError for bad sync parameters.
    """
    mode = str(params["input"])
    first = source.stream.topic
    if mode == "mono":
        if pair_topic is not None:
            raise BagError("--pair-topic is for input stereo or rgbd; these parameters say mono")
        return BagInput(mode, (first,), (source.stream.camera_info_topic,))
    types = source.topic_types()
    counts = source.topic_counts()
    second = pair_topic or _find_pair(mode, first, types)
    what = "right image" if mode == "stereo" else "depth image"
    if second is None or types.get(second) not in IMAGE_TYPES:
        images = ", ".join(sorted(t for t, m in types.items() if m in IMAGE_TYPES)) or "none"
        looked = second or ", ".join(_pair_candidates(mode, first)) or "(no name beside it)"
        raise BagError(
            f"input {mode}: the bag has no {what} topic {looked} for {first}; name it with "
            f"--pair-topic. Image topics: {images}"
        )
    if mode == "rgbd" and types[second] != IMAGE:
        raise BagError(f"input rgbd: depth topic {second} is {types[second]}, not a raw Image")
    if counts.get(second, 0) == 0:
        raise BagError(f"input {mode}: no messages on {second}")
    infos = (source.stream.camera_info_topic, _camera_info(second, types))
    calibration, rectification = None, None
    if mode == "stereo":
        rectify = bool(params["stereo.rectify"])
        calibration, rectification = _stereo_input(source, first, second, infos, rectify)
    sync = synchroniser_for(params)
    return BagInput(
        mode, (first, second), infos[: len(CAMERA_INFO_TOPICS[mode])], sync, calibration,
        rectification,
    )  # fmt: skip


def _pair_candidates(mode: str, first: str) -> list[str]:
    if mode == "stereo":
        right = right_topic_for(first)
        return [right] if right is not None else []
    return depth_topics_for(first)


def _find_pair(mode: str, first: str, types: Mapping[str, str]) -> str | None:
    return next((t for t in _pair_candidates(mode, first) if types.get(t) in IMAGE_TYPES), None)


def _camera_info(image_topic: str, types: Mapping[str, str]) -> str | None:
    topic = camera_info_topic_for(image_topic)
    return topic if types.get(topic) == CAMERA_INFO else None


def _stereo_input(
    source: BagSource,
    left: str,
    right: str,
    infos: tuple[str | None, str | None],
    rectify: bool,
) -> tuple[StereoCalibration, StereoRectification | None]:
    messages = []
    for image_topic, info_topic in zip((left, right), infos, strict=True):
        info = source.first_message(info_topic) if info_topic is not None else None
        if info is None:
            raise BagError(
                f"input stereo needs the camera_info of both cameras; none for {image_topic} "
                f"(looked on {camera_info_topic_for(image_topic)})"
            )
        messages.append(info)
    try:
        return stereo_input_from_camera_infos(*messages, rectify)
    except NotRectifiedError as error:
        raise BagError(f"refusing the stereo pair {left}, {right}: {error}") from error
