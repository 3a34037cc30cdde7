"""Standard dataset layouts read without ROS: KITTI odometry, 7-Scenes, TUM RGB-D, EuRoC MAV.

``open_dataset(path)`` recognises the layout and returns a :class:`Dataset`:
its camera streams (a calibration each), its frames (one stamp, one file per
stream, the ground-truth pose of the primary camera) and, for EuRoC, its IMU
samples. ``select`` keeps a range of frames. Nothing is decoded here beyond
what checking the input needs; ``tools/bag.py`` turns a Dataset into a bag.

Every problem (a wrong layout, a missing pose file, counts that disagree) is a
:class:`DatasetError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

from .types import Dataset, DatasetError, Frame, ImuSample, Stream, select

__all__ = [
    "Dataset",
    "DatasetError",
    "Frame",
    "ImuSample",
    "Stream",
    "LAYOUTS",
    "detect_layout",
    "open_dataset",
    "select",
]

LAYOUTS = ("kitti", "7scenes", "tum", "euroc")


def detect_layout(path: Path) -> str:
    """The layout of the dataset folder at path (one of LAYOUTS); DatasetError if none."""
    from . import euroc, kitti, seven_scenes, tum_rgbd

    if not path.is_dir():
        raise DatasetError(f"dataset folder {path} does not exist or is not a folder")
    for name, module in (
        ("kitti", kitti),
        ("7scenes", seven_scenes),
        ("tum", tum_rgbd),
        ("euroc", euroc),
    ):
        if module.recognises(path):
            return name
    raise DatasetError(
        f"{path} is not a dataset layout this tool reads: expected a KITTI odometry sequence "
        "(image_0/, calib.txt, times.txt), a 7-Scenes scene or seq-XX folder "
        "(frame-NNNNNN.color.png|jpg, .depth.png, .pose.txt), a TUM RGB-D sequence "
        "(rgb.txt, depth.txt, groundtruth.txt) or an EuRoC MAV sequence (mav0/cam0/data.csv)"
    )


def open_dataset(
    path: Path, intrinsics: tuple[float, float, float, float] | None = None
) -> Dataset:
    """The dataset at path; intrinsics (fx, fy, cx, cy) replace the left / colour camera's."""
    from . import euroc, kitti, seven_scenes, tum_rgbd

    readers = {
        "kitti": kitti.read,
        "7scenes": seven_scenes.read,
        "tum": tum_rgbd.read,
        "euroc": euroc.read,
    }
    return readers[detect_layout(path)](path, intrinsics)
