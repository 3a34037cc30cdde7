"""What the torch adapters share: the device, the device-tensor cache, matcher plumbing.

torch is imported here, so this module (like every adapter in frontends/ and
matchers/ but the classical ones) is imported only when a learned component is built.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from .params import Config, check_runtime_changes
from .types import Features


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


def checked_descriptors(features: Features, dim: int, who: str, whose: str = "") -> np.ndarray:
    """features' [N, dim] float descriptors; ValueError saying what ``who`` needs."""
    descriptors = np.asarray(features.descriptors)
    if descriptors.ndim != 2 or descriptors.shape[1] != dim or descriptors.dtype == np.uint8:
        raise ValueError(
            f"{who} needs float descriptors [N, {dim}]{whose}, got "
            f"{descriptors.dtype} {descriptors.shape}"
        )
    return descriptors


class CachedTorchMatcher:
    """Base of the torch matchers: the model on its device, the cache of device tensors
    (``_to_device`` converts one Features) and the run-time thresholds.

    ``RUNTIME_PARAMS`` maps a run-time parameter to the model conf key it sets.
    """

    RUNTIME_PARAMS: Mapping[str, str] = {}

    def __init__(self, model: torch.nn.Module, device: torch.device, cache_size: int) -> None:
        self.model = model.to(device).eval()
        self.device = device
        self._cache = DeviceTensorCache(cache_size)

    @property
    def cache_size(self) -> int:
        return self._cache.size

    def update_params(self, changes: Mapping[str, Any]) -> None:
        """Apply run-time changes (the RUNTIME_PARAMS); other names are ignored.

        ValueError (nothing applied) for a bad change, see check_runtime_changes.
        """
        checked = check_runtime_changes(changes)
        for name, key in self.RUNTIME_PARAMS.items():
            if name in checked:
                self.model.conf[key] = float(checked[name])

    def _tensors(self, features: Features) -> dict[str, torch.Tensor]:
        """Device tensors of one Features, cached while the same object is in use."""
        return self._cache.get(features, self._to_device)

    def _to_device(self, features: Features) -> dict[str, torch.Tensor]:
        raise NotImplementedError
