"""ALIKED and DISK as ONNX graphs with a dynamic image size.

What each graph holds, and why (shapes for one image; H, W dynamic):

* ``aliked_<model>_dense.onnx``: ``image`` [1, 3, Hp, Wp] float32 RGB in [0, 1],
  already replicate-padded by the runtime to multiples of 32 (the padding
  amounts are Python integers in kornia, which a trace would bake in) ->
  ``features`` [1, D, Hp, Wp] L2-normalised, ``scores`` [1, 1, Hp, Wp] in (0, 1).
  The deformable convolutions of blocks 3 and 4 are written with ``grid_sample``
  and every size (offset clamp, sampling grid) is read from the tensors, so one
  graph serves every image size.
* ``aliked_<model>_descriptors.onnx``: ``features`` [1, D, H, W] (cropped back to
  the image), ``keypoints`` [N, 2] normalised to [-1, 1] -> ``descriptors``
  [N, D] L2-normalised: ALIKED's deformable descriptor head (SDDH).
* ``disk_dense.onnx``: ``image`` [1, 3, Hp, Wp] zero-padded at the bottom and
  right to multiples of 16 -> ``heatmap`` [1, 1, Hp, Wp] (logits),
  ``descriptors`` [1, 128, Hp, Wp] (not normalised).

Keypoint detection (strict local maxima, border, top-k, ALIKED's soft-argmax
refinement) is left to the runtime (``pipeline/onnx_extractors.py``): its output
size depends on the data, and outside the graph every dense shape follows from
the image size alone, which is what TensorRT needs to build one engine.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from kornia.feature import ALIKED, DISK
from kornia.feature.aliked.aliked import SDDH, DeformableConv2d
from torch import nn

from .onnx_export import DEFAULT_OPSET, export_graph

ALIKED_PAD = 32  # ALIKED's input padder: multiples of 2**5
DISK_PAD = 16  # DISK's U-Net: multiples of 16


def _size(x: torch.Tensor, axis: int) -> torch.Tensor:
    """x.shape[axis] (axis 2 or 3 of [B, C, H, W]) as a float 0-d tensor counted from
    x's values: the exporter turns the shape of an intermediate tensor into a
    constant of the example's size."""
    line = x[0, 0, :, 0] if axis == 2 else x[0, 0, 0, :]
    return (line * 0 + 1).sum().to(torch.float32)


def _positions(line: torch.Tensor) -> torch.Tensor:
    """0, 1, ..., len(line) - 1 in line's dtype, computed from the values of line:
    torch.arange of a size, and ones_like, become constants of the exported graph."""
    return (line * 0 + 1).cumsum(0) - 1


def _grid(x_px: torch.Tensor, y_px: torch.Tensor, width: torch.Tensor, height: torch.Tensor):
    """Pixel positions -> grid_sample's [-1, 1] (align_corners=True) as [..., 2]."""
    return torch.stack([2.0 * x_px / (width - 1) - 1.0, 2.0 * y_px / (height - 1) - 1.0], -1)


class DeformConvGraph(nn.Module):
    """kornia's DeformableConv2d (DCNv1, one offset group) with sizes read from tensors.

    kornia's pure-torch sampler clamps with Python integers; here each kernel tap
    is one bilinear grid_sample with zero padding (a corner outside the map adds
    nothing, as in torchvision's kernel), then the taps are contracted with the
    weights.
    """

    def __init__(self, conv: DeformableConv2d) -> None:
        super().__init__()
        if conv.mask or conv.stride != 1 or conv.dilation != 1:
            raise ValueError("only ALIKED's unmasked, stride-1 deformable convolutions export")
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv
        height, width = _size(x, 2), _size(x, 3)
        max_offset = torch.maximum(height, width) / 4.0
        offset = conv.offset_conv(x).clamp(-max_offset, max_offset)
        weight = conv.regular_conv.weight  # [C_out, C_in, k, k]
        k = weight.shape[-1]
        channels = x.shape[1]
        offset = offset.unflatten(1, (k * k, 2))  # [B, K, 2 (dy, dx), H, W]
        rows = _positions(x[0, 0, :, 0])[:, None]
        cols = _positions(x[0, 0, 0, :])[None, :]
        taps = torch.arange(k, dtype=x.dtype) - conv.padding
        ky = taps.repeat_interleave(k).reshape(1, k * k, 1, 1)
        kx = taps.repeat(k).reshape(1, k * k, 1, 1)
        y = rows[None, None] + ky + offset[:, :, 0]  # [B, K, H, W]
        xs = cols[None, None] + kx + offset[:, :, 1]
        grid = _grid(xs, y, width, height).flatten(1, 2)  # [B, K*H, W, 2]
        sampled = F.grid_sample(x, grid, mode="bilinear", align_corners=True)
        sampled = sampled.unflatten(2, (k * k, -1))  # [B, C, K, H, W]
        out = torch.einsum("bckhw,ock->bohw", sampled, weight.reshape(-1, channels, k * k))
        if conv.regular_conv.bias is not None:
            out = out + conv.regular_conv.bias[None, :, None, None]
        return out


