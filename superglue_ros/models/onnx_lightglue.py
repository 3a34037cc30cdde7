"""LightGlue as ONNX graphs, batched over keyframes with padding masks, in two forms.

Every graph takes B padded pairs: side 0 the frame ([B, N, ...]), side 1 the
keyframes ([B, M, ...]), ``mask0`` [B, N] / ``mask1`` [B, M] bool marking real
points; B, N, M dynamic. Padded points are never attention keys and never
matched, as in ``models/lightglue.py``'s batched forward.

* Fixed depth, ``lightglue_<features>_fixed.onnx`` (for TensorRT, whose engines
  need a static graph): ``keypoints0`` [B, N, 2] pixels, ``descriptors0`` [B, N, D],
  ``image_size0`` [B, 2] (width, height), ``mask0``, the same for side 1, and
  ``filter_threshold`` (float32 scalar) -> ``matches0`` [B, N] int64 (-1: none),
  ``matching_scores0`` [B, N] float32. All layers, no early exit, no pruning: the
  torch model with depth_confidence and width_confidence at -1.
* Adaptive, folder ``lightglue_<features>_adaptive/``: the model cut where its
  data-dependent decisions are, so that the runtime (``pipeline/onnx_lightglue.py``)
  takes them exactly as the torch forward does (early exit per pair, point
  pruning, repacking of the batch):

  - ``encode.onnx``: ``keypoints`` [B, N, 2], ``descriptors`` [B, N, D],
    ``image_size`` [B, 2] -> ``desc`` [B, N, C] (input projection), ``encoding``
    [2, B, 1, N, C/H] (rotary positional encoding); run once per side;
  - ``layer_<i>.onnx``: ``desc0``, ``desc1``, ``encoding0``, ``encoding1``,
    ``mask0``, ``mask1`` -> ``updated0``, ``updated1`` after self and cross attention,
    and (all layers but the last) ``token0`` / ``token1`` (confidence, for early
    exit) and ``matchability0`` / ``matchability1`` (for pruning); attention is
    onnxruntime's fused ``com.microsoft.MultiHeadAttention`` (CPU and CUDA
    providers; under TensorRT those nodes fall back to CUDA);
  - ``assign_<i>.onnx``: ``desc0``, ``desc1``, ``mask0``, ``mask1``,
    ``filter_threshold`` -> ``matches0``, ``matching_scores0`` at layer i.

Metadata (``models/onnx_format.py``): the options that shaped the graphs
(features, sizes, layer index, form), the per-layer confidence thresholds and
the pruning point counts by device (so the runtime needs no torch), and the
SHA-256 of the weights file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from kornia.feature.lightglue import CrossBlock, SelfBlock, normalize_keypoints
from torch import nn

from .lightglue import BatchedLightGlue
from .onnx_export import DEFAULT_OPSET, export_graph
from .onnx_format import lightglue_adaptive_dir, lightglue_fixed_file

# Stands in for -inf in the similarity of padded points: exp() of it is exactly 0
# in float32, and a padded row stays finite (no NaN from a row of -inf).
PADDED_LOGIT = -1.0e9


def _indices(like: torch.Tensor) -> torch.Tensor:
    """0 .. n-1 along axis 1 of like [B, n], from its values (an arange of a
    size would be a constant of the exported graph)."""
    return (like * 0 + 1).cumsum(1) - 1


def _keys(mask: torch.Tensor) -> torch.Tensor:
    return mask[:, None, None, :]


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keys: torch.Tensor):
    """softmax(q k^T / sqrt(d)) v over the real keys ([B, 1, 1, n] mask), written out:
    torch's ONNX symbolic of scaled_dot_product_attention emits a Concat that
    onnxruntime rejects with a broadcast mask."""
    sim = torch.matmul(q, k.transpose(2, 3)) * q.shape[3] ** -0.5
    sim = sim.masked_fill(~keys, float("-inf"))
    return torch.matmul(sim.softmax(3), v)


class FusedAttention(torch.autograd.Function):
    """Attention over the real keys, exported as onnxruntime's fused
    com.microsoft MultiHeadAttention (it never holds all heads' N x M scores at once;
    on this CPU as fast as torch's SDPA, where the written-out form was about 2x
    slower). q [B, N, H*d], k / v [B, M, H*d] (head h in channels h*d..), keep [B, M]
    bool; the scale is 1/sqrt(d). Used by the adaptive form (CPU / CUDA providers);
    the fixed form keeps plain operators for TensorRT."""

    @staticmethod
    def forward(ctx, q, k, v, keep, heads: int, channels: int):
        split = [t.unflatten(2, (heads, -1)).transpose(1, 2) for t in (q, k, v)]
        return _attention(*split, _keys(keep)).transpose(1, 2).flatten(start_dim=2)

    @staticmethod
    def symbolic(g, q, k, v, keep, heads: int, channels: int):
        bias = g.op("Constant", value_t=torch.zeros(3 * channels))  # q, k, v biases: none
        mask = g.op("Cast", keep, to_i=6)  # int32 key padding mask, 1 = real key
        out = g.op("com.microsoft::MultiHeadAttention", q, k, v, bias, mask, num_heads_i=heads)
        out.setType(q.type())  # [B, N, H*d] float32, as q
        return out


def _heads_last(t: torch.Tensor) -> torch.Tensor:
    """[B, H, N, d] -> [B, N, H*d]."""
    return t.transpose(1, 2).flatten(start_dim=2)


def _rotary(encoding: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """kornia's apply_cached_rotary_emb with positive axes (t [B, H, N, d])."""
    pairs = t.unflatten(3, (-1, 2))
    rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=4).flatten(start_dim=3)
    return t * encoding[0] + rotated * encoding[1]


