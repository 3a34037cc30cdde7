"""Write rosbag2 files.

``bag from-images DIR OUT``: every image of DIR as sensor_msgs/Image (mono8 or
rgb8) on --topic, and with --camera-yaml a sensor_msgs/CameraInfo per image on
``<topic's namespace>/camera_info``. Time stamps come from the file names
(seconds, e.g. ``1341847980.722988.png``) or, with --rate, start at 0 and step
by 1/rate.

``bag from-dataset PATH OUT``: a standard dataset sequence (KITTI odometry,
7-Scenes, TUM RGB-D, EuRoC MAV; the layout is recognised) as a rosbag2 with
every stream it has, and ``OUT/groundtruth.tum`` (TUM format: stamp tx ty tz
qx qy qz qw, camera-to-world of the left / colour camera, on the image stamps).
--first / --last are inclusive frame indices, --every N keeps every Nth frame
from the first; stamps stay the dataset's. Topics (camera_info beside each):

  KITTI      /camera/left/image_rect, /camera/right/image_rect (mono8; the
             baseline in the right camera_info's P[0, 3] = -fx * B)
  EuRoC      /camera/left/image_raw, /camera/right/image_raw (mono8, raw; D and
             the stereo rectification R, P in camera_info), /imu/data
  7-Scenes   /camera/color/image_raw (rgb8; fx 525 unless --intrinsics),
             /camera/depth/image_raw (16UC1 mm; the depth camera's own 585)
  TUM RGB-D  /camera/color/image_raw, /camera/aligned_depth_to_color/image_raw
             (16UC1 mm, registered to colour)

``replay`` picks the left / colour topic of such a bag by itself.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from superglue_ros.tools.common import keywords

GROUNDTRUTH_FILE = "groundtruth.tum"


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
    dataset = sub.add_parser(
        "from-dataset", help="a KITTI / 7-Scenes / TUM RGB-D / EuRoC sequence as a rosbag2",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    dataset.add_argument("path", type=Path, metavar="PATH", help="the sequence folder")
    dataset.add_argument("output", type=Path, metavar="OUT", help="bag to create (a new folder)")
    dataset.add_argument("--first", type=int, metavar="I", help="first frame index (inclusive)")
    dataset.add_argument("--last", type=int, metavar="J", help="last frame index (inclusive)")
    dataset.add_argument("--every", type=int, default=1, metavar="N", help="keep every Nth frame")
    dataset.add_argument(
        "--intrinsics",
        type=parse_intrinsics,
        metavar="FX,FY,CX,CY",
        help="the left / colour camera's intrinsics (default: the dataset's)",
    )
    dataset.add_argument(
        "--register-depth",
        action="store_true",
        help="also write the depth registered to the colour camera "
        "(<namespace>/aligned_depth_to_color/image_raw): each depth pixel back-projected with "
        "the depth camera's intrinsics and projected with the colour camera's (7-Scenes)",
    )
    dataset.add_argument("--format", choices=("mcap", "sqlite3"), default="mcap")


def parse_intrinsics(text: str) -> tuple[float, float, float, float]:
    """``525,525,320,240`` -> (fx, fy, cx, cy); argparse reports a ValueError."""
    values = [float(v) for v in text.split(",")]
    if len(values) != 4 or values[0] <= 0 or values[1] <= 0:
        raise argparse.ArgumentTypeError(f"expected FX,FY,CX,CY with FX, FY > 0, got {text!r}")
    fx, fy, cx, cy = values
    return fx, fy, cx, cy


def import_dataset(
    path: Path,
    output: Path,
    first: int | None = None,
    last: int | None = None,
    every: int = 1,
    intrinsics: tuple[float, float, float, float] | None = None,
    storage: str = "mcap",
    register_depth: bool = False,
) -> tuple[Any, dict[str, int]]:
    """Write the dataset at path as a bag at output plus output/groundtruth.tum.

    register_depth: add the depth registered to the colour camera (io/datasets/registration.py).

    Returns (the selected Dataset, message count per topic). Everything is read
    and checked before the bag is created.
    """
    from superglue_ros.io import datasets
    from superglue_ros.io.datasets.bag_writer import write_dataset_bag
    from superglue_ros.odometry.trajectory import write_tum

    if output.exists():
        raise ValueError(f"{output} exists already; choose a new output path")
    dataset = datasets.select(datasets.open_dataset(path, intrinsics), first, last, every)
    if register_depth:
        from superglue_ros.io.datasets.registration import with_registered_depth

        dataset = with_registered_depth(dataset)
    counts = write_dataset_bag(dataset, output, storage)
    poses = [(f.stamp_ns, f.pose) for f in dataset.frames if f.pose is not None]
    write_tum(output / GROUNDTRUTH_FILE, poses)
    return dataset, counts


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
    with rosbag.new_bag(output, storage) as writer:
        image_conn = writer.add_connection(topic, rosbag.IMAGE, typestore=typestore)
        info_conn = None
        if camera_yaml is not None:
            info_topic = rosbag.camera_info_topic_for(topic)
            info_conn = writer.add_connection(info_topic, rosbag.CAMERA_INFO, typestore=typestore)
        for path, stamp in zip(paths, stamps, strict=True):
            fields = images.image_fields(image_files.read_image(path), stamp, frame_id)
            rosbag.write_message(writer, typestore, image_conn, stamp, rosbag.IMAGE, fields)
            if info_conn is not None:
                info = image_files.camera_info_fields(camera_yaml, stamp, frame_id)
                rosbag.write_message(writer, typestore, info_conn, stamp, rosbag.CAMERA_INFO, info)
    return len(paths)


def run(args: argparse.Namespace) -> int:
    if args.bag_command == "from-dataset":
        return run_from_dataset(args)
    names = ("topic", "camera_yaml", "frame_id")
    options = keywords(args, names, rate_hz="rate", storage="format")
    count = write_from_images(args.directory, args.output, **options)
    print(f"wrote {count} images to {args.output} ({args.format})", file=sys.stderr)
    return 0


def run_from_dataset(args: argparse.Namespace) -> int:
    dataset, counts = import_dataset(
        args.path,
        args.output,
        args.first,
        args.last,
        args.every,
        args.intrinsics,
        args.format,
        args.register_depth,
    )
    frames = dataset.frames
    posed = sum(f.pose is not None for f in frames)
    print(
        f"wrote {len(frames)} frames of a {dataset.layout} sequence (indices "
        f"{frames[0].index} to {frames[-1].index}) to {args.output} ({args.format}); "
        f"{posed} ground-truth poses in {args.output / GROUNDTRUTH_FILE}",
        file=sys.stderr,
    )
    for topic, count in counts.items():
        print(f"  {topic}: {count} messages", file=sys.stderr)
    for note in dataset.notes:
        print(f"  note: {note}", file=sys.stderr)
    return 0
