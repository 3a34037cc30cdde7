"""Topic names shared by the bag tools, ``play``, the node and the launch file.

Pure string functions: the launch file imports this without ROS or rosbags.
"""

from __future__ import annotations

from collections.abc import Iterable

COMPRESSED_SUFFIX = "/compressed"


def base_image_topic(topic: str) -> str:
    """``/cam/image_raw/compressed`` -> ``/cam/image_raw``: the topic image_transport's
    compressed stream belongs to (other names unchanged)."""
    return topic.removesuffix(COMPRESSED_SUFFIX) or topic


def camera_info_topic_for(image_topic: str) -> str:
    """The camera info beside an image topic, as image_transport's camera publishers put it:
    ``/cam/image_raw`` -> ``/cam/camera_info``, ``image`` -> ``camera_info`` (relative names
    stay relative; a ``/compressed`` suffix is ignored)."""
    base = base_image_topic(image_topic)
    namespace, slash, _ = base.rpartition("/")
    return f"{namespace}{slash}camera_info"


# Where a depth image aligned to the colour camera is, beside the colour camera's
# namespace: realsense2_camera (align_depth), then openni/freenect (depth_registered).
ALIGNED_DEPTH_NAMES = ("aligned_depth_to_color/image_raw", "depth_registered/image_raw")


def right_topic_for(left_topic: str) -> str | None:
    """``/cam/left/image_rect`` -> ``/cam/right/image_rect``: the right camera's topic of a
    stereo driver (the last ``left`` name part becomes ``right``); None without one."""
    parts = base_image_topic(left_topic).split("/")
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] == "left":
            parts[index] = "right"
            return "/".join(parts)
    return None


def rectified_image_topics(topics: Iterable[str]) -> list[str]:
    """The topics named as rectified images: their last name part has the word ``rect``
    (image_proc's ``image_rect`` and ``image_rect_color``, realsense's ``image_rect_raw``)."""
    return [t for t in topics if "rect" in base_image_topic(t).rpartition("/")[2].split("_")]


def double_rectification_warning(topics: Iterable[str]) -> str | None:
    """What to say when stereo.rectify remaps a pair whose topics are named as rectified
    images, None when none is. image_proc publishes the raw camera's camera_info (its D
    and R) beside image_rect, so rectifying from it undoes the distortion a second time."""
    named = rectified_image_topics(topics)
    if not named:
        return None
    return (
        f"stereo.rectify is on and {', '.join(named)} are named as rectified images "
        "(image_rect): their camera_info describes the raw camera, so they would be "
        "rectified twice; subscribe the raw topics (image_raw) or set stereo.rectify false"
    )


def depth_topics_for(colour_topic: str) -> list[str]:
    """The aligned depth topics that may go with a colour topic, most usual first:
    ``/cam/color/image_raw`` -> ``/cam/aligned_depth_to_color/image_raw``, ... ."""
    camera = base_image_topic(colour_topic).rpartition("/")[0]  # /cam/color
    namespace, slash, _ = camera.rpartition("/")  # /cam
    return [f"{namespace}{slash}{name}" for name in ALIGNED_DEPTH_NAMES]