def self_block(
    block: SelfBlock, x: torch.Tensor, encoding: torch.Tensor, mask: torch.Tensor, fused: bool
) -> torch.Tensor:
    """kornia's SelfBlock.forward with _attention (or FusedAttention) and positive axes
    throughout (the exporter resolves some negative axes against a wrong rank)."""
    qkv = block.Wqkv(x).unflatten(2, (block.num_heads, -1, 3)).transpose(1, 2)
    q, k, v = qkv[:, :, :, :, 0], qkv[:, :, :, :, 1], qkv[:, :, :, :, 2]
    q, k = _rotary(encoding, q), _rotary(encoding, k)
    if fused:
        q, k, v = map(_heads_last, (q, k, v))
        context = FusedAttention.apply(q, k, v, mask, block.num_heads, block.Wqkv.in_features)
    else:
        context = _heads_last(_attention(q, k, v, _keys(mask)))
    message = block.out_proj(context)
    return x + block.ffn(torch.cat([x, message], 2))


def cross_block(block: CrossBlock, desc0, desc1, mask0, mask1, fused: bool):
    """models.lightglue.cross_attention (both directions) with _attention or FusedAttention."""
    qk0, qk1 = block.to_qk(desc0), block.to_qk(desc1)
    v0, v1 = block.to_v(desc0), block.to_v(desc1)
    if fused:
        m0 = FusedAttention.apply(qk0, qk1, v1, mask1, block.heads, block.to_qk.out_features)
        m1 = FusedAttention.apply(qk1, qk0, v0, mask0, block.heads, block.to_qk.out_features)
    else:
        split = [t.unflatten(2, (block.heads, -1)).transpose(1, 2) for t in (qk0, qk1, v0, v1)]
        m0 = _heads_last(_attention(split[0], split[1], split[3], _keys(mask1)))
        m1 = _heads_last(_attention(split[1], split[0], split[2], _keys(mask0)))
    m0, m1 = block.to_out(m0), block.to_out(m1)
    desc0 = desc0 + block.ffn(torch.cat([desc0, m0], 2))
    desc1 = desc1 + block.ffn(torch.cat([desc1, m1], 2))
    return desc0, desc1


