"""One frame against K keyframes as one padded, masked batch: shared by the batched matchers.

Keyframes hold different numbers of points. Each is zero-padded to the longest,
and ``mask1`` marks the real points, which the matchers use to keep padding out
of attention and assignment, so a batch gives the pair-by-pair result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

# Per-side tensor names -> the matchers' input names ("kpts" -> keypoints0 / keypoints1).
INPUT_NAMES = {"kpts": "keypoints", "scores": "scores", "desc": "descriptors"}


def pad_keyframes(
    frame: Mapping[str, torch.Tensor],
    keyframes: Sequence[Mapping[str, torch.Tensor]],
    point_axes: Mapping[str, int],
) -> dict[str, torch.Tensor]:
    """The matcher input for the frame (side 0) against every keyframe (side 1).

    frame, keyframes[i]: tensors named by point_axes ("kpts", "scores", "desc"),
    whose axis point_axes[name] indexes the points; keyframes differ only in that
    axis. Returns, for each name, <input>0 [K, ...] (the frame repeated, as views)
    and <input>1 [K, ...] with the point axis padded with zeros to M, the largest
    keyframe, and mask1 [K, M], False on padding. Image sizes are the caller's.
    """
    count = len(keyframes)
    sizes = [keyframe["kpts"].shape[0] for keyframe in keyframes]
    width = max(sizes)
    data: dict[str, torch.Tensor] = {}
    for name, axis in point_axes.items():
        side0 = frame[name]
        data[f"{INPUT_NAMES[name]}0"] = side0[None].expand(count, *side0.shape)
        shape = list(side0.shape)
        shape[axis] = width
        padded = side0.new_zeros(count, *shape)
        for i, (keyframe, size) in enumerate(zip(keyframes, sizes, strict=True)):
            padded[i].narrow(axis, 0, size).copy_(keyframe[name])
        data[f"{INPUT_NAMES[name]}1"] = padded
    mask1 = torch.zeros(count, width, dtype=torch.bool, device=frame["kpts"].device)
    for i, size in enumerate(sizes):
        mask1[i, :size] = True
    data["mask1"] = mask1
    return data
