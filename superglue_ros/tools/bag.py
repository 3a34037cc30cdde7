"""Write rosbag2 files.

``bag from-images DIR OUT``: every image of DIR as sensor_msgs/Image (mono8 or
rgb8) on --topic, and with --camera-yaml a sensor_msgs/CameraInfo per image on
``<topic's namespace>/camera_info``. Time stamps come from the file names
(seconds, e.g. ``1341847980.722988.png``) or, with --rate, start at 0 and step
by 1/rate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bag_command", required=True, metavar="ACTION")
    images = sub.add_parser("from-images", help="an image folder as a rosbag2", description=__doc__)
    images.add_argument("directory", type=Path, metavar="DIR", help="folder of images")
    images.add_argument("output", type=Path, metavar="OUT", help="bag to create (a new folder)")
    images.add_argument("--topic", default="/camera/image_raw", help="image topic")
    images.add_argument("--camera-yaml", type=Path, help="intrinsics, e.g. camera.yaml")
    images.add_argument(
        "--rate", type=float, metavar="HZ", help="frame rate; default: stamps from file names"
    )
    images.add_argument("--format", choices=("mcap", "sqlite3"), default="mcap")
    images.add_argument("--frame-id", default="camera", help="header frame_id")


def write_from_images(
    directory: Path,
    output: Path,
    topic: str = "/camera/image_raw",
    camera_yaml: Path | None = None,
    rate_hz: float | None = None,
    storage: str = "mcap",
    frame_id: str = "camera",
) -> int:
    """Write the images of directory to a new bag at output; returns the image count."""
    from superglue_ros.io import image_files, images, rosbag

    if not topic.startswith("/"):
        raise ValueError(f"--topic must be absolute (start with /), got {topic!r}")
    paths = image_files.list_images(directory)
    if rate_hz is None:
        paths = image_files.sort_by_stamp(paths)
    stamps = image_files.stamps_for(paths, rate_hz)
    if camera_yaml is not None:
        image_files.camera_info_fields(camera_yaml, 0, frame_id)  # fail before creating the bag
    typestore = rosbag.make_typestore()
    writer = rosbag.open_writer(output, storage)
    completed = False
    try:
        image_conn = writer.add_connection(topic, rosbag.IMAGE, typestore=typestore)
        info_conn = None
        if camera_yaml is not None:
            info_topic = rosbag.camera_info_topic_for(topic)
            info_conn = writer.add_connection(info_topic, rosbag.CAMERA_INFO, typestore=typestore)
        for path, stamp in zip(paths, stamps, strict=True):
            fields = images.image_fields(image_files.read_image(path), stamp, frame_id)
            message = rosbag.build_message(typestore, rosbag.IMAGE, fields)
            writer.write(image_conn, stamp, typestore.serialize_cdr(message, rosbag.IMAGE))
            if info_conn is not None:
                fields = image_files.camera_info_fields(camera_yaml, stamp, frame_id)
                info = rosbag.build_message(typestore, rosbag.CAMERA_INFO, fields)
                writer.write(info_conn, stamp, typestore.serialize_cdr(info, rosbag.CAMERA_INFO))
        completed = True
    finally:
        if completed:
            writer.close()
        else:
            writer.abort()
            _remove_partial(output)
    return len(paths)


def _remove_partial(output: Path) -> None:
    """Delete what an aborted writer left in output (our own new folder only)."""
    if output.is_dir():
        for child in output.iterdir():
            child.unlink()
        output.rmdir()


def run(args: argparse.Namespace) -> int:
    count = write_from_images(
        args.directory,
        args.output,
        topic=args.topic,
        camera_yaml=args.camera_yaml,
        rate_hz=args.rate,
        storage=args.format,
        frame_id=args.frame_id,
    )
    print(f"wrote {count} images to {args.output} ({args.format})", file=sys.stderr)
    return 0
