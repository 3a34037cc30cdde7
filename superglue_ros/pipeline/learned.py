"""SuperPoint frontend and SuperGlue matcher behind the pipeline's protocols.

Built from the pipeline's validated Config (``device``, ``precision``,
``weights_dir``, ``superpoint.*``, ``superglue.*``). Weights are looked up as
described in ``superglue_ros.models.weights`` (``weights_dir`` first); a missing
file raises ``WeightsNotFoundError`` naming every place looked. torch is
imported here, so this module is imported only when a learned component is built.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from superglue_ros.models.superglue import SuperGlue, pad_batch
from superglue_ros.models.superpoint import SuperPoint
from superglue_ros.models.weights import load_superglue, load_superpoint

from .params import Config, check_runtime_changes
from .types import Features, PairMatches


def cache_size_for(config: Config) -> int:
    """Device tensors kept per matcher: every buffered keyframe plus as many recent
    frames (a frame is cached when matched, and reused if it becomes a keyframe)."""
    return 2 * config.integer("keyframes.buffer_size")


class DeviceTensorCache:
    """Device tensors of Features objects, kept while the same object is in use.

    A keyframe is matched against every later frame: its tensors are built and
    copied to the device once. Entries are keyed by object id and hold the
    object, so an id cannot be reused while its entry exists; the least recently
    used entry goes first.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[int, tuple[Features, dict[str, torch.Tensor]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(
        self, features: Features, convert: Callable[[Features], dict[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        """The cached tensors of features, or convert(features), cached."""
        key = id(features)
        hit = self._entries.get(key)
        if hit is not None and hit[0] is features:
            self._entries.move_to_end(key)
            return hit[1]
        tensors = convert(features)
        self._entries[key] = (features, tensors)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return tensors


def resolve_device(name: str) -> torch.device:
    """'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N' -> torch.device."""
    name = str(name).strip()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(
            f"parameter 'device' must be auto, cpu, cuda or cuda:N; got {name!r}"
        ) from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"parameter 'device' is {name!r} but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"parameter 'device' is {name!r} but only {torch.cuda.device_count()} "
                "CUDA device(s) exist"
            )
    elif device.type != "cpu":
        raise ValueError(f"parameter 'device' must be auto, cpu, cuda or cuda:N; got {name!r}")
    return device


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


class SuperGlueMatcher:
    """Matcher: one frame against K keyframes in one padded, masked SuperGlue batch."""

    def __init__(
        self, model: SuperGlue, device: torch.device, weights: str, cache_size: int
    ) -> None:
        self.model = model.to(device).eval()
        self.device = device
        self.weights = weights
        self._cache = DeviceTensorCache(cache_size)

    @property
    def cache_size(self) -> int:
        return self._cache.size

    @property
    def description(self) -> str:
        return f"superglue({self.weights}) on {self.device} {self.model.conf['precision']}"

    def update_params(self, changes: Mapping[str, Any]) -> None:
        """Apply run-time changes (superglue.match_threshold); other names are ignored.

        ValueError (nothing applied) for a bad change, see check_runtime_changes.
        """
        checked = check_runtime_changes(changes)
        if "superglue.match_threshold" in checked:
            self.model.conf["match_threshold"] = float(checked["superglue.match_threshold"])

    def _tensors(self, features: Features) -> dict[str, torch.Tensor]:
        """Device tensors of one Features, cached while the same object is in use."""
        return self._cache.get(features, self._to_device)

    def _to_device(self, features: Features) -> dict[str, torch.Tensor]:
        descriptors = np.asarray(features.descriptors)
        dim = int(self.model.conf["descriptor_dim"])
        if descriptors.ndim != 2 or descriptors.shape[1] != dim or descriptors.dtype == np.uint8:
            raise ValueError(
                f"SuperGlue needs float descriptors [N, {dim}] (SuperPoint's), got "
                f"{descriptors.dtype} {descriptors.shape}"
            )
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
