"""Generate image sequences with exact ground truth.

``generate room --out DIR``: a textured room (floor, walls, ceiling, two boxes)
rendered along a smooth camera path: an arc of --path-length metres, or with
``--path loop`` once round the room looking outward at the walls and back to
the start (for loop closure). ``--repeat-textures N`` gives every face its own
picture except one wall picture repeated on N walls (perceptual aliasing). The faces are
tiled with the pictures given by --textures (image files or folders, e.g.
``../shared/data/scannet_sample``; read at run time, never copied anywhere but
into the rendered frames) or, without --textures, with procedural textures.
DIR receives:

  bag/              rosbag2 (mcap): sensor_msgs/Image (rgb8) on /camera/image_raw
                    and sensor_msgs/CameraInfo on /camera/camera_info per frame
  camera.yaml       the intrinsics (``bag from-images --camera-yaml`` layout)
  groundtruth.tum   stamp tx ty tz qx qy qz qw per frame, camera-to-world
                    (OpenCV camera axes), stamps equal to the image stamps

Then ``superglue-ros replay DIR/bag --out OUT --odometry --groundtruth
DIR/groundtruth.tum`` measures the trajectory a configuration yields.

Stereo and depth (``--stereo BASELINE``, ``--depth``): the bag then holds, with a
sensor_msgs/CameraInfo beside each image topic,

  --stereo B        /camera/left/image_rect, /camera/right/image_rect (mono8): an
                    exact rectified pair, the right camera B metres along the left
                    camera's x axis with the same K; its P[0, 3] = -fx * B, as ROS
                    stereo drivers publish it
  --depth           /camera/color/image_raw (rgb8) and
                    /camera/aligned_depth_to_color/image_raw (16UC1 millimetres, the
                    renderer's z-buffer, 0 where no surface is)
  both              the stereo topics and /camera/depth_registered/image_raw (the
                    left camera's depth)

and ``replay`` reads them with ``input: stereo`` or ``input: rgbd``. ``--layout
tum`` writes the TUM RGB-D layout instead of a bag: rgb/ and depth/ (PNG named
by stamp; depth 16-bit at 5000 a metre), rgb.txt, depth.txt, groundtruth.txt
(stamps in microseconds) and camera.yaml, for ``superglue-ros bag from-dataset
DIR OUT --intrinsics FX,FY,CX,CY`` (TUM folders carry no calibration; the
command to run is printed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from superglue_ros.evaluation.room_sensors import (
    OUTPUT_LAYOUTS,
    check_sensor_options,
    write_sensor_output,
)
from superglue_ros.odometry.types import CameraIntrinsics
from superglue_ros.tools.common import keywords

FOCAL_PER_WIDTH = 0.82  # fx = fy = 0.82 * width: a 64 degree horizontal field of view
START_STAMP_NS = 1_000_000_000
PATHS = ("arc", "loop")
ARC_LENGTH_M = 3.2  # --path arc's default length


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="generate_command", required=True, metavar="KIND")
    room = sub.add_parser("room", help="a textured room along a known path", description=__doc__)
    room.add_argument("--out", type=Path, required=True, metavar="DIR", help="new output folder")
    room.add_argument("--frames", type=int, default=40, help="number of frames (default 40)")
    room.add_argument(
        "--textures",
        type=Path,
        nargs="+",
        default=[],
        metavar="PATH",
        help="pictures or folders of pictures for the faces (default: procedural textures)",
    )
    room.add_argument("--width", type=int, default=640)
    room.add_argument("--height", type=int, default=480)
    room.add_argument(
        "--path-length", type=float, metavar="M", help="metres (default 3.2; --path arc only)"
    )
    room.add_argument("--rate", type=float, default=10.0, metavar="HZ", help="frame rate")
    room.add_argument(
        "--noise", type=float, default=2.0, help="image noise standard deviation (grey levels)"
    )
    room.add_argument("--seed", type=int, default=0, help="texture placement and noise seed")
    add_sensor_arguments(room)
    add_path_arguments(room)


def add_sensor_arguments(room: argparse.ArgumentParser) -> None:
    """--stereo, --depth and --layout: which cameras are rendered and how they are written."""
    group = room.add_argument_group("stereo and depth output")
    group.add_argument(
        "--stereo",
        type=float,
        metavar="BASELINE",
        help="also render the right camera of a rectified pair, BASELINE metres to the right",
    )
    group.add_argument(
        "--depth", action="store_true", help="also write the exact depth of the left / colour image"
    )
    group.add_argument(
        "--layout",
        choices=OUTPUT_LAYOUTS,
        default="bag",
        help="bag: a rosbag2 (default); tum: the TUM RGB-D layout, for bag from-dataset",
    )


def add_path_arguments(room: argparse.ArgumentParser) -> None:
    """The camera path and the texture placement (loops, perceptual aliasing)."""
    room.add_argument(
        "--path",
        choices=PATHS,
        default="arc",
        help="arc (default): sideways along an arc of --path-length metres; loop: once round "
        "the room looking outward at the walls, back to the start (--path-length does not apply)",
    )
    room.add_argument(
        "--repeat-textures",
        type=int,
        default=0,
        metavar="N",
        help="controlled aliasing: every face gets its own picture (procedural textures; "
        "with --textures, as far as they go), except that one wall's middle picture is also "
        "on the middle of the next N - 1 walls (1: no repeat, 2 to 4: the same texture in "
        "several places). Default 0: pictures are reused over the faces at random",
    )


def load_pictures(paths: list[Path]) -> list[np.ndarray]:
    """Every picture named by paths (files, or the images directly in folders)."""
    from superglue_ros.io import image_files

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += image_files.list_images(path)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"texture {path} does not exist")
    return [image_files.read_image(p) for p in files]


def room_camera(width: int, height: int) -> CameraIntrinsics:
    """The room's pinhole camera: FOCAL_PER_WIDTH * width, principal point at the centre."""
    focal = FOCAL_PER_WIDTH * width
    return CameraIntrinsics(focal, focal, (width - 1) / 2, (height - 1) / 2, width, height)


