"""Microsoft 7-Scenes: ``seq-XX/frame-NNNNNN.{color.png|color.jpg, depth.png, pose.txt}``.

The path is a ``seq-XX`` folder, or a scene folder holding exactly one. There
are no time stamps: frame i is at i / 30 s. The pose files are camera-to-world
4x4 (KinectFusion tracking of the depth camera; the colour-depth extrinsics are
not published). ``camera-intrinsics.txt`` (585) is the depth camera's; the
colour camera's are not published, so they default to COLOR_INTRINSICS, the
value commonly used. Depth is 16-bit millimetres, 0 where there is none, not
registered to colour.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .files import image_size, pinhole, projection, read_numbers
from .poses import with_nearest_rotation
from .types import Dataset, DatasetError, Frame, Intrinsics, Stream

FRAME_RATE_HZ = 30
COLOR_INTRINSICS = (525.0, 525.0, 320.0, 240.0)
DEPTH_INTRINSICS = (585.0, 585.0, 320.0, 240.0)  # camera-intrinsics.txt of the release
COLOR_TOPIC = "/camera/color/image_raw"
DEPTH_TOPIC = "/camera/depth/image_raw"
FRAME_NAME = re.compile(r"frame-(\d{6})\.color\.(png|jpg)$")


def _sequence_folder(path: Path) -> Path | None:
    if any(path.glob("frame-*.color.*")):
        return path
    sequences = sorted(p for p in path.glob("seq-*") if p.is_dir())
    return sequences[0] if len(sequences) == 1 else None


def recognises(path: Path) -> bool:
    return any(path.glob("frame-*.color.*")) or any(path.glob("seq-*/frame-*.color.*"))


def _depth_intrinsics(sequence: Path) -> Intrinsics:
    """camera-intrinsics.txt in the sequence or scene folder, else the release's value."""
    candidates = [sequence / "camera-intrinsics.txt", sequence.parent / "camera-intrinsics.txt"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        return DEPTH_INTRINSICS
    k = read_numbers(path, 3)
    if k.shape != (3, 3):
        raise DatasetError(f"{path}: expected a 3x3 matrix, got {k.shape[0]} rows")
    return (k[0, 0], k[1, 1], k[0, 2], k[1, 2])


def read_pose(path: Path) -> np.ndarray | None:
    """[4, 4] camera-to-world of a pose file; None when the release marks it invalid (inf)."""
    pose = read_numbers(path, 4)
    if pose.shape != (4, 4):
        raise DatasetError(f"{path}: expected a 4x4 matrix, got {pose.shape[0]} rows")
    return with_nearest_rotation(pose) if np.all(np.isfinite(pose)) else None


def read(path: Path, intrinsics: Intrinsics | None = None) -> Dataset:
    sequence = _sequence_folder(path)
    if sequence is None:
        names = ", ".join(p.name for p in sorted(path.glob("seq-*"))) or "none"
        raise DatasetError(f"{path} holds several 7-Scenes sequences ({names}); give one of them")
    colour = {}
    for file in sequence.glob("frame-*.color.*"):
        match = FRAME_NAME.search(file.name)
        if match:
            colour[int(match.group(1))] = file
    if not colour:
        raise DatasetError(f"{sequence} holds no frame-NNNNNN.color.png or .jpg")
    frames = []
    invalid = 0
    for index in sorted(colour):
        stem = sequence / f"frame-{index:06d}"
        depth = stem.with_name(stem.name + ".depth.png")
        pose_file = stem.with_name(stem.name + ".pose.txt")
        if not depth.is_file():
            raise DatasetError(f"{depth} is missing (its colour image {colour[index]} is there)")
        pose = read_pose(pose_file)
        invalid += pose is None
        stamp = round(index * 1_000_000_000 / FRAME_RATE_HZ)
        frames.append(Frame(index, stamp, {"color": colour[index], "depth": depth}, pose))
    k_colour = pinhole(intrinsics or COLOR_INTRINSICS)
    k_depth = pinhole(_depth_intrinsics(sequence))
    width, height = image_size(frames[0].files["color"])
    depth_width, depth_height = image_size(frames[0].files["depth"])
    streams = [
        Stream(
            "color", COLOR_TOPIC, "camera_color", "image", width, height, k_colour,
            projection(k_colour),
        ),
        Stream(
            "depth", DEPTH_TOPIC, "camera_depth", "depth", depth_width, depth_height, k_depth,
            projection(k_depth),
        ),
    ]  # fmt: skip
    notes = [
        "colour intrinsics "
        + ("from --intrinsics" if intrinsics else f"{COLOR_INTRINSICS} (7-Scenes' usual value)"),
        "ground truth: the release's poses (KinectFusion, depth camera); depth not registered",
    ]
    if invalid:
        notes.append(f"{invalid} frames have an invalid (inf) pose and no ground truth")
    return Dataset("7scenes", path, streams, frames, primary="color", notes=notes)
