"""SuperGlue behind the Matcher protocol: one frame against K keyframes in one batch.

Research-only weights (superglue_indoor.pth / superglue_outdoor.pth), looked up as
``superglue_ros.models.weights`` describes; ``superglue.*`` parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from superglue_ros.models.superglue import SuperGlue, pad_batch
from superglue_ros.models.weights import load_superglue

from ..devices import CachedTorchMatcher, cache_size_for, checked_descriptors, resolve_device
from ..params import Config
from ..types import Features, PairMatches


class SuperGlueMatcher(CachedTorchMatcher):
    """Matcher: one frame against K keyframes in one padded, masked SuperGlue batch."""

    RUNTIME_PARAMS = {"superglue.match_threshold": "match_threshold"}

    def __init__(
        self, model: SuperGlue, device: torch.device, weights: str, cache_size: int
    ) -> None:
        super().__init__(model, device, cache_size)
        self.weights = weights

    @property
    def description(self) -> str:
        return f"superglue({self.weights}) on {self.device} {self.model.conf['precision']}"

    def _to_device(self, features: Features) -> dict[str, torch.Tensor]:
        dim = int(self.model.conf["descriptor_dim"])
        descriptors = checked_descriptors(features, dim, "SuperGlue", " (SuperPoint's)")
        tensors = {
            "kpts": torch.from_numpy(np.asarray(features.keypoints, np.float32).reshape(-1, 2)),
            "scores": torch.from_numpy(np.asarray(features.scores, np.float32).reshape(-1)),
            "desc": torch.from_numpy(np.ascontiguousarray(descriptors.T, dtype=np.float32)),
            "size": torch.tensor(features.image_size, dtype=torch.float32),
        }
        return {k: v.to(self.device) for k, v in tensors.items()}

    @torch.inference_mode()
    def match(self, frame: Features, keyframes: Sequence[Features]) -> list[PairMatches]:
        """One PairMatches per keyframe, in the order given (one batched forward)."""
        if not keyframes:
            return []
        count = len(keyframes)
        num0 = len(frame)
        side0 = self._tensors(frame)
        sides1 = [self._tensors(k) for k in keyframes]
        sizes1 = [len(s["scores"]) for s in sides1]
        width = max(sizes1)
        if num0 == 0 or width == 0:
            return [PairMatches.unmatched(num0) for _ in keyframes]

        data = pad_batch(side0, sides1)
        data["image_size0"] = side0["size"][None].expand(count, 2)
        data["image_size1"] = torch.stack([s["size"] for s in sides1])
        out = self.model(data)
        return PairMatches.from_batch(
            out["matches0"].cpu().numpy(), out["matching_scores0"].float().cpu().numpy()
        )


def build_superglue_matcher(config: Config) -> SuperGlueMatcher:
    """SuperGlue from superglue_<superglue.weights>.pth (WeightsNotFoundError when missing)."""
    device = resolve_device(config.text("device"))
    which = config.text("superglue.weights")
    conf = {
        "sinkhorn_iterations": config.integer("superglue.sinkhorn_iterations"),
        "match_threshold": config.number("superglue.match_threshold"),
        "precision": config.text("precision"),
    }
    model = load_superglue(which, config.text("weights_dir") or None, conf)
    return SuperGlueMatcher(model, device, which, cache_size_for(config))
