"""SuperPoint keypoint detector and descriptor (DeTone et al., CVPRW 2018).

Computes what the authors' released PyTorch model computes, number for number in
float32, and loads their checkpoint (``superpoint_v1.pth``) unchanged: the
parameter names are those of the release (``conv1a`` ... ``convDb``).

Shapes: B images, H x W pixels, N keypoints, D descriptor channels. The score
map is produced at 1/8 resolution and unfolded to (8*floor(H/8)) x
(8*floor(W/8)) pixels, so the last H % 8 rows and W % 8 columns of an image
whose sides are not multiples of 8 never hold a keypoint (as in the release).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from superglue_ros.models.precision import PRECISIONS, autocast_for


def prepare_image(image: torch.Tensor) -> torch.Tensor:
    """Check and convert the network input.

    image: [B, 1, H, W], float in [0, 1] (any float dtype) or uint8 in [0, 255];
    may be non-contiguous. Returns a contiguous float32 [B, 1, H, W] tensor.
    """
    if not isinstance(image, torch.Tensor):
        raise ValueError(f"image must be a torch.Tensor of shape [B, 1, H, W], got {type(image)}")
    if image.dim() != 4:
        raise ValueError(
            f"image must have 4 dimensions [B, 1, H, W], got {image.dim()} "
            f"(shape {tuple(image.shape)})"
        )
    if image.shape[1] != 1:
        raise ValueError(
            f"image must have 1 channel (grayscale) [B, 1, H, W], got {image.shape[1]} "
            f"channels (shape {tuple(image.shape)})"
        )
    if image.shape[2] < 8 or image.shape[3] < 8:
        raise ValueError(f"image must be at least 8 x 8 pixels, got {tuple(image.shape[2:])}")
    if image.dtype == torch.uint8:
        return image.float().div_(255.0).contiguous()
    if not image.is_floating_point():
        raise ValueError(f"image must be float in [0, 1] or uint8, got dtype {image.dtype}")
    return image.float().contiguous()


WindowMax = Callable[[torch.Tensor, int], torch.Tensor]


def separable_window_max(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Maximum over each (2r+1)^2 window as a row pass then a column pass.

    Same result as one square max-pool, and faster. x: [B, H, W] -> [B, H, W].
    The pools run on [B, 1, H, W]: a 4-D input is what ONNX's MaxPool takes.
    """
    size = 2 * radius + 1
    x = F.max_pool2d(x[:, None], kernel_size=(1, size), stride=1, padding=(0, radius))
    return F.max_pool2d(x, kernel_size=(size, 1), stride=1, padding=(radius, 0))[:, 0]


def simple_nms(
    scores: torch.Tensor, radius: int, window_max: WindowMax = separable_window_max
) -> torch.Tensor:
    """Zero every score that is not the maximum of its (2r+1)^2 window.

    Two extra rounds revive maxima that only lost to a suppressed neighbour.
    scores: [B, H, W] -> [B, H, W].
    """
    if radius < 0:
        raise ValueError(f"nms_radius must be >= 0, got {radius}")
    zeros = torch.zeros_like(scores)
    is_max = scores == window_max(scores, radius)
    for _ in range(2):
        suppressed = window_max(is_max.float(), radius) > 0
        remaining = torch.where(suppressed, zeros, scores)
        is_new_max = remaining == window_max(remaining, radius)
        is_max = is_max | (is_new_max & ~suppressed)
    return torch.where(is_max, scores, zeros)


