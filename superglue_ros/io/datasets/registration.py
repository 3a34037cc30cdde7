"""Depth registered to colour on import (``bag from-dataset --register-depth``).

Some RGB-D data (7-Scenes, Kinect v1 recordings) store the depth camera's own
images: a colour keypoint at (u, v) does not see the point the depth pixel
(u, v) measured, because the two cameras' focal lengths differ (7-Scenes: 585
against 525, an 11 % stretch at the image border). ``with_registered_depth``
adds a stream that reprojects each depth image into the colour camera
(pipeline.depth.register_depth: back-project with the depth camera's K, project
with the colour camera's), on the topic a RealSense driver uses for it,
``<namespace>/aligned_depth_to_color/image_raw`` with the colour camera_info, so
``replay --params ... input: rgbd`` pairs it with the colour image by itself.
The raw depth stream stays in the bag.
"""

from __future__ import annotations

from dataclasses import replace

from .types import Dataset, DatasetError, Stream

ALIGNED_NAME = "aligned_depth"
ALIGNED_TOPIC = "aligned_depth_to_color/image_raw"


def with_registered_depth(dataset: Dataset) -> Dataset:
    """dataset plus its depth registered to its colour camera; DatasetError when it has
    no colour and depth stream, or its depth is registered already."""
    colour = dataset.stream(dataset.primary)
    depths = [s for s in dataset.streams if s.kind == "depth"]
    if colour.kind != "image" or len(depths) != 1:
        raise DatasetError(
            f"{dataset.root}: --register-depth needs one colour and one depth stream "
            f"({dataset.layout} has {', '.join(s.name for s in dataset.streams)})"
        )
    depth = depths[0]
    namespace = colour.topic.rsplit("/", 2)[0]
    topic = f"{namespace}/{ALIGNED_TOPIC}"
    if depth.topic == topic:
        raise DatasetError(f"{dataset.root}: the depth of {dataset.layout} is registered already")
    aligned = Stream(
        ALIGNED_NAME, topic, colour.frame_id, "depth", colour.width, colour.height,
        colour.k, colour.p, depth_per_mm=depth.depth_per_mm, register_from=depth.k,
    )  # fmt: skip
    frames = [
        replace(f, files={**f.files, ALIGNED_NAME: f.files[depth.name]}) for f in dataset.frames
    ]
    notes = [
        *dataset.notes,
        f"depth registered to colour on {topic} (depth K fx {depth.k[0, 0]:g}, "
        f"colour K fx {colour.k[0, 0]:g}; no colour-depth offset)",
    ]
    return replace(dataset, streams=[*dataset.streams, aligned], frames=frames, notes=notes)
