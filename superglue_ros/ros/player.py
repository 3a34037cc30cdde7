"""Publish an image folder, a bag or in-memory frames as sensor_msgs/Image (+ CameraInfo).

Used by ``superglue-ros play`` and ``make demo``. Folder frames take their stamps
from file names in seconds (``1341847980.722988.png``) or, when the names are not
stamps, from the frame rate; bag frames keep their header stamps. A bag with
several image topics (a stereo pair, colour and depth) is played whole unless one
topic is chosen: every image stream on its own topic with its camera_info, in bag
order, paced by the bag's record times (the streams' stamps need not interleave).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from superglue_ros.io import image_files, images, rosbag, topics
from superglue_ros.io.stamps import NSEC_PER_SEC, stamp_fields, stamp_to_ns
from superglue_ros.ros import convert, qos, shutdown


@dataclass
class Frame:
    """One frame to publish. image: [H, W] gray or [H, W, 3] RGB uint8; or a ready message."""

    stamp_ns: int
    image: np.ndarray | None = None
    message: Any = None  # rclpy sensor_msgs/Image or CompressedImage (from a bag)
    stream: int = 0  # which of the source's streams (0: the first image topic)
    clock_ns: int | None = None  # when to publish it, relative to the others; None: stamp_ns


def stamp_msg(stamp_ns: int) -> Any:
    from builtin_interfaces.msg import Time

    return Time(**stamp_fields(stamp_ns))


def image_message(image: np.ndarray, stamp_ns: int, frame_id: str, encoding: str = "") -> Image:
    """An rclpy Image of a gray or RGB uint8 array; encoding '' = mono8 / rgb8."""
    if not encoding:
        encoding = "mono8" if image.ndim == 2 else "rgb8"
    if encoding == "bgr8" and image.ndim == 3:
        image = image[:, :, ::-1]
    msg = convert.fill_message(Image(), images.array_to_image_fields(image, encoding))
    msg.header.stamp = stamp_msg(stamp_ns)
    msg.header.frame_id = frame_id
    return msg


def compressed_message(
    image: np.ndarray, stamp_ns: int, frame_id: str, fmt: str = "jpeg"
) -> CompressedImage:
    msg = convert.fill_message(CompressedImage(), images.compressed_image_fields(image, fmt))
    msg.header.stamp = stamp_msg(stamp_ns)
    msg.header.frame_id = frame_id
    return msg


def camera_info_from_yaml(path: Path, frame_id: str) -> CameraInfo:
    """CameraInfo from a camera.yaml (flat fx/fy/cx/cy or ROS camera_calibration layout)."""
    return convert.fill_message(CameraInfo(), image_files.camera_info_fields(path, 0, frame_id))


# ------------------------------------------------------------------ sources
@dataclass
class Stream:
    """A further image stream of a bag: its topic, camera info topic and first CameraInfo."""

    topic: str
    camera_info_topic: str
    camera_info: Any  # rclpy CameraInfo or None
    compressed: bool = False


@dataclass
class Source:
    """frames() yields the sequence once (call again to loop); camera_info may be None."""

    frames: Callable[[], Iterator[Frame]]
    camera_info: Any
    count: int
    description: str
    damage: Any = None  # a damaged bag: where it ended (set once frames() got there)
    # A bag's own topics, what play publishes on by default (None: a folder or memory).
    image_topic: str | None = None
    camera_info_topic: str | None = None
    compressed: bool = False  # the frames are ready CompressedImage messages
    # A bag played whole: its other image topics (Frame.stream 1, 2, ...).
    more_streams: tuple[Stream, ...] = ()


def folder_source(
    folder: Path, rate_hz: float | None, camera_yaml: Path | None, frame_id: str
) -> Source:
    paths = image_files.list_images(folder)
    stamps_from_names = all(image_files.stamp_from_name(p) is not None for p in paths)
    if stamps_from_names:
        paths = image_files.sort_by_stamp(paths)
    stamps = image_files.stamps_for(paths, None if stamps_from_names else (rate_hz or 10.0))
    if camera_yaml is None and (folder / "camera.yaml").is_file():
        camera_yaml = folder / "camera.yaml"
    info = camera_info_from_yaml(camera_yaml, frame_id) if camera_yaml is not None else None

    def frames() -> Iterator[Frame]:
        for path, stamp in zip(paths, stamps, strict=True):
            yield Frame(stamp, image=image_files.read_image(path))

    return Source(frames, info, len(paths), f"{len(paths)} images from {folder}")


def _camera_info(bag: rosbag.BagSource, topic: str | None) -> Any:
    raw = bag.first_message(topic) if topic is not None else None
    if raw is None:
        return None
    return convert.fill_message(CameraInfo(), convert.rosbags_to_fields(raw))


def bag_source(path: Path, image_topic: str | None) -> Source:
    """A bag's images: image_topic only when given or the bag has one image topic, else
    every image topic (each with the camera_info beside it)."""
    with rosbag.BagSource(path, image_topic) as bag:
        stream = bag.stream
        info = _camera_info(bag, stream.camera_info_topic)
        types, counts = bag.topic_types(), bag.topic_counts()
        others = []
        if image_topic is None:
            others = sorted(
                t for t, m in types.items() if m in rosbag.IMAGE_TYPES and t != stream.topic
            )
        more = []
        for topic in others:
            compressed = types[topic] == rosbag.COMPRESSED_IMAGE
            base = topics.base_image_topic(topic) if compressed else topic
            info_topic = topics.camera_info_topic_for(base)
            found = info_topic if types.get(info_topic) == rosbag.CAMERA_INFO else None
            more.append(Stream(base, info_topic, _camera_info(bag, found), compressed))
    image_topics = [stream.topic, *others]
    classes = [
        CompressedImage if types[t] == rosbag.COMPRESSED_IMAGE else Image for t in image_topics
    ]
    index = {topic: i for i, topic in enumerate(image_topics)}

    def frames() -> Iterator[Frame]:
        with rosbag.BagSource(path, stream.topic) as bag:
            for bag_ns, topic, raw in bag.messages(image_topics):
                i = index[topic]
                msg = convert.fill_message(classes[i](), convert.rosbags_to_fields(raw))
                clock = bag_ns if others else None
                yield Frame(stamp_to_ns(msg.header.stamp), message=msg, stream=i, clock_ns=clock)
            source.damage = bag.damage

    count = sum(counts[t] for t in image_topics)
    kind = "images" if others else "frames"  # several streams: images, not frames
    description = f"{count} {kind} of {', '.join(image_topics)} in {path}"
    compressed = classes[0] is CompressedImage
    base = topics.base_image_topic(stream.topic) if compressed else stream.topic
    info_topic = stream.camera_info_topic or topics.camera_info_topic_for(base)
    source = Source(
        frames, info, count, description, None, base, info_topic, compressed, tuple(more)
    )
    return source


def memory_source(images: Iterable[np.ndarray], rate_hz: float, camera_info: Any = None) -> Source:
    frames_list = list(images)
    step = round(NSEC_PER_SEC / rate_hz)
    start = time.time_ns()

    def frames() -> Iterator[Frame]:
        for i, image in enumerate(frames_list):
            yield Frame(start + i * step, image=image)

    return Source(frames, camera_info, len(frames_list), f"{len(frames_list)} frames")


def open_source(
    path: Path,
    rate_hz: float | None = None,
    camera_yaml: Path | None = None,
    frame_id: str = "camera",
    image_topic: str | None = None,
) -> Source:
    """A folder of images or a bag (rosbag2 folder, .mcap, .db3, ROS 1 .bag)."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist (give an image folder or a bag)")
    is_bag_dir = path.is_dir() and (path / "metadata.yaml").is_file()
    if path.is_dir() and not is_bag_dir:
        return folder_source(path, rate_hz, camera_yaml, frame_id)
    return bag_source(path, image_topic)


