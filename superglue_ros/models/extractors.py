"""ALIKED and DISK keypoint extractors: kornia's networks, the released files loaded strictly.

Both take RGB images and return, per image, keypoints (x, y) in pixels (pixel
centres at integers), scores and L2-normalised descriptors. kornia computes
them; this module only builds the networks from the verified files and wraps
their calls into one dict-in / dict-out function per model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from kornia.feature import ALIKED, DISK
from kornia.feature.aliked.aliked import InputPadder

from superglue_ros.models.lightglue import LightGlueWeightsError
from superglue_ros.models.loading import load_strict
from superglue_ros.models.superpoint import autocast_for

ALIKED_MODELS = ("n16", "n16rot", "n32", "t16")

aliked_default_conf: dict[str, Any] = {
    "model": "n16",  # n16 | n16rot | n32 | t16 (kornia's aliked-<model>)
    "max_keypoints": 1024,  # keep at most this many keypoints (-1: up to kornia's 20000)
    "detection_threshold": 0.0,  # > 0: keep maxima above it; <= 0: the max_keypoints best
    "nms_radius": 2,  # suppression radius of the score map (px)
    "precision": "fp32",  # fp32 | fp16 | bf16 (autocast on the input's device)
}

disk_default_conf: dict[str, Any] = {
    "max_keypoints": 1024,  # keep at most the this many strongest maxima (-1: all)
    "nms_window": 5,  # side of the suppression window (px)
    "score_threshold": 0.0,  # keep heatmap maxima strictly above this logit
    "precision": "fp32",  # fp32 | fp16 | bf16 (autocast on the input's device)
}

# ALIKED's soft-argmax grid is derived from nms_radius; the released files do not hold it.
ALIKED_DERIVED_BUFFERS = ("dkd.hw_grid",)


class LeanALIKED(ALIKED):
    """kornia's ALIKED with a dense map that holds one full-resolution feature map.

    kornia's extract_dense_map keeps the four upsampled branches, their
    concatenation and its normalised copy alive together: at 1226 x 370 about
    0.75 GB for ALIKED-n16's 128 channels, the largest allocation of the learned
    frontend. Here each branch is written into one preallocated map, the score
    head reads it, and it is normalised in place: the same operations on the
    same values (outputs equal to kornia's), at about a third of the memory.
    """

    def extract_dense_map(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image [B, 3, H, W] -> L2-normalised features [B, dim, H, W], scores [B, 1, H, W]."""
        padder = InputPadder(image.shape[-2], image.shape[-1], 2**5)
        x1 = self.block1(padder.pad(image))
        x2 = self.block2(self.pool2(x1))
        x3 = self.block3(self.pool4(x2))
        x4 = self.block4(self.pool4(x3))
        # The three coarse branches are small; upsampled, each is a quarter of the map.
        coarse = [
            (self.gate(self.conv2(x2)), self.upsample2),
            (self.gate(self.conv3(x3)), self.upsample8),
            (self.gate(self.conv4(x4)), self.upsample32),
        ]
        del x2, x3, x4
        fine = self.gate(self.conv1(x1))
        del x1
        dtype = fine.dtype
        for branch, _ in coarse:
            dtype = torch.promote_types(dtype, branch.dtype)
        quarter = fine.shape[1]
        dense = fine.new_empty(fine.shape[0], 4 * quarter, *fine.shape[2:], dtype=dtype)
        dense[:, :quarter] = fine
        del fine
        for j, (branch, upsample) in enumerate(coarse, start=1):
            dense[:, j * quarter : (j + 1) * quarter] = upsample(branch)
        del coarse
        score_map = torch.sigmoid(self.score_head(dense))
        # F.normalize(dense, dim=1) computed in place: dense / max(||dense||, eps).
        dense.div_(dense.norm(p=2, dim=1, keepdim=True).clamp_min_(1e-12))
        return padder.unpad(dense), padder.unpad(score_map)


def build_aliked(
    state: Mapping[str, torch.Tensor], conf: Mapping[str, Any] | None = None, source: str = ""
) -> ALIKED:
    """kornia's ALIKED in eval mode with the released state dict loaded strictly.

    Only the derived buffer dkd.hw_grid may be absent from the file (it is kept
    as the model computes it from nms_radius).
    """
    conf = {**aliked_default_conf, **(conf or {})}
    if conf["model"] not in ALIKED_MODELS:
        raise ValueError(f"ALIKED model must be one of {', '.join(ALIKED_MODELS)}")
    model = LeanALIKED(
        model_name=f"aliked-{conf['model']}",
        max_num_keypoints=int(conf["max_keypoints"]),
        detection_threshold=float(conf["detection_threshold"]),
        nms_radius=int(conf["nms_radius"]),
    )
    own = model.state_dict()
    full = dict(state)
    for name in ALIKED_DERIVED_BUFFERS:
        if name in full:
            raise LightGlueWeightsError(f"{source or 'ALIKED file'} unexpectedly holds {name}")
        full[name] = own[name]
    load_strict(model, full, source, LightGlueWeightsError)
    return model.eval()


def build_disk(state: Mapping[str, torch.Tensor], source: str = "") -> DISK:
    """kornia's DISK in eval mode; state is the release's {'extractor': state dict} or the dict."""
    if "extractor" in state:
        state = state["extractor"]
    model = DISK()
    load_strict(model, state, source, LightGlueWeightsError)
    return model.eval()


@torch.inference_mode()
def extract_aliked(
    model: ALIKED, image: torch.Tensor, precision: str = "fp32"
) -> dict[str, torch.Tensor]:
    """image: [1, 3, H, W] float RGB in [0, 1].

    Returns keypoints [N, 2] float32 pixels (x, y), scores [N] float32,
    descriptors [N, D] float32 (L2-normalised).
    """
    with autocast_for(image.device, precision):
        features = model(image)[0]
    return {
        "keypoints": features.keypoints.float(),
        "scores": features.keypoint_scores.float(),
        "descriptors": features.descriptors.float(),
    }


@torch.inference_mode()
def extract_disk(
    model: DISK, image: torch.Tensor, conf: Mapping[str, Any], precision: str = "fp32"
) -> dict[str, torch.Tensor]:
    """image: [1, 3, H, W] float RGB in [0, 1]; any size (zero-padded to multiples of 16).

    Returns keypoints [N, 2] float32 pixels (x, y), scores [N] float32 (heatmap
    logits), descriptors [N, D] float32 (L2-normalised).
    """
    limit = int(conf["max_keypoints"])
    with autocast_for(image.device, precision):
        features = model(
            image,
            n=limit if limit > 0 else None,
            window_size=int(conf["nms_window"]),
            score_threshold=float(conf["score_threshold"]),
            pad_if_not_divisible=True,
        )[0]
    return {
        "keypoints": features.keypoints.float(),
        "scores": features.detection_scores.float(),
        "descriptors": features.descriptors.float(),
    }
