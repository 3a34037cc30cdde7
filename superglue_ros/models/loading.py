"""Reading a checkpoint and loading it strictly: the one loader every network uses.

Every file, whichever network it is for and wherever it comes from, loads
strictly: each missing, unexpected or mis-shaped key is an error that names the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn


class WeightsMismatchError(ValueError):
    """A state dict does not fit the model: names every offending key."""


def read_state(path: str | Path, *, tensors_only: bool = True) -> dict:
    """A state dict from a .pth file (loaded on the CPU, no code run); with tensors_only,
    a ``state_dict`` entry is unwrapped and every value must be a tensor."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a bad file
        message = f"{path} is not a readable PyTorch checkpoint: {error}"
        raise WeightsMismatchError(message) from error
    if not tensors_only:
        if not isinstance(state, Mapping):
            raise WeightsMismatchError(f"{path} does not hold a state dict")
        return dict(state)
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise WeightsMismatchError(f"{path} does not hold a state dict of tensors")
    return dict(state)


def load_strict(
    module: nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str = "",
    error: type[WeightsMismatchError] = WeightsMismatchError,
) -> None:
    """module.load_state_dict(state, strict=True), with an error naming every bad key."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshaped = [
        f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped keys: {', '.join(misshaped)}")
    if problems:
        where = f" from {source}" if source else ""
        raise error(f"cannot load {type(module).__name__} weights{where}: " + "; ".join(problems))
    module.load_state_dict(dict(state), strict=True)
