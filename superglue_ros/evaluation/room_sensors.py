"""Output of the generated room: one camera, or exact rectified pairs and the
z-buffer as depth images, written as a rosbag2 or in the TUM RGB-D layout.

``superglue-ros generate room --stereo B --depth --layout tum`` (tools/generate.py)
calls these; its documentation says which topics and files are written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from superglue_ros.evaluation.room import Quad
    from superglue_ros.io.datasets import Stream
    from superglue_ros.odometry.types import CameraIntrinsics

OUTPUT_LAYOUTS = ("bag", "tum")
IMAGE_TOPIC = "/camera/image_raw"  # the one camera of a room without --stereo / --depth
FRAME_ID = "camera"
LEFT_TOPIC = "/camera/left/image_rect"
RIGHT_TOPIC = "/camera/right/image_rect"
COLOR_TOPIC = "/camera/color/image_raw"
ALIGNED_DEPTH_TOPIC = "/camera/aligned_depth_to_color/image_raw"
LEFT_DEPTH_TOPIC = "/camera/depth_registered/image_raw"  # registered to the left camera
BAG_DEPTH_PER_M = 1000.0  # 16UC1 millimetres, as ROS depth drivers publish
TUM_DEPTH_PER_M = 5000.0  # TUM RGB-D's depth PNGs
TUM_SOURCE = "'superglue-ros generate room'"  # where TUM's headers name the source bag


def check_sensor_options(stereo_baseline: float | None, layout: str) -> None:
    if stereo_baseline is not None and not (np.isfinite(stereo_baseline) and stereo_baseline > 0):
        raise ValueError(
            f"--stereo BASELINE must be a positive number of metres, got {stereo_baseline}"
        )
    if layout not in OUTPUT_LAYOUTS:
        raise ValueError(f"--layout must be one of {', '.join(OUTPUT_LAYOUTS)}, got {layout!r}")
    if layout == "tum" and stereo_baseline is not None:
        raise ValueError(
            "--layout tum holds one colour camera (and depth); --stereo needs --layout bag"
        )


def sensor_streams(
    camera: CameraIntrinsics, stereo_baseline: float | None, depth: bool, depth_frame: str = ""
) -> list[Stream]:
    """The image streams a generation writes, with their calibration: left and right
    (stereo) or colour, then depth registered to the first; without either, the one
    colour camera on IMAGE_TOPIC."""
    from superglue_ros.io.datasets import Stream
    from superglue_ros.io.datasets.files import projection

    k, size, d = camera.matrix, (camera.width, camera.height), (0.0,) * 5
    if stereo_baseline is not None:
        streams = [
            Stream("left", LEFT_TOPIC, "camera_left", "image", *size, k, projection(k), d=d),
            Stream(
                "right", RIGHT_TOPIC, "camera_right", "image", *size, k,
                projection(k, -camera.fx * stereo_baseline), d=d,
            ),
        ]  # fmt: skip
        depth_topic = LEFT_DEPTH_TOPIC
    elif not depth:
        return [Stream("color", IMAGE_TOPIC, FRAME_ID, "image", *size, k, projection(k), d=d)]
    else:
        streams = [
            Stream("color", COLOR_TOPIC, "camera_color", "image", *size, k, projection(k), d=d)
        ]
        depth_topic = ALIGNED_DEPTH_TOPIC
    if depth:
        frame_id = streams[0].frame_id
        streams.append(
            Stream("depth", depth_topic, frame_id, "depth", *size, k, projection(k), d=d)
        )
    return streams


def render_views(
    quads: list[Quad],
    camera: CameraIntrinsics,
    poses: list[np.ndarray],
    noise: float,
    rng: np.random.Generator,
    stereo_baseline: float | None,
    depth_per_m: float | None,
) -> Iterator[dict[str, np.ndarray]]:
    """Per pose, the images of sensor_streams' names: left and right (mono8) or colour
    (RGB), and with depth_per_m the first camera's uint16 depth in those units."""
    import cv2

    from superglue_ros.evaluation import room

    for pose in poses:
        image, depth_m = room.render(quads, camera, pose, noise, rng)
        if stereo_baseline is None:
            views = {"color": image}
        else:
            right_pose = room.right_camera_pose(pose, stereo_baseline)
            right, _ = room.render(quads, camera, right_pose, noise, rng)
            views = {
                "left": cv2.cvtColor(image, cv2.COLOR_RGB2GRAY),
                "right": cv2.cvtColor(right, cv2.COLOR_RGB2GRAY),
            }
        if depth_per_m is not None:
            views["depth"] = room.depth_image(depth_m, depth_per_m)
        yield views