def camera_yaml_text(camera: CameraIntrinsics) -> str:
    return (
        "# Pinhole camera of a generated room sequence (no distortion).\n"
        f"image_width: {camera.width}\nimage_height: {camera.height}\n"
        f"fx: {camera.fx}\nfy: {camera.fy}\ncx: {camera.cx}\ncy: {camera.cy}\n"
        "distortion: [0.0, 0.0, 0.0, 0.0, 0.0]\n"
    )


def generate_room(
    out: Path,
    frames: int = 40,
    textures: list[Path] | None = None,
    width: int = 640,
    height: int = 480,
    path_length: float | None = None,
    rate_hz: float = 10.0,
    noise: float = 2.0,
    seed: int = 0,
    stereo_baseline: float | None = None,
    depth: bool = False,
    layout: str = "bag",
    path: str = "arc",
    repeat_textures: int = 0,
) -> int:
    """Render the sequence into out (a new or empty folder); returns the frame count.

    stereo_baseline (metres), depth and layout: see the module's documentation.
    """
    from superglue_ros.evaluation import room
    from superglue_ros.evaluation.textures import procedural_texture

    if width < 16 or height < 16:
        raise ValueError(f"image size must be at least 16x16, got {width}x{height}")
    if rate_hz <= 0:
        raise ValueError(f"--rate must be positive, got {rate_hz}")
    check_sensor_options(stereo_baseline, layout)
    poses = room_poses(path, frames, path_length)  # checks frames and the length
    if not 0 <= repeat_textures <= 4:
        raise ValueError(f"--repeat-textures must be 0 to 4 walls, got {repeat_textures}")
    rng = np.random.default_rng(seed)
    pictures = load_pictures(textures or [])
    if not pictures:
        count = room.DISTINCT_PICTURES if repeat_textures else 12
        pictures = [procedural_texture(rng) for _ in range(count)]
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"output {out} exists and is not an empty folder; choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    camera = room_camera(width, height)
    (out / "camera.yaml").write_text(camera_yaml_text(camera))
    quads = room.build_room(pictures, rng)
    if repeat_textures >= 2:
        quads = room.repeat_wall_picture(quads, repeat_textures)
    stamps = [START_STAMP_NS + round(i * 1e9 / rate_hz) for i in range(frames)]
    write_sensor_output(
        out, quads, camera, poses, stamps, noise, rng, stereo_baseline, depth, layout
    )
    return frames


def room_poses(path: str, frames: int, path_length: float | None) -> list[np.ndarray]:
    """The camera-to-world poses of --path; ValueError on a bad path, count or length."""
    from superglue_ros.evaluation import room

    if path == "arc":
        return room.camera_path(frames, ARC_LENGTH_M if path_length is None else path_length)
    if path == "loop":
        if path_length is not None:
            raise ValueError("--path-length applies to --path arc; a loop's length is the room's")
        return room.loop_path(frames)
    raise ValueError(f"--path must be one of {', '.join(PATHS)}, got {path!r}")


def run(args: argparse.Namespace) -> int:
    names = ("frames", "textures", "width", "height", "path_length", "noise", "seed")
    names += ("path", "repeat_textures")
    sensors = keywords(args, ("depth", "layout"), stereo_baseline="stereo")
    count = generate_room(args.out, **keywords(args, names, rate_hz="rate"), **sensors)
    if args.layout == "tum":
        camera = room_camera(args.width, args.height)
        intrinsics = ",".join(repr(v) for v in (camera.fx, camera.fy, camera.cx, camera.cy))
        print(
            f"generate: {count} frames in {args.out} (TUM RGB-D layout); import them with\n"
            f"  superglue-ros bag from-dataset {args.out} OUT --intrinsics {intrinsics}",
            file=sys.stderr,
        )
        return 0
    print(
        f"generate: {count} frames in {args.out / 'bag'}, ground truth in "
        f"{args.out / 'groundtruth.tum'}",
        file=sys.stderr,
    )
    return 0
