"""ALIKED behind the Frontend protocol (aliked-<aliked.model>.pth, found, SHA-256
checked and loaded strictly by ``superglue_ros.models.weights``)."""

from __future__ import annotations

from superglue_ros.models.extractors import build_aliked, extract_aliked
from superglue_ros.models.weights import ALIKED_MODELS_BY_NAME

from ..params import Config
from .colour import RgbFrontend, build_colour_frontend, network_conf

SETTINGS = ("model", "max_keypoints", "detection_threshold", "nms_radius")


def build_aliked_frontend(config: Config) -> RgbFrontend:
    """ALIKED from aliked-<aliked.model>.pth (WeightsNotFoundError / CorruptWeightsError)."""
    conf = network_conf(config, "aliked", SETTINGS)
    return build_colour_frontend(
        config,
        f"aliked-{conf['model']}",
        ALIKED_MODELS_BY_NAME[conf["model"]],
        conf,
        lambda state, source: build_aliked(state, conf, source),
        lambda model, image: extract_aliked(model, image, conf["precision"]),
    )