def select_keypoints(
    scores: torch.Tensor, threshold: float, border: int, max_keypoints: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoints of one score map: above threshold, off the border, best max_keypoints.

    scores: [H, W] (after NMS). Returns (keypoints [N, 2] float (x, y), scores [N]).
    Candidates are taken in raster order; with a limit they come out sorted by
    decreasing score (``torch.topk``), as in the release.
    """
    height, width = scores.shape
    candidates = scores > threshold
    if border > 0:
        inside = torch.zeros_like(candidates)
        inside[border : height - border, border : width - border] = True
        candidates &= inside
    rows_cols = torch.nonzero(candidates)  # [N, 2] (row, col)
    kept = scores[rows_cols[:, 0], rows_cols[:, 1]]
    if 0 <= max_keypoints < len(kept):
        kept, order = torch.topk(kept, max_keypoints, dim=0)
        rows_cols = rows_cols[order]
    return rows_cols.flip(1).float(), kept


def sample_descriptors(
    keypoints: torch.Tensor, descriptors: torch.Tensor, stride: int = 8
) -> torch.Tensor:
    """Bilinearly interpolate a dense descriptor map at pixel keypoints, then L2-normalise.

    keypoints: [N, 2] pixel (x, y); descriptors: [D, h, w] at 1/stride resolution.
    Returns [D, N]. Pixel centre p maps to cell coordinate (p - stride/2 + 0.5)
    over (size*stride - stride/2 - 0.5) with align_corners=True (the release's
    convention).
    """
    dim, h, w = descriptors.shape
    if keypoints.shape[0] == 0:
        return descriptors.new_zeros(dim, 0)
    extent = keypoints.new_tensor([w * stride - stride / 2 - 0.5, h * stride - stride / 2 - 0.5])
    grid = (keypoints - stride / 2 + 0.5) / extent * 2 - 1
    sampled = F.grid_sample(
        descriptors[None], grid.view(1, 1, -1, 2), mode="bilinear", align_corners=True
    )
    return F.normalize(sampled.reshape(dim, -1), p=2, dim=0)


class SuperPoint(nn.Module):
    """SuperPoint: a VGG-style encoder with a keypoint head and a descriptor head.

    forward({"image": [B, 1, H, W]}) -> {"keypoints": B x [N_i, 2] (x, y) float32,
    "scores": B x [N_i], "descriptors": B x [D, N_i] unit columns}.
    """

    default_conf: dict[str, Any] = {
        "descriptor_dim": 256,  # channels of the descriptor head (256 in the release)
        "nms_radius": 4,  # non-maximum suppression radius, pixels
        "keypoint_threshold": 0.005,  # minimum detector score (softmax probability)
        "max_keypoints": -1,  # keep the best N keypoints per image; -1 keeps all
        "remove_borders": 4,  # drop keypoints closer than this to the border, pixels
        "precision": "fp32",  # fp32 | fp16 | bf16 (autocast on the input's device)
    }

    def __init__(self, conf: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.conf = {**self.default_conf, **(conf or {})}
        unknown = sorted(set(self.conf) - set(self.default_conf))
        if unknown:
            raise ValueError(f"unknown SuperPoint option(s): {', '.join(unknown)}")
        limit = self.conf["max_keypoints"]
        if limit == 0 or limit < -1:
            raise ValueError(f"max_keypoints must be positive or -1, got {limit}")
        if self.conf["precision"] not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")

        def conv(cin: int, cout: int, size: int = 3) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, kernel_size=size, stride=1, padding=size // 2)

        c1, c2, c3, c4, c5 = 64, 64, 128, 128, 256
        self.conv1a, self.conv1b = conv(1, c1), conv(c1, c1)
        self.conv2a, self.conv2b = conv(c1, c2), conv(c2, c2)
        self.conv3a, self.conv3b = conv(c2, c3), conv(c3, c3)
        self.conv4a, self.conv4b = conv(c3, c4), conv(c4, c4)
        self.convPa, self.convPb = conv(c4, c5), conv(c5, 65, 1)
        self.convDa, self.convDb = conv(c4, c5), conv(c5, self.conf["descriptor_dim"], 1)
        # Channels-last convolutions are ~1.6x faster with oneDNN on CPU (and suit tensor
        # cores on CUDA); the layout survives .to(device) and load_state_dict.
        self.to(memory_format=torch.channels_last)
        self.eval()

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Dense outputs. image: [B, 1, H, W] float32.

        Returns (scores [B, 8h, 8w] float32 before NMS, descriptors [B, D, h, w]
        float32 L2-normalised), h = floor(H/8), w = floor(W/8).
        """
        x = image.contiguous(memory_format=torch.channels_last)
        for first, second in (
            (self.conv1a, self.conv1b),
            (self.conv2a, self.conv2b),
            (self.conv3a, self.conv3b),
        ):
            x = F.relu_(second(F.relu_(first(x))))
            x = F.max_pool2d(x, kernel_size=2, stride=2)
        x = F.relu_(self.conv4b(F.relu_(self.conv4a(x))))

        logits = self.convPb(F.relu_(self.convPa(x))).float()
        prob = logits.softmax(dim=1)[:, :-1]  # drop the "no keypoint" bin
        b, _, h, w = prob.shape
        # channel c of cell (i, j) is pixel (8i + c // 8, 8j + c % 8)
        scores = prob.reshape(b, 8, 8, h, w).permute(0, 3, 1, 4, 2).reshape(b, h * 8, w * 8)

        descriptors = self.convDb(F.relu_(self.convDa(x))).float()
        return scores, F.normalize(descriptors, p=2, dim=1)

    def forward(self, data: dict[str, torch.Tensor]) -> dict[str, list[torch.Tensor]]:
        """data["image"]: [B, 1, H, W] float in [0, 1] or uint8.

        Returns lists of length B: keypoints [N_i, 2] (x, y), scores [N_i],
        descriptors [D, N_i].
        """
        if "image" not in data:
            raise ValueError("SuperPoint input must hold 'image' ([B, 1, H, W])")
        image = prepare_image(data["image"])
        with autocast_for(image.device, self.conf["precision"]):
            dense_scores, dense_desc = self.encode(image)
        dense_scores = simple_nms(dense_scores, int(self.conf["nms_radius"]))

        keypoints, scores, descriptors = [], [], []
        for score_map, desc_map in zip(dense_scores, dense_desc, strict=True):
            kpts, kscores = select_keypoints(
                score_map,
                float(self.conf["keypoint_threshold"]),
                int(self.conf["remove_borders"]),
                int(self.conf["max_keypoints"]),
            )
            keypoints.append(kpts)
            scores.append(kscores)
            descriptors.append(sample_descriptors(kpts, desc_map, 8))
        return {"keypoints": keypoints, "scores": scores, "descriptors": descriptors}

    @torch.inference_mode()
    def extract(self, image: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """Inference entry point: forward() without autograd bookkeeping."""
        return self.forward({"image": image})
