"""DISK behind the Frontend protocol (disk-depth-save.pth, found, SHA-256 checked and
loaded strictly by ``superglue_ros.models.weights``)."""

from __future__ import annotations

from superglue_ros.models.extractors import build_disk, extract_disk
from superglue_ros.models.weights import DISK_FILE, load_state

from ..devices import resolve_device
from ..params import Config
from .colour import RgbFrontend


def build_disk_frontend(config: Config) -> RgbFrontend:
    """DISK from disk-depth-save.pth (WeightsNotFoundError / CorruptWeightsError)."""
    conf = {
        "max_keypoints": config.integer("disk.max_keypoints"),
        "nms_window": config.integer("disk.nms_window"),
        "score_threshold": config.number("disk.score_threshold"),
        "precision": config.text("precision"),
    }
    state, path = load_state(DISK_FILE, config.text("weights_dir") or None)
    device = resolve_device(config.text("device"))
    model = build_disk(state, str(path)).to(device).eval()
    return RgbFrontend(
        "disk", lambda image: extract_disk(model, image, conf, conf["precision"]), conf, device
    )