# ------------------------------------------------------------------ player
class Player:
    """A small rclpy node publishing frames; use as a context manager."""

    def __init__(
        self,
        topic: str = "image",
        camera_info_topic: str = "camera_info",
        frame_id: str = "camera",
        reliability: str = "reliable",
        compressed: bool = False,
        context: Context | None = None,
        node_name: str = "superglue_player",
        stop: shutdown.StopRequest | None = None,
    ) -> None:
        """stop: ends waits and spinning early once set (SIGINT/SIGTERM in play)."""
        self.context = context
        self.stop = stop or shutdown.StopRequest()
        self.frame_id = frame_id
        self.compressed = compressed
        self.node = Node(node_name, context=context)
        image_qos = qos.image_qos(reliability, depth=5)
        self._image_qos = image_qos
        self.image_pub, self.info_pub = self._publishers(topic, camera_info_topic, compressed)
        self.image_pubs, self.info_pubs = [self.image_pub], [self.info_pub]
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)

    def _publishers(self, topic: str, camera_info_topic: str, compressed: bool) -> tuple[Any, Any]:
        if compressed:
            image_pub = self.node.create_publisher(
                CompressedImage, topic.rstrip("/") + "/compressed", self._image_qos
            )
        else:
            image_pub = self.node.create_publisher(Image, topic, self._image_qos)
        return image_pub, self.node.create_publisher(CameraInfo, camera_info_topic, self._image_qos)

    def add_stream(self, stream: Stream) -> None:
        """Publishers for frames of the next stream index (ready bag messages only)."""
        image_pub, info_pub = self._publishers(
            stream.topic, stream.camera_info_topic, stream.compressed
        )
        self.image_pubs.append(image_pub)
        self.info_pubs.append(info_pub)

    def wait_for_subscribers(self, count: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.image_pub.get_subscription_count() < count:
            if time.monotonic() > deadline or self.stop.is_set():
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return True

    def publish(self, frame: Frame, camera_info: Any = None) -> Any:
        """Publish one frame (and camera_info with the same stamp); returns the image message."""
        if frame.message is not None:
            msg = frame.message
        elif self.compressed:
            msg = compressed_message(frame.image, frame.stamp_ns, self.frame_id)
        else:
            msg = image_message(frame.image, frame.stamp_ns, self.frame_id)
        if camera_info is not None:
            camera_info.header.stamp = msg.header.stamp
            camera_info.header.frame_id = msg.header.frame_id
            self.info_pubs[frame.stream].publish(camera_info)
        self.image_pubs[frame.stream].publish(msg)
        return msg

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.stop.is_set():
                return
            self.executor.spin_once(timeout_sec=min(left, 0.05))

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()

    def __enter__(self) -> Player:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def play(
    source: Source,
    player: Player,
    rate_hz: float | None,
    loop: bool = False,
    log: Callable[[str], None] = print,
) -> int:
    """Publish every frame of source at rate_hz (None: real time from the stamps).

    Returns the number of frames published; stops early when player.stop is set.
    """
    published = 0
    infos = [source.camera_info, *(s.camera_info for s in source.more_streams)]
    while not player.stop.is_set():
        previous_stamp: int | None = None
        next_time = time.monotonic()
        for frame in source.frames():
            clock = frame.stamp_ns if frame.clock_ns is None else frame.clock_ns
            if rate_hz:
                # The rate is of frames: a bag's further streams go out with the first.
                next_time += 1.0 / rate_hz if published and frame.stream == 0 else 0.0
            elif previous_stamp is not None:
                next_time += max(0.0, (clock - previous_stamp) * 1e-9)
            previous_stamp = clock
            player.spin_for(max(0.0, next_time - time.monotonic()))
            if player.stop.is_set():
                break
            player.publish(frame, infos[frame.stream])
            published += 1
        if not loop:
            break
        log(f"looping after {published} frames")
    return published


@dataclass(frozen=True)
class PlayOptions:
    """How ``play_to_topics`` publishes (the ``superglue-ros play`` options)."""

    topic: str | None = None  # None: the bag's image topic, else "image"
    camera_info_topic: str | None = None  # None: the bag's, else beside the image topic
    frame_id: str = "camera"
    reliability: str = "reliable"
    compressed: bool = False
    rate_hz: float | None = None  # None: real time from the stamps
    loop: bool = False
    wait_subscribers: int = 0
    wait_timeout_s: float = 60.0


def publish_topics(source: Source, options: PlayOptions) -> tuple[str, str]:
    """(image topic, camera info topic): the options', else the bag's own, else ``image``;
    camera info beside the image topic unless given. ValueError for --compressed on a bag
    (its images are published as recorded)."""
    if source.more_streams and (options.topic or options.camera_info_topic):
        streams = [source.image_topic, *(s.topic for s in source.more_streams)]
        raise ValueError(
            f"--topic / --camera-info-topic rename one image stream; this bag has "
            f"{len(streams)} ({', '.join(map(str, streams))}): choose one with --bag-topic"
        )
    if options.compressed and source.image_topic is not None and not source.compressed:
        raise ValueError(
            "--compressed encodes folder frames as jpeg; this bag's images are raw and are "
            "published as recorded (drop --compressed)"
        )
    topic = options.topic or source.image_topic or "image"
    if options.camera_info_topic:
        return topic, options.camera_info_topic
    if options.topic is None and source.camera_info_topic is not None:
        return topic, source.camera_info_topic
    return topic, topics.camera_info_topic_for(topic)


def play_to_topics(
    source: Source,
    options: PlayOptions,
    log: Callable[[str], None],
    stop: shutdown.StopRequest | None = None,
) -> int:
    """Start rclpy, publish source as options say, shut down; returns the frames published.

    stop: an installed StopRequest takes SIGINT/SIGTERM instead of rclpy's handlers,
    and ends the playing early (however many signals come). Raises TimeoutError
    when fewer than options.wait_subscribers listen in time.
    """
    topic, info_topic = publish_topics(source, options)
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO if stop else None)
    stop = stop or shutdown.StopRequest()
    try:
        with Player(
            topic,
            info_topic,
            options.frame_id,
            options.reliability,
            options.compressed or source.compressed,
            stop=stop,
        ) as player:
            for stream in source.more_streams:
                player.add_stream(stream)
            info = f" and {player.info_pub.topic_name}" if source.camera_info is not None else ""
            log(f"{source.description} on {player.image_pub.topic_name}{info}")
            for stream, pub in zip(source.more_streams, player.image_pubs[1:], strict=True):
                info = f" and {stream.camera_info_topic}" if stream.camera_info is not None else ""
                log(f"  and on {pub.topic_name}{info}")
            if options.wait_subscribers > 0:
                log(f"waiting for {options.wait_subscribers} subscriber(s)")
                waited = player.wait_for_subscribers(
                    options.wait_subscribers, options.wait_timeout_s
                )
                if not waited and not stop.is_set():
                    raise TimeoutError("no subscribers after --wait-timeout")
            count = play(source, player, options.rate_hz, options.loop, log)
            if not stop.is_set():
                player.spin_for(0.2)  # let reliable samples go out before the node goes
            state = f"stopped by {stop.reason()} after" if stop.is_set() else "published"
            log(f"{state} {count} frames")
            if source.damage is not None:
                log(f"{source.damage.describe()}; published the frames before it")
            return count
    finally:
        rclpy.try_shutdown()
