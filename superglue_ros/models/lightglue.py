"""LightGlue (Lindenberger, Sarlin, Pollefeys, ICCV 2023), one frame against K keyframes.

The network is kornia's ``kornia.feature.LightGlue`` (its modules, their
parameters and the released checkpoints' layout). What kornia lacks, and this
module adds, is a forward over a *padded* batch of pairs that keeps LightGlue's
adaptive computation per pair:

* ``mask0`` / ``mask1`` mark the real points of each pair; padded points are
  never attention keys (their own rows hold values nothing reads).
* Early exit (``depth_confidence``): after each layer every pair checks its own
  criterion (its unconfident real points against its own point count, as a lone
  pair does); a pair that stops is finished at that layer and leaves the batch.
* Point pruning (``width_confidence``): every pair prunes its own points by its
  own matchability and confidence, then the batch is repacked to the longest
  remaining pair, so pruned points cost nothing.
* The assignment of a finished pair is computed on its real points only, with
  kornia's ``MatchAssignment`` and ``filter_matches``.
* Attention never holds an N x M matrix: self and cross attention go through
  ``scaled_dot_product_attention`` with a [B, 1, 1, keys] padding mask (kornia's
  CPU cross attention forms the similarity and its softmaxes, 1.3 GB for four
  pairs of 2048 points). Only the assignment of one finished pair is N x M.

So each pair of a batch gives the matches it gives alone in kornia's own
forward (tested on real images: the same matches in fp32). kornia itself runs a
pruning batch pair by pair and stops a batch only when every pair may stop.

Shapes: B pairs, N points on side 0 (the frame), M on side 1 (keyframes),
D descriptor channels.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from kornia.feature.lightglue import CrossBlock, filter_matches, normalize_keypoints
from kornia.feature.lightglue import LightGlue as KorniaLightGlue

from superglue_ros.models.loading import WeightsMismatchError, load_strict
from superglue_ros.models.superpoint import autocast_for

default_conf: dict[str, Any] = {
    "input_dim": 256,  # descriptor length of the features (128 for ALIKED and DISK)
    "descriptor_dim": 256,  # width of the transformer (the released files: 256)
    "n_layers": 9,  # transformer layers (the released files: 9)
    "num_heads": 4,  # attention heads
    "depth_confidence": 0.95,  # early exit once this share of points is confident; -1: off
    "width_confidence": 0.99,  # prune points unlikely to match; -1: off
    "filter_threshold": 0.1,  # minimum match score
    "precision": "fp32",  # fp32 | fp16 | bf16 (autocast on the input's device)
}

# Released checkpoints name the attention blocks self_attn.<i> / cross_attn.<i>;
# kornia's module tree has them under transformers.<i>.
_OLD_BLOCK_KEY = re.compile(r"^(self_attn|cross_attn)\.(\d+)\.")
# Older releases carry an unused per-layer scalar log_assignment.<i>.r; it is
# dropped only when it is exactly 1 (a no-op), anything else is an error.
_UNUSED_SCALE_KEY = re.compile(r"^log_assignment\.\d+\.r$")
# Buffers the model derives from its configuration; the files do not hold them.
DERIVED_BUFFERS = ("confidence_thresholds",)


BATCHINGS = ("auto", "batched", "loop")
# auto on CPU: one batch only while a padded pair holds at most this many points
# (N + M); measured with `superglue-ros bench-lightglue` (docs/models.md).
CPU_BATCH_MAX_POINTS = 1024
# Activations of one transformer layer, in descriptor-widths (D values) per point,
# as measured for the batched forward in fp32 (about 13; rounded up).
LAYER_WIDTHS_PER_POINT = 16


def batch_bytes(points: int, dim: int, element_size: int) -> int:
    """Estimated working set of a batched forward over pairs holding `points`
    padded points together (sum of N + M over the pairs): one layer's
    activations. Attention adds nothing quadratic (fused SDPA)."""
    return points * dim * element_size * LAYER_WIDTHS_PER_POINT


def plan_batches(
    device: torch.device,
    batching: str,
    count0: int,
    counts1: list[int],
    budget_bytes: float,
    dim: int,
    element_size: int,
) -> list[list[int]]:
    """Groups of keyframe indices, each run as one padded forward, in order.

    batching: loop -> one pair per group; batched -> as few groups as the
    memory budget allows (consecutive keyframes, each group padded to its
    longest; budget_bytes <= 0: no limit); auto -> batched on an accelerator,
    and on CPU batched only while every padded pair holds at most
    CPU_BATCH_MAX_POINTS points (larger pairs keep both cores busy alone and
    the padding only costs), else loop.
    """
    if batching not in BATCHINGS:
        raise ValueError(f"batching must be one of {', '.join(BATCHINGS)}; got {batching!r}")
    indices = list(range(len(counts1)))
    if batching == "auto":
        small = count0 + max(counts1, default=0) <= CPU_BATCH_MAX_POINTS
        batching = "batched" if device.type != "cpu" or small else "loop"
    if batching == "loop":
        return [[i] for i in indices]
    groups: list[list[int]] = []
    for i in indices:
        if groups:
            group = groups[-1] + [i]
            width = count0 + max(counts1[j] for j in group)
            fits = budget_bytes <= 0 or batch_bytes(len(group) * width, dim, element_size) <= (
                budget_bytes
            )
            if fits:
                groups[-1] = group
                continue
        groups.append([i])
    return groups


class LightGlueWeightsError(WeightsMismatchError):
    """A LightGlue state dict that does not fit: names the offending keys."""


def rename_released_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a released LightGlue state dict onto kornia's module names.

    self_attn.<i>.* -> transformers.<i>.self_attn.* (likewise cross_attn); drops
    the unused log_assignment.<i>.r scalars when they are 1.
    """
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if _UNUSED_SCALE_KEY.match(key):
            if value.numel() != 1 or float(value.reshape(-1)[0]) != 1.0:
                raise LightGlueWeightsError(f"unexpected key {key} with a value other than 1")
            continue
        renamed[_OLD_BLOCK_KEY.sub(r"transformers.\2.\1.", key)] = value
    return renamed