def _traceable(model: nn.Module) -> nn.Module:
    """A deep copy of model with every DeformableConv2d replaced by DeformConvGraph."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for attr, child in list(parent.named_children()):
            if isinstance(child, DeformableConv2d):
                setattr(parent, attr, DeformConvGraph(child))
    return model


class AlikedDenseGraph(nn.Module):
    """ALIKED's backbone and score head on a padded image (see the module doc)."""

    def __init__(self, model: ALIKED) -> None:
        super().__init__()
        self.model = _traceable(model)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        x1 = m.block1(image)
        x2 = m.block2(m.pool2(x1))
        x3 = m.block3(m.pool4(x2))
        x4 = m.block4(m.pool4(x3))
        dense = torch.cat(
            [
                m.gate(m.conv1(x1)),
                m.upsample2(m.gate(m.conv2(x2))),
                m.upsample8(m.gate(m.conv3(x3))),
                m.upsample32(m.gate(m.conv4(x4))),
            ],
            dim=1,
        )
        scores = torch.sigmoid(m.score_head(dense))
        return F.normalize(dense, p=2, dim=1), scores


class AlikedDescriptorGraph(nn.Module):
    """ALIKED's SDDH for one image: features [1, D, H, W], keypoints [N, 2] in [-1, 1]."""

    def __init__(self, head: SDDH) -> None:
        super().__init__()
        if head.mask or head.conv2d:
            raise ValueError("only ALIKED's SDDH without mask and conv2d aggregation exports")
        self.head = head

    def forward(self, features: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
        head = self.head
        height, width = _size(features, 2), _size(features, 3)
        wh = torch.stack([width - 1, height - 1])
        max_offset = torch.maximum(height, width) / 4.0
        ps = head.kernel_size
        pixels = (keypoints / 2 + 0.5) * wh  # [N, 2] (x, y)
        # kornia's get_patches: ps x ps windows from the truncated corner, kept inside.
        corner = (pixels.long() - ps / 2 + 1).long()
        limit = torch.stack([width, height]).long() - 1 - ps
        corner = torch.minimum(corner.clamp(min=0), limit)
        steps = torch.arange(ps)
        rows = corner[:, 1, None, None] + steps[None, :, None]  # [N, ps, 1]
        cols = corner[:, 0, None, None] + steps[None, None, :]  # [N, 1, ps]
        flat = features[0].flatten(1)  # [C, H*W]
        index = (rows * width.long() + cols).reshape(-1)
        patch = flat[:, index].unflatten(1, (-1, ps, ps)).transpose(0, 1)  # [N, C, ps, ps]
        offset = head.offset_conv(patch).clamp(-max_offset, max_offset)
        offset = offset[:, :, 0, 0].unflatten(1, (2, head.n_pos)).transpose(1, 2)  # [N, P, 2]
        pos = pixels[:, None] + offset
        grid = _grid(pos[..., 0], pos[..., 1], width, height)  # [N, P, 2]
        sampled = F.grid_sample(features, grid.reshape(1, -1, 1, 2), align_corners=True)
        sampled = sampled.reshape(features.shape[1], -1, head.n_pos, 1).permute(1, 0, 2, 3)
        sampled = torch.selu(head.sf_conv(sampled)).squeeze(-1)  # [N, C, P]
        descriptors = torch.einsum("ncp,pcd->nd", sampled, head.agg_weights)
        return F.normalize(descriptors, p=2.0, dim=1)


class DiskDenseGraph(nn.Module):
    """DISK's U-Net on a padded image: (heatmap [1, 1, Hp, Wp], descriptors [1, D, Hp, Wp])."""

    def __init__(self, model: DISK) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heatmap, descriptors = self.model.heatmap_and_dense_descriptors(image)
        return heatmap, descriptors


def export_aliked(
    model: ALIKED, name: str, directory: str | Path, sha256: str, opset: int = DEFAULT_OPSET
) -> list[Path]:
    """Write aliked_<name>_dense.onnx and aliked_<name>_descriptors.onnx into directory."""
    from .onnx_format import aliked_files, extractor_config

    model = model.float().eval()
    dense_file, desc_file = aliked_files(name)
    config = extractor_config("aliked", name)
    directory = Path(directory)
    dense = export_graph(
        AlikedDenseGraph(model),
        (torch.rand(1, 3, 64, 96),),
        directory / dense_file,
        {"image": {2: "height", 3: "width"}},
        ("features", "scores"),
        {"features": {2: "height", 3: "width"}, "scores": {2: "height", 3: "width"}},
        opset,
        ("aliked_dense", config, sha256),
    )
    generator = torch.Generator().manual_seed(0)
    example = (
        F.normalize(torch.randn(1, model.desc_head.sf_conv.in_channels, 40, 56), dim=1),
        torch.rand(7, 2, generator=generator) * 1.8 - 0.9,
    )
    desc = export_graph(
        AlikedDescriptorGraph(model.desc_head),
        example,
        directory / desc_file,
        {"features": {2: "height", 3: "width"}, "keypoints": {0: "N"}},
        ("descriptors",),
        {"descriptors": {0: "N"}},
        opset,
        ("aliked_descriptors", config, sha256),
    )
    return [dense, desc]


def export_disk(
    model: DISK, directory: str | Path, sha256: str, opset: int = DEFAULT_OPSET
) -> list[Path]:
    """Write disk_dense.onnx into directory."""
    from .onnx_format import DISK_DENSE_FILE, extractor_config

    axes = {2: "height", 3: "width"}
    path = export_graph(
        DiskDenseGraph(model.float().eval()),
        (torch.rand(1, 3, 64, 96),),
        Path(directory) / DISK_DENSE_FILE,
        {"image": axes},
        ("heatmap", "descriptors"),
        {"heatmap": axes, "descriptors": axes},
        opset,
        ("disk_dense", extractor_config("disk", "depth"), sha256),
    )
    return [path]
