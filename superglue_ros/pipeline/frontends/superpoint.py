"""SuperPoint behind the Frontend protocol (research-only weights, superpoint_v1.pth).

Built from the pipeline's validated Config (``device``, ``precision``,
``weights_dir``, ``superpoint.*``); the weights are looked up as
``superglue_ros.models.weights`` describes (``weights_dir`` first), a missing
file raises ``WeightsNotFoundError`` naming every place looked.
"""

from __future__ import annotations

import numpy as np
import torch

from superglue_ros.models.superpoint import SuperPoint
from superglue_ros.models.weights import load_superpoint

from ..devices import resolve_device
from ..params import Config
from ..types import Features


class SuperPointFrontend:
    """Frontend: [H, W] uint8 image -> SuperPoint keypoints, scores, [N, D] descriptors."""

    def __init__(self, model: SuperPoint, device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.device = device

    @property
    def description(self) -> str:
        conf = self.model.conf
        limit = conf["max_keypoints"]
        return (
            f"superpoint(max {limit if limit >= 0 else 'all'}) on {self.device} {conf['precision']}"
        )

    @torch.inference_mode()
    def extract(self, image: np.ndarray) -> Features:
        """image: [H, W] uint8 grayscale."""
        if not isinstance(image, np.ndarray) or image.ndim != 2 or image.dtype != np.uint8:
            raise ValueError(
                "SuperPoint frontend needs an [H, W] uint8 numpy image, got "
                + (
                    f"{image.dtype} {image.shape}"
                    if isinstance(image, np.ndarray)
                    else str(type(image))
                )
            )
        if image.shape[0] < 8 or image.shape[1] < 8:
            raise ValueError(f"image must be at least 8 x 8 pixels, got {image.shape}")
        tensor = torch.from_numpy(np.ascontiguousarray(image))[None, None].to(self.device)
        out = self.model({"image": tensor})
        return Features(
            keypoints=out["keypoints"][0].cpu().numpy().astype(np.float32),
            scores=out["scores"][0].float().cpu().numpy(),
            descriptors=np.ascontiguousarray(out["descriptors"][0].t().float().cpu().numpy()),
            image_size=(int(image.shape[0]), int(image.shape[1])),
        )


def build_superpoint_frontend(config: Config) -> SuperPointFrontend:
    """SuperPoint from superpoint_v1.pth (WeightsNotFoundError when it cannot be found)."""
    device = resolve_device(config.text("device"))
    conf = {
        "nms_radius": config.integer("superpoint.nms_radius"),
        "keypoint_threshold": config.number("superpoint.keypoint_threshold"),
        "max_keypoints": config.integer("superpoint.max_keypoints"),
        "remove_borders": config.integer("superpoint.remove_borders"),
        "precision": config.text("precision"),
    }
    model = load_superpoint(config.text("weights_dir") or None, conf)
    return SuperPointFrontend(model, device)