def tum_seconds(stamp_ns: int) -> str:
    seconds, microseconds = divmod(stamp_ns // 1000, 1_000_000)
    return f"{seconds}.{microseconds:06d}"


def write_sensor_output(
    out: Path,
    quads: list[Quad],
    camera: CameraIntrinsics,
    poses: list[np.ndarray],
    stamps: list[int],
    noise: float,
    rng: np.random.Generator,
    stereo_baseline: float | None,
    depth: bool,
    layout: str,
) -> None:
    """The sequence as a bag (out/bag, out/groundtruth.tum) or in the TUM RGB-D layout
    (stamps rounded to the microsecond its text files hold)."""
    from superglue_ros.io.datasets.bag_writer import write_stream_bag
    from superglue_ros.odometry.trajectory import write_tum

    if layout == "tum":
        stamps = [1000 * round(stamp / 1000) for stamp in stamps]
        depth_per_m = TUM_DEPTH_PER_M if depth else None
        views = render_views(quads, camera, poses, noise, rng, None, depth_per_m)
        write_tum_layout(out, views, stamps, poses)
        return
    depth_per_m = BAG_DEPTH_PER_M if depth else None
    views = render_views(quads, camera, poses, noise, rng, stereo_baseline, depth_per_m)
    streams = sensor_streams(camera, stereo_baseline, depth)
    write_stream_bag(out / "bag", streams, zip(stamps, views, strict=True))
    write_tum(out / "groundtruth.tum", zip(stamps, poses, strict=True))


def write_tum_layout(
    out: Path, views: Iterator[dict[str, np.ndarray]], stamps: list[int], poses: list[np.ndarray]
) -> None:
    """rgb/ and depth/ PNGs named by stamp, rgb.txt and depth.txt (``stamp file``) and
    groundtruth.txt (``stamp tx ty tz qx qy qz qw``, colour camera to world), as TUM RGB-D
    sequences hold them."""
    import cv2

    from superglue_ros.odometry.trajectory import tum_line

    lists: dict[str, list[str]] = {"rgb": [], "depth": []}
    for view, stamp in zip(views, stamps, strict=True):
        name = f"{tum_seconds(stamp)}.png"
        pictures = {
            "rgb": cv2.cvtColor(view["color"], cv2.COLOR_RGB2BGR),
            "depth": view.get("depth"),
        }
        for folder, picture in pictures.items():
            if picture is None:
                continue
            (out / folder).mkdir(exist_ok=True)
            if not cv2.imwrite(str(out / folder / name), picture):
                raise OSError(f"cannot write {out / folder / name}")
            lists[folder].append(f"{tum_seconds(stamp)} {folder}/{name}\n")
    titles = {"rgb": "color images", "depth": "depth maps"}
    for folder, lines in lists.items():
        if lines:
            header = f"# {titles[folder]}\n# file: {TUM_SOURCE}\n# timestamp filename\n"
            (out / f"{folder}.txt").write_text(header + "".join(lines))
    truth = "".join(tum_line(stamp, pose) + "\n" for stamp, pose in zip(stamps, poses, strict=True))
    columns = "timestamp tx ty tz qx qy qz qw"
    header = f"# ground truth trajectory\n# file: {TUM_SOURCE}\n# {columns}\n"
    (out / "groundtruth.txt").write_text(header + truth)
