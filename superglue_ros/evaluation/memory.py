"""Peak memory of ``superglue-ros replay`` against the length of the bag.

The parts of ``superglue-ros replay-memory``: one generated bag per length (a
320x240 camera sliding over a textured canvas, JPEG sensor_msgs/CompressedImage,
new points entering on every frame), replayed with ORB + MNN in a fresh process
whose peak RSS is measured. Replay state is bounded by the keyframe buffer, so the peak should not
grow with the number of frames.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

HEIGHT, WIDTH = 240, 320
CANVAS = 1200  # square canvas the camera wanders over
FRAME_PERIOD_NS = 33_333_333
CHILD = """
import json, resource, sys, time
from superglue_ros.tools import cli
start = time.perf_counter()
status = cli.main(["replay", sys.argv[1], "--out", sys.argv[2], "--params", sys.argv[3]])
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"status": status, "peak_rss_kib": peak_kib,
                  "seconds": time.perf_counter() - start}))
"""
PARAMS = "frontend: orb\nmatcher: mnn\nclassical:\n  max_keypoints: 500\n"


def canvas(seed: int = 0) -> np.ndarray:
    """[CANVAS, CANVAS] uint8 blurred noise with rectangles: corners everywhere."""
    rng = np.random.default_rng(seed)
    image = cv2.resize(rng.random((CANVAS // 16, CANVAS // 16)) * 255, (CANVAS, CANVAS))
    image = image.astype(np.uint8)
    for _ in range(3000):
        x, y = rng.integers(0, CANVAS, 2)
        size = int(rng.integers(3, 20))
        cv2.rectangle(
            image, (int(x), int(y)), (int(x) + size, int(y) + size), int(rng.integers(0, 256)), -1
        )
    return cv2.GaussianBlur(image, (3, 3), 0.8)


def frame(texture: np.ndarray, index: int) -> np.ndarray:
    """The view of frame index: a slow Lissajous path, so tracks start and end all the time."""
    t = index / 30.0
    x = (CANVAS - WIDTH) / 2 * (1 + np.sin(0.21 * t))
    y = (CANVAS - HEIGHT) / 2 * (1 + np.sin(0.13 * t + 1.0))
    shift = np.float32([[1, 0, -x], [0, 1, -y]])
    return cv2.warpAffine(texture, shift, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR)


def write_bag(path: Path, frames: int, texture: np.ndarray) -> None:
    """A rosbag2 (mcap) of frames JPEG images on /camera/image_raw/compressed."""
    from superglue_ros.io import rosbag
    from superglue_ros.io.stamps import header_fields

    typestore = rosbag.make_typestore()
    writer = rosbag.open_writer(path, "mcap")
    try:
        connection = writer.add_connection(
            "/camera/image_raw/compressed", rosbag.COMPRESSED_IMAGE, typestore=typestore
        )
        for index in range(frames):
            stamp = 1_000_000_000 + index * FRAME_PERIOD_NS
            data = cv2.imencode(".jpg", frame(texture, index), [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
            fields = {
                "header": header_fields(stamp, "camera"),
                "format": "jpeg",
                "data": data.reshape(-1),
            }
            message = rosbag.build_message(typestore, rosbag.COMPRESSED_IMAGE, fields)
            serialized = typestore.serialize_cdr(message, rosbag.COMPRESSED_IMAGE)
            writer.write(connection, stamp, serialized)
    finally:
        writer.close()


def measure(bag: Path, out: Path, params: Path) -> dict[str, float]:
    """Replay bag in a fresh process; its exit status, peak RSS (KiB) and seconds."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(bag), str(out), str(params)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"replay of {bag} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
