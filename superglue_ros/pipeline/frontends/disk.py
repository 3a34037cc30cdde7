"""DISK behind the Frontend protocol (disk-depth-save.pth, found, SHA-256 checked and
loaded strictly by ``superglue_ros.models.weights``)."""

from __future__ import annotations

from superglue_ros.models.extractors import build_disk, extract_disk
from superglue_ros.models.weights import DISK_FILE

from ..params import Config
from .colour import RgbFrontend, build_colour_frontend, network_conf

SETTINGS = ("max_keypoints", "nms_window", "score_threshold")


def build_disk_frontend(config: Config) -> RgbFrontend:
    """DISK from disk-depth-save.pth (WeightsNotFoundError / CorruptWeightsError)."""
    conf = network_conf(config, "disk", SETTINGS)
    return build_colour_frontend(
        config,
        "disk",
        DISK_FILE,
        conf,
        build_disk,
        lambda model, image: extract_disk(model, image, conf, conf["precision"]),
    )
