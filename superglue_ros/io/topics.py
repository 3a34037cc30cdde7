"""Topic names shared by the bag tools, ``play``, the node and the launch file.

Pure string functions: the launch file imports this without ROS or rosbags.
"""

from __future__ import annotations

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