def conf_from_state(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """input_dim, descriptor_dim and n_layers implied by a (renamed) state dict."""
    if "posenc.Wr.weight" not in state or "log_assignment.0.final_proj.weight" not in state:
        raise LightGlueWeightsError(
            "not a LightGlue state dict: missing posenc.Wr.weight or log_assignment.0.*"
        )
    dim = int(state["log_assignment.0.final_proj.weight"].shape[0])
    proj = state.get("input_proj.weight")
    layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("log_assignment."))
    return {
        "descriptor_dim": dim,
        "input_dim": int(proj.shape[1]) if proj is not None else dim,
        "n_layers": layers,
    }


def _flash_sdp_kept(build: Any) -> Any:
    """Call build() and restore torch's process-wide flash-SDP flag that kornia's
    Attention sets in its constructor."""
    flag = torch.backends.cuda.flash_sdp_enabled()
    try:
        return build()
    finally:
        torch.backends.cuda.enable_flash_sdp(flag)


def build_lightglue(
    state: Mapping[str, torch.Tensor], conf: Mapping[str, Any] | None = None, source: str = ""
) -> BatchedLightGlue:
    """A LightGlue in eval mode with the released state dict loaded strictly.

    Every key of the model must be in the file, except the derived buffers
    (DERIVED_BUFFERS, kept as the model computes them); every key of the file
    must be used.
    """
    state = rename_released_keys(state)
    conf = {**default_conf, **conf_from_state(state), **(conf or {})}
    model = _flash_sdp_kept(
        lambda: KorniaLightGlue(
            features=None,
            input_dim=conf["input_dim"],
            descriptor_dim=conf["descriptor_dim"],
            n_layers=conf["n_layers"],
            num_heads=conf["num_heads"],
            flash=False,
            depth_confidence=conf["depth_confidence"],
            width_confidence=conf["width_confidence"],
            filter_threshold=conf["filter_threshold"],
        )
    )
    own = model.state_dict()
    full = dict(state)
    for name in DERIVED_BUFFERS:
        if name not in full:
            full[name] = own[name]
    load_strict(model, full, source, LightGlueWeightsError)
    return BatchedLightGlue(model.eval(), conf)


