"""The Frontend shell of the colour networks (ALIKED, DISK): RGB in, Features out."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from superglue_ros.models.weights import load_state

from ..devices import resolve_device
from ..params import Config
from ..types import Features

MIN_SIDE = 16  # smaller images cannot hold a keypoint away from the borders


def _rgb_tensor(image: np.ndarray, device: torch.device, what: str) -> torch.Tensor:
    """[H, W, 3] uint8 RGB -> [1, 3, H, W] float in [0, 1] on device."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape[2:] != (3,):
        described = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image)
        raise ValueError(f"{what} frontend needs an [H, W, 3] uint8 RGB image, got {described}")
    if image.shape[0] < MIN_SIDE or image.shape[1] < MIN_SIDE:
        raise ValueError(f"image must be at least {MIN_SIDE} px on each side, got {image.shape}")
    # A copy: images decoded from a message may be read-only views of its buffer.
    tensor = torch.from_numpy(np.array(image, order="C")).to(device)
    return tensor.permute(2, 0, 1)[None].float().div_(255.0)


def _features(out: Mapping[str, torch.Tensor], image: np.ndarray) -> Features:
    return Features(
        keypoints=out["keypoints"].cpu().numpy().astype(np.float32).reshape(-1, 2),
        scores=out["scores"].cpu().numpy().astype(np.float32).reshape(-1),
        descriptors=np.ascontiguousarray(out["descriptors"].cpu().numpy(), dtype=np.float32),
        image_size=(int(image.shape[0]), int(image.shape[1])),
    )


class RgbFrontend:
    """Frontend: [H, W, 3] uint8 RGB -> keypoints, scores, [N, D] descriptors of a
    colour network (ALIKED: D = 128, 64 for t16; DISK: D = 128, scores are logits)."""

    color = True  # PreprocessingFrontend passes RGB, not gray

    def __init__(
        self,
        name: str,
        run: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
        conf: Mapping[str, Any],
        device: torch.device,
    ) -> None:
        self.name = name
        self.run = run  # [1, 3, H, W] float in [0, 1] -> keypoints, scores, descriptors
        self.conf = dict(conf)
        self.device = device

    @property
    def description(self) -> str:
        limit = self.conf["max_keypoints"]
        return (
            f"{self.name}(max {limit if limit > 0 else 'all'}) "
            f"on {self.device} {self.conf['precision']}"
        )

    def extract(self, image: np.ndarray) -> Features:
        """image: [H, W, 3] uint8 RGB."""
        return _features(self.run(_rgb_tensor(image, self.device, self.name)), image)


def network_conf(config: Config, family: str, settings: Sequence[str]) -> dict[str, Any]:
    """The network's options: ``<family>.<setting>`` of config, and the precision."""
    return {
        **{name: config[f"{family}.{name}"] for name in settings},
        "precision": config["precision"],
    }


def build_colour_frontend(
    config: Config,
    name: str,
    weights_file: str,
    conf: Mapping[str, Any],
    build: Callable[[dict, str], torch.nn.Module],
    extract: Callable[[torch.nn.Module, torch.Tensor], Mapping[str, torch.Tensor]],
) -> RgbFrontend:
    """weights_file loaded (lookup and hash check of models.weights) into build(state,
    source), on the configured device, behind the Frontend protocol."""
    state, path = load_state(weights_file, config.text("weights_dir") or None)
    device = resolve_device(config.text("device"))
    model = build(state, str(path)).to(device).eval()
    return RgbFrontend(name, lambda image: extract(model, image), conf, device)
