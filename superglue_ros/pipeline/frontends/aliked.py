"""ALIKED behind the Frontend protocol (aliked-<aliked.model>.pth, found, SHA-256
checked and loaded strictly by ``superglue_ros.models.weights``)."""

from __future__ import annotations

from superglue_ros.models.extractors import build_aliked, extract_aliked
from superglue_ros.models.weights import ALIKED_MODELS_BY_NAME, load_state

from ..devices import resolve_device
from ..params import Config
from .colour import RgbFrontend


def build_aliked_frontend(config: Config) -> RgbFrontend:
    """ALIKED from aliked-<aliked.model>.pth (WeightsNotFoundError / CorruptWeightsError)."""
    conf = {
        "model": config.text("aliked.model"),
        "max_keypoints": config.integer("aliked.max_keypoints"),
        "detection_threshold": config.number("aliked.detection_threshold"),
        "nms_radius": config.integer("aliked.nms_radius"),
        "precision": config.text("precision"),
    }
    state, path = load_state(
        ALIKED_MODELS_BY_NAME[conf["model"]], config.text("weights_dir") or None
    )
    device = resolve_device(config.text("device"))
    model = build_aliked(state, conf, str(path)).to(device).eval()
    return RgbFrontend(
        f"aliked-{conf['model']}",
        lambda image: extract_aliked(model, image, conf["precision"]),
        conf,
        device,
    )