def masked_matches(
    assignment: nn.Module,
    desc0: torch.Tensor,
    desc1: torch.Tensor,
    mask0: torch.Tensor,
    mask1: torch.Tensor,
    threshold: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """kornia's MatchAssignment + filter_matches on padded pairs, padding excluded.

    Returns matches0 [B, N] int64 (-1: none) and matching_scores0 [B, N] (0 where
    unmatched), what the torch forward writes for the real points of each pair.
    """
    mdesc0, mdesc1 = assignment.final_proj(desc0), assignment.final_proj(desc1)
    scale = mdesc0.shape[-1] ** 0.25
    sim = torch.einsum("bmd,bnd->bmn", mdesc0 / scale, mdesc1 / scale)
    valid = mask0[:, :, None] & mask1[:, None, :]
    sim = sim.masked_fill(~valid, PADDED_LOGIT)
    z0, z1 = assignment.matchability(desc0), assignment.matchability(desc1)
    certainties = F.logsigmoid(z0) + F.logsigmoid(z1).transpose(1, 2)
    scores = F.log_softmax(sim, 2) + F.log_softmax(sim, 1) + certainties
    scores = scores.masked_fill(~valid, float("-inf"))
    max0, max1 = scores.max(2), scores.max(1)
    m0, m1 = max0.indices, max1.indices
    mutual0 = _indices(m0) == m1.gather(1, m0)
    mscores0 = max0.values.exp().masked_fill(~(mutual0 & mask0), 0.0)
    matched = mutual0 & mask0 & (mscores0 > threshold)
    # -1 where unmatched by arithmetic: the exporter rewrote a -1 constant of this
    # graph into an axis (4) when it filled with -1.
    matches0 = (m0 + 1) * matched.to(m0.dtype) - 1
    return matches0, mscores0.masked_fill(~matched, 0.0)


class EncodeGraph(nn.Module):
    """One side: (keypoints, descriptors, image_size) -> (projected desc, encoding)."""

    def __init__(self, model: BatchedLightGlue) -> None:
        super().__init__()
        self.net = model.net

    def forward(
        self, keypoints: torch.Tensor, descriptors: torch.Tensor, image_size: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        normalised = normalize_keypoints(keypoints, image_size)
        return self.net.input_proj(descriptors), self.net.posenc(normalised)


def _layer(net: nn.Module, i: int, desc0, desc1, enc0, enc1, mask0, mask1, fused=False):
    layer = net.transformers[i]
    desc0 = self_block(layer.self_attn, desc0, enc0, mask0, fused)
    desc1 = self_block(layer.self_attn, desc1, enc1, mask1, fused)
    return cross_block(layer.cross_attn, desc0, desc1, mask0, mask1, fused)


class LayerGraph(nn.Module):
    """Transformer layer i, then (before the last layer) the heads the runtime decides on."""

    def __init__(self, model: BatchedLightGlue, i: int) -> None:
        super().__init__()
        self.net, self.i = model.net, i

    def forward(self, desc0, desc1, encoding0, encoding1, mask0, mask1):
        net, i = self.net, self.i
        desc0, desc1 = _layer(net, i, desc0, desc1, encoding0, encoding1, mask0, mask1, True)
        if i == net.conf.n_layers - 1:
            return desc0, desc1
        token0, token1 = net.token_confidence[i](desc0, desc1)
        assignment = net.log_assignment[i]
        return (
            desc0,
            desc1,
            token0,
            token1,
            assignment.get_matchability(desc0),
            assignment.get_matchability(desc1),
        )


class AssignGraph(nn.Module):
    """The assignment of layer i on padded pairs (see masked_matches)."""

    def __init__(self, model: BatchedLightGlue, i: int) -> None:
        super().__init__()
        self.assignment = model.net.log_assignment[i]

    def forward(self, desc0, desc1, mask0, mask1, filter_threshold):
        return masked_matches(self.assignment, desc0, desc1, mask0, mask1, filter_threshold)


class FixedGraph(nn.Module):
    """Every layer, no early exit or pruning: the fixed-depth form."""

    def __init__(self, model: BatchedLightGlue) -> None:
        super().__init__()
        self.encode = EncodeGraph(model)
        self.net = model.net

    def forward(
        self,
        keypoints0,
        descriptors0,
        image_size0,
        mask0,
        keypoints1,
        descriptors1,
        image_size1,
        mask1,
        filter_threshold,
    ):
        desc0, enc0 = self.encode(keypoints0, descriptors0, image_size0)
        desc1, enc1 = self.encode(keypoints1, descriptors1, image_size1)
        for i in range(self.net.conf.n_layers):
            desc0, desc1 = _layer(self.net, i, desc0, desc1, enc0, enc1, mask0, mask1)
        last = self.net.log_assignment[self.net.conf.n_layers - 1]
        return masked_matches(last, desc0, desc1, mask0, mask1, filter_threshold)


def lightglue_config(model: BatchedLightGlue, features: str, form: str) -> dict[str, Any]:
    """What the graphs of one form depend on besides the weights (JSON-ready)."""
    net = model.net
    return {
        "network": "lightglue",
        "features": features,
        "form": form,
        "input_dim": int(model.conf["input_dim"]),
        "descriptor_dim": int(model.conf["descriptor_dim"]),
        "n_layers": int(net.conf.n_layers),
        "num_heads": int(model.conf["num_heads"]),
        "confidence_thresholds": [float(v) for v in net.confidence_thresholds],
        "pruning_min_kpts": {
            "cpu": int(net.pruning_keypoint_thresholds["cpu"]),
            "cuda": int(net.pruning_keypoint_thresholds["cuda"]),
        },
    }


def _side_axes(side: str, points: str) -> dict[str, dict[int, str]]:
    return {
        f"keypoints{side}": {0: "B", 1: points},
        f"descriptors{side}": {0: "B", 1: points},
        f"image_size{side}": {0: "B"},
        f"mask{side}": {0: "B", 1: points},
    }


def _example_pairs(model: BatchedLightGlue) -> dict[str, torch.Tensor]:
    """Two padded pairs of random points (padding on side 1 of the second)."""
    generator = torch.Generator().manual_seed(0)
    dim = int(model.conf["input_dim"])
    batch, n, m = 2, 7, 6
    mask1 = torch.ones(batch, m, dtype=torch.bool)
    mask1[1, 4:] = False
    size = torch.tensor([[96.0, 64.0]] * batch)
    return {
        "keypoints0": torch.rand(batch, n, 2, generator=generator) * 60,
        "descriptors0": F.normalize(torch.randn(batch, n, dim, generator=generator), dim=-1),
        "image_size0": size,
        "mask0": torch.ones(batch, n, dtype=torch.bool),
        "keypoints1": torch.rand(batch, m, 2, generator=generator) * 60,
        "descriptors1": F.normalize(torch.randn(batch, m, dim, generator=generator), dim=-1),
        "image_size1": size,
        "mask1": mask1,
    }


def export_lightglue_fixed(
    model: BatchedLightGlue,
    features: str,
    directory: str | Path,
    sha256: str,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Write lightglue_<features>_fixed.onnx into directory."""
    model = model.float().eval()
    pairs = _example_pairs(model)
    axes = {**_side_axes("0", "N"), **_side_axes("1", "M"), "filter_threshold": {}}
    out_axes = {"matches0": {0: "B", 1: "N"}, "matching_scores0": {0: "B", 1: "N"}}
    return export_graph(
        FixedGraph(model),
        (*pairs.values(), torch.tensor(0.1)),
        Path(directory) / lightglue_fixed_file(features),
        axes,
        ("matches0", "matching_scores0"),
        out_axes,
        opset,
        ("lightglue_fixed", lightglue_config(model, features, "fixed"), sha256),
    )


def export_lightglue_adaptive(
    model: BatchedLightGlue,
    features: str,
    directory: str | Path,
    sha256: str,
    opset: int = DEFAULT_OPSET,
) -> list[Path]:
    """Write the folder lightglue_<features>_adaptive/ into directory (see module doc)."""
    model = model.float().eval()
    folder = Path(directory) / lightglue_adaptive_dir(features)
    config = lightglue_config(model, features, "adaptive")
    pairs = _example_pairs(model)
    with torch.no_grad():
        desc0, enc0 = EncodeGraph(model)(
            pairs["keypoints0"], pairs["descriptors0"], pairs["image_size0"]
        )
        desc1, enc1 = EncodeGraph(model)(
            pairs["keypoints1"], pairs["descriptors1"], pairs["image_size1"]
        )
    side = {"keypoints": {0: "B", 1: "N"}, "descriptors": {0: "B", 1: "N"}, "image_size": {0: "B"}}
    written = [
        export_graph(
            EncodeGraph(model),
            (pairs["keypoints0"], pairs["descriptors0"], pairs["image_size0"]),
            folder / "encode.onnx",
            side,
            ("desc", "encoding"),
            {"desc": {0: "B", 1: "N"}, "encoding": {1: "B", 3: "N"}},
            opset,
            ("lightglue_encode", config, sha256),
        )
    ]
    state = {
        "desc0": {0: "B", 1: "N"},
        "desc1": {0: "B", 1: "M"},
        "encoding0": {1: "B", 3: "N"},
        "encoding1": {1: "B", 3: "M"},
        "mask0": {0: "B", 1: "N"},
        "mask1": {0: "B", 1: "M"},
    }
    heads = {
        "token0": {0: "B", 1: "N"},
        "token1": {0: "B", 1: "M"},
        "matchability0": {0: "B", 1: "N"},
        "matchability1": {0: "B", 1: "M"},
    }
    example = (desc0, desc1, enc0, enc1, pairs["mask0"], pairs["mask1"])
    n_layers = config["n_layers"]
    for i in range(n_layers):
        outputs = {"updated0": state["desc0"], "updated1": state["desc1"]}
        if i < n_layers - 1:
            outputs |= heads
        written.append(
            export_graph(
                LayerGraph(model, i),
                example,
                folder / f"layer_{i}.onnx",
                state,
                tuple(outputs),
                outputs,
                opset,
                ("lightglue_layer", {**config, "layer": i}, sha256),
            )
        )
        written.append(
            export_graph(
                AssignGraph(model, i),
                (desc0, desc1, pairs["mask0"], pairs["mask1"], torch.tensor(0.1)),
                folder / f"assign_{i}.onnx",
                {k: state[k] for k in ("desc0", "desc1", "mask0", "mask1")}
                | {"filter_threshold": {}},
                ("matches0", "matching_scores0"),
                {"matches0": {0: "B", 1: "N"}, "matching_scores0": {0: "B", 1: "N"}},
                opset,
                ("lightglue_assign", {**config, "layer": i}, sha256),
            )
        )
    return written
