"""Publish an image folder or a bag as sensor_msgs/Image (+ sensor_msgs/CameraInfo).

A folder's frames are stamped from their file names in seconds
(``1341847980.722988.png``) or, when the names are not stamps, from --rate; its
camera.yaml (or --camera-yaml) gives the CameraInfo. A bag (rosbag2 folder,
.mcap, .db3 or ROS 1 .bag) keeps its header stamps and is published on its own
image and CameraInfo topics unless --topic / --camera-info-topic say otherwise;
one with several image topics (stereo, RGB-D) is published whole, every stream
on its own topics, unless --bag-topic picks one.
Publishes at --rate Hz (default: real time from the stamps).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from superglue_ros.tools.common import EXIT_DAMAGED_INPUT, EXIT_INTERRUPTED, CliError, keywords


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="image folder or bag")
    parser.add_argument(
        "--rate", type=float, metavar="HZ", help="frames per second (default: from the stamps)"
    )
    parser.add_argument("--loop", action="store_true", help="start again after the last frame")
    parser.add_argument(
        "--wait-subscribers",
        type=int,
        default=0,
        metavar="N",
        help="wait until N subscribers listen on the image topic before publishing",
    )
    parser.add_argument(
        "--wait-timeout", type=float, default=60.0, metavar="S", help="give up waiting after S s"
    )
    parser.add_argument(
        "--topic",
        help="image topic to publish (default: a bag's own image topic; image for a folder)",
    )
    parser.add_argument(
        "--camera-info-topic",
        help="CameraInfo topic (default: a bag's own; else camera_info beside the image topic: "
        "/cam/image_raw -> /cam/camera_info)",
    )
    parser.add_argument(
        "--bag-topic", help="the one image topic to play from a bag with several (default: all)"
    )
    parser.add_argument("--camera-yaml", type=Path, help="intrinsics for a folder")
    parser.add_argument("--frame-id", default="camera", help="header frame_id of folder frames")
    parser.add_argument(
        "--compressed", action="store_true", help="publish jpeg CompressedImage on TOPIC/compressed"
    )
    parser.add_argument("--reliability", choices=("reliable", "best_effort"), default="reliable")


def run(args: argparse.Namespace) -> int:
    """Exit status 0 when every frame was published, 3 when a damaged bag's intact frames
    were, 130 when SIGINT/SIGTERM stopped it (however many signals came), 1 when no
    subscriber came in time."""
    if args.rate is not None and args.rate <= 0:
        raise CliError(f"--rate must be positive, got {args.rate}")
    try:
        from superglue_ros.ros import player
    except ImportError as error:
        raise CliError(f"ROS 2 (rclpy) is not available: {error}") from error
    from superglue_ros.ros.shutdown import StopRequest

    stop = StopRequest().install()
    try:
        return play(args, player, stop)
    finally:
        stop.ignore_from_now()


def play(args: argparse.Namespace, player: Any, stop: Any) -> int:
    """run() with its stop request installed."""
    source = player.open_source(
        args.source, args.rate, args.camera_yaml, args.frame_id, args.bag_topic
    )
    names = ("topic", "camera_info_topic", "frame_id", "reliability", "compressed", "loop")
    options = player.PlayOptions(
        **keywords(
            args, (*names, "wait_subscribers"), rate_hz="rate", wait_timeout_s="wait_timeout"
        )
    )
    try:
        player.play_to_topics(source, options, lambda line: print("play:", line, flush=True), stop)
    except TimeoutError as error:
        print(f"play: error: {error}", flush=True)
        return 1
    if stop.is_set():
        return EXIT_INTERRUPTED
    return EXIT_DAMAGED_INPUT if source.damage is not None else 0
