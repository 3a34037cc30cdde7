"""LightGlue behind the Matcher protocol: one frame against K keyframes, batched.

A weights file per frontend (aliked, disk, superpoint), found, SHA-256 checked and
loaded strictly by ``superglue_ros.models.weights``; ``lightglue.*`` parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from superglue_ros.models.batching import pad_keyframes
from superglue_ros.models.lightglue import BatchedLightGlue, build_lightglue, plan_batches
from superglue_ros.models.weights import LIGHTGLUE_FILES, load_state

from ..devices import CachedTorchMatcher, cache_size_for, checked_descriptors, resolve_device
from ..params import Config
from ..types import Features, PairMatches

DEFAULT_MEMORY_BUDGET_MB = 512.0  # lightglue.memory_budget_mb's default
PRECISION_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}


class LightGlueMatcher(CachedTorchMatcher):
    """Matcher: one frame against K keyframes in one padded, masked LightGlue batch.

    ``last_layers`` holds the transformer layers each pair of the last call ran
    (LightGlue's early exit), in keyframe order.
    """

    RUNTIME_PARAMS = {"lightglue.filter_threshold": "filter_threshold"}

    def __init__(
        self,
        model: BatchedLightGlue,
        device: torch.device,
        features: str,
        cache_size: int,
        batching: str = "auto",
        memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    ) -> None:
        super().__init__(model, device, cache_size)
        self.features = features
        self.batching = batching  # auto | batched | loop, see plan_batches
        self.memory_budget_mb = float(memory_budget_mb)
        self.last_layers: list[int] = []

    @property
    def description(self) -> str:
        conf = self.model.conf
        return f"lightglue({self.features}, {self.batching}) on {self.device} {conf['precision']}"

    def _to_device(self, features: Features) -> dict[str, torch.Tensor]:
        dim = int(self.model.conf["input_dim"])
        descriptors = checked_descriptors(features, dim, f"LightGlue ({self.features} weights)")
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
    state, path = load_state(LIGHTGLUE_FILES[features], config.text("weights_dir") or None)
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