@dataclass
class _Batch:
    """The pairs still running, padded: index into the original batch and their tensors."""

    pairs: torch.Tensor  # [b] original pair index
    desc0: torch.Tensor  # [b, n, C]
    desc1: torch.Tensor  # [b, m, C]
    enc0: torch.Tensor  # [2, b, 1, n, C/H] rotary encoding
    enc1: torch.Tensor
    valid0: torch.Tensor  # [b, n] bool: real, unpruned point
    valid1: torch.Tensor
    index0: torch.Tensor  # [b, n] original point index (-1 on padding)
    index1: torch.Tensor
    total: torch.Tensor  # [b] real points of both sides before pruning

    def select(self, keep: torch.Tensor) -> _Batch:
        """The pairs where keep ([b] bool) is True."""
        return _Batch(
            self.pairs[keep],
            self.desc0[keep],
            self.desc1[keep],
            self.enc0[:, keep],
            self.enc1[:, keep],
            self.valid0[keep],
            self.valid1[keep],
            self.index0[keep],
            self.index1[keep],
            self.total[keep],
        )


def _repack(
    keep: torch.Tensor, desc: torch.Tensor, enc: torch.Tensor, index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Move each pair's kept points to the front (order kept), trim to the longest.

    keep: [b, n] bool. Returns desc [b, n', C], enc [2, b, 1, n', c], valid [b, n'],
    index [b, n'].
    """
    counts = keep.sum(1)
    width = int(counts.max()) if counts.numel() else 0
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :width]
    valid = torch.arange(width, device=keep.device)[None] < counts[:, None]
    desc = desc.gather(1, order[..., None].expand(-1, -1, desc.shape[-1]))
    gather_enc = order[None, :, None, :, None].expand(enc.shape[0], -1, 1, -1, enc.shape[-1])
    enc = enc.gather(3, gather_enc)
    index = torch.where(valid, index.gather(1, order), -1)
    return desc, enc, valid, index


def _key_mask(valid: torch.Tensor) -> torch.Tensor | None:
    """[b, 1, 1, n] attention mask keeping the real points as keys; None without padding.

    Only keys are masked: a padded query's row is never read, so a mask over
    queries as well (an [n, n] tensor per pair) would only cost memory.
    """
    return None if bool(valid.all()) else valid[:, None, None, :]


def cross_attention(
    block: CrossBlock,
    desc0: torch.Tensor,
    desc1: torch.Tensor,
    keys0: torch.Tensor | None,
    keys1: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """kornia's CrossBlock with both directions through scaled_dot_product_attention.

    kornia's CPU path forms the [b, H, N, M] similarity, two softmaxes of it and
    a transposed copy (five N x M tensors a head); two fused attention calls
    (side 0 asking side 1 and the reverse) never hold an N x M matrix, at the
    price of computing the similarity twice. Same weights, same arithmetic up
    to rounding: SDPA's 1/sqrt(d) scale is kornia's scale**0.5 on each side.
    desc0 [b, n, D], desc1 [b, m, D]; keys0 / keys1: see _key_mask.
    """
    qk0, qk1 = block.to_qk(desc0), block.to_qk(desc1)
    v0, v1 = block.to_v(desc0), block.to_v(desc1)
    qk0, qk1, v0, v1 = (
        t.unflatten(-1, (block.heads, -1)).transpose(1, 2).contiguous() for t in (qk0, qk1, v0, v1)
    )
    m0 = F.scaled_dot_product_attention(qk0, qk1, v1, attn_mask=keys1)
    m1 = F.scaled_dot_product_attention(qk1, qk0, v0, attn_mask=keys0)
    m0, m1 = (block.to_out(t.transpose(1, 2).flatten(start_dim=-2)) for t in (m0, m1))
    desc0 = desc0 + block.ffn(torch.cat([desc0, m0], -1))
    desc1 = desc1 + block.ffn(torch.cat([desc1, m1], -1))
    return desc0, desc1


class BatchedLightGlue(torch.nn.Module):
    """kornia's LightGlue run over padded pairs with per-pair early exit and pruning."""

    def __init__(self, net: KorniaLightGlue, conf: Mapping[str, Any]) -> None:
        super().__init__()
        self.net = net
        self.conf = dict(conf)

    def forward(self, data: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Match B padded pairs.

        data: keypoints0 [B, N, 2] and keypoints1 [B, M, 2] pixels (x, y);
        descriptors0 [B, N, D], descriptors1 [B, M, D]; image_size0 / image_size1
        [B, 2] (width, height); optional mask0 [B, N], mask1 [B, M] bool (True =
        real point).
        Returns matches0 [B, N] int64 (-1 = none), matching_scores0 [B, N] float32,
        layers [B] int64 (transformer layers each pair ran).
        """
        kpts0, kpts1 = data["keypoints0"], data["keypoints1"]
        desc0, desc1 = data["descriptors0"], data["descriptors1"]
        if kpts0.dim() != 3 or kpts1.dim() != 3 or desc0.dim() != 3 or desc1.dim() != 3:
            raise ValueError("LightGlue needs [B, N, 2] keypoints and [B, N, D] descriptors")
        if desc0.shape[-1] != self.conf["input_dim"] or desc1.shape[-1] != self.conf["input_dim"]:
            raise ValueError(
                f"LightGlue weights expect {self.conf['input_dim']}-d descriptors, got "
                f"{desc0.shape[-1]} and {desc1.shape[-1]}"
            )
        count, n, m = kpts0.shape[0], kpts0.shape[1], kpts1.shape[1]
        device = kpts0.device
        mask0 = data.get("mask0")
        mask1 = data.get("mask1")
        mask0 = torch.ones(count, n, dtype=torch.bool, device=device) if mask0 is None else mask0
        mask1 = torch.ones(count, m, dtype=torch.bool, device=device) if mask1 is None else mask1
        matches0 = torch.full((count, n), -1, dtype=torch.int64, device=device)
        scores0 = torch.zeros(count, n, dtype=torch.float32, device=device)
        layers = torch.zeros(count, dtype=torch.int64, device=device)
        if n == 0 or m == 0:
            return {"matches0": matches0, "matching_scores0": scores0, "layers": layers}
        with torch.inference_mode(), autocast_for(device, self.conf["precision"]):
            self._run(data, mask0, mask1, matches0, scores0, layers)
        return {"matches0": matches0, "matching_scores0": scores0, "layers": layers}

    def _run(
        self,
        data: Mapping[str, torch.Tensor],
        mask0: torch.Tensor,
        mask1: torch.Tensor,
        matches0: torch.Tensor,
        scores0: torch.Tensor,
        layers: torch.Tensor,
    ) -> None:
        """The layers; fills matches0, scores0 and layers in place."""
        net = self.net
        device = mask0.device
        kpts0 = normalize_keypoints(data["keypoints0"], data["image_size0"])
        kpts1 = normalize_keypoints(data["keypoints1"], data["image_size1"])
        pe_dtype = net.posenc.Wr.weight.dtype
        arange0 = torch.arange(mask0.shape[1], device=device)[None].expand_as(mask0)
        arange1 = torch.arange(mask1.shape[1], device=device)[None].expand_as(mask1)
        batch = _Batch(
            pairs=torch.arange(mask0.shape[0], device=device),
            desc0=net.input_proj(data["descriptors0"].contiguous()),
            desc1=net.input_proj(data["descriptors1"].contiguous()),
            enc0=net.posenc(kpts0.to(pe_dtype)),
            enc1=net.posenc(kpts1.to(pe_dtype)),
            valid0=mask0,
            valid1=mask1,
            index0=torch.where(mask0, arange0, -1),
            index1=torch.where(mask1, arange1, -1),
            total=mask0.sum(1) + mask1.sum(1),
        )
        # Pairs with no point on a side match nothing and run no layer.
        batch = batch.select((mask0.sum(1) > 0) & (mask1.sum(1) > 0))
        last = net.conf.n_layers - 1
        early_exit = net.conf.depth_confidence > 0
        pruning = net.conf.width_confidence > 0
        prune_above = net.pruning_min_kpts(device)
        for i in range(net.conf.n_layers):
            if batch.pairs.numel() == 0:
                return
            batch.desc0, batch.desc1 = self._layer(i, batch)
            if i == last:
                self._finish(i, batch, matches0, scores0, layers)
                return
            token0 = token1 = None
            if early_exit:
                token0, token1 = net.token_confidence[i](batch.desc0, batch.desc1)
                threshold = net.confidence_thresholds[i]
                unsure = ((token0 < threshold) & batch.valid0).sum(1) + (
                    (token1 < threshold) & batch.valid1
                ).sum(1)
                stop = 1.0 - unsure.float() / batch.total.float() > net.conf.depth_confidence
                if bool(stop.any()):
                    self._finish(i, batch.select(stop), matches0, scores0, layers)
                    keep = ~stop
                    batch = batch.select(keep)
                    token0, token1 = token0[keep], token1[keep]
                    if batch.pairs.numel() == 0:
                        return
            if pruning:
                batch = self._prune(i, batch, token0, token1, prune_above)
                # A pair that pruned every point of a side has nothing left to match.
                emptied = ~batch.valid0.any(1) | ~batch.valid1.any(1)
                if bool(emptied.any()):
                    self._finish(i, batch.select(emptied), matches0, scores0, layers)
                    batch = batch.select(~emptied)

    def _layer(self, i: int, batch: _Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Transformer layer i (self then cross attention) with padded keys masked."""
        layer = self.net.transformers[i]
        keys0, keys1 = _key_mask(batch.valid0), _key_mask(batch.valid1)
        desc0 = layer.self_attn(batch.desc0, batch.enc0, keys0)
        desc1 = layer.self_attn(batch.desc1, batch.enc1, keys1)
        return cross_attention(layer.cross_attn, desc0, desc1, keys0, keys1)

    def _prune(
        self,
        i: int,
        batch: _Batch,
        token0: torch.Tensor | None,
        token1: torch.Tensor | None,
        prune_above: int,
    ) -> _Batch:
        """Drop each pair's confidently unmatchable points (a side prunes while it has
        more than prune_above points), then repack the batch."""
        net = self.net
        assignment = net.log_assignment[i]
        sides = []
        for desc, enc, valid, index, token in (
            (batch.desc0, batch.enc0, batch.valid0, batch.index0, token0),
            (batch.desc1, batch.enc1, batch.valid1, batch.index1, token1),
        ):
            keep = net.get_pruning_mask(token, assignment.get_matchability(desc), i)
            prunes = valid.sum(1) > prune_above
            keep = valid & (keep | ~prunes[:, None])
            sides.append(_repack(keep, desc, enc, index))
        (batch.desc0, batch.enc0, batch.valid0, batch.index0) = sides[0]
        (batch.desc1, batch.enc1, batch.valid1, batch.index1) = sides[1]
        return batch

    def _finish(
        self,
        i: int,
        batch: _Batch,
        matches0: torch.Tensor,
        scores0: torch.Tensor,
        layers: torch.Tensor,
    ) -> None:
        """Assignment at layer i for each pair of batch, on its real points only."""
        assignment = self.net.log_assignment[i]
        threshold = float(self.conf["filter_threshold"])
        for row, pair in enumerate(batch.pairs.tolist()):
            layers[pair] = i + 1
            valid0, valid1 = batch.valid0[row], batch.valid1[row]
            if not bool(valid0.any()) or not bool(valid1.any()):
                continue
            log_assignment, _ = assignment(
                batch.desc0[row, valid0][None], batch.desc1[row, valid1][None]
            )
            m0, _, ms0, _ = filter_matches(log_assignment, threshold)
            index0 = batch.index0[row, valid0]
            index1 = batch.index1[row, valid1]
            matched = m0[0] > -1
            matches0[pair, index0[matched]] = index1[m0[0, matched]]
            scores0[pair, index0] = torch.where(matched, ms0[0].float(), 0.0)
