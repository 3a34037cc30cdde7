"""SuperGlue feature matcher (Sarlin et al., CVPR 2020), batched over padded pairs.

Computes what the authors' released PyTorch model computes for one pair, and loads
their checkpoints (``superglue_indoor.pth`` / ``superglue_outdoor.pth``) unchanged:
the module tree keeps the release's parameter names (``kenc.encoder.*``,
``gnn.layers.<i>.attn.{proj,merge}.*``, ``gnn.layers.<i>.mlp.*``, ``final_proj.*``,
``bin_score``).

Differences from the release, none of which changes a pair's result:

* Pairs are batched. Side 1 of each pair (a keyframe) may hold fewer points than
  the batch's M: ``mask1`` marks the real ones (likewise ``mask0``). Padded points
  are excluded as attention keys and from the optimal-transport marginals, which
  use each pair's own point counts, so a padded batch gives the pair-by-pair
  result. A pair with no point on one side matches nothing.
* Internally points are rows ([B, N, C]) and the 1x1 convolutions run as matrix
  products; the three attention projections run as one product, heads are laid
  out contiguously, and eval-mode BatchNorm is folded into the preceding layer.
* Attention uses ``torch.nn.functional.scaled_dot_product_attention``.
* Optional reduced precision (autocast); optimal transport always runs in float32.

Shapes: B pairs, N points on side 0, M on side 1, D descriptor channels, H heads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from superglue_ros.models.batching import pad_keyframes
from superglue_ros.models.precision import PRECISIONS, autocast_for

LAYER_KINDS = ("self", "cross")
BATCH_STRATEGIES = ("auto", "batched", "loop")
CPU_BATCH_MAX_POINTS = 1024  # auto strategy: largest padded pair (N + M) batched on CPU


# --------------------------------------------------------------------------- modules
# These classes only hold parameters under the release's names; the computation is
# in the functions below, on [B, N, C] tensors.


def make_mlp(channels: Sequence[int]) -> nn.Sequential:
    """Conv1d(k=1) layers with BatchNorm + ReLU between them (not after the last).

    The indices inside the Sequential are part of the checkpoint's key names.
    """
    layers: list[nn.Module] = []
    for i in range(1, len(channels)):
        layers.append(nn.Conv1d(channels[i - 1], channels[i], kernel_size=1, bias=True))
        if i < len(channels) - 1:
            layers.append(nn.BatchNorm1d(channels[i]))
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class KeypointEncoder(nn.Module):
    """MLP from (x, y, score) to a D-dimensional position code."""

    def __init__(self, descriptor_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.encoder = make_mlp([3, *hidden, descriptor_dim])
        nn.init.zeros_(self.encoder[-1].bias)


class MultiHeadedAttention(nn.Module):
    """Parameters of one attention block: proj (query, key, value) and merge."""

    def __init__(self, num_heads: int, dim: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.merge = nn.Conv1d(dim, dim, kernel_size=1)
        self.proj = nn.ModuleList([nn.Conv1d(dim, dim, kernel_size=1) for _ in range(3)])


class AttentionalPropagation(nn.Module):
    """One GNN layer: attention message, then MLP on [descriptor, message]."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.attn = MultiHeadedAttention(num_heads, dim)
        self.mlp = make_mlp([dim * 2, dim * 2, dim])
        nn.init.zeros_(self.mlp[-1].bias)


class AttentionalGNN(nn.Module):
    """A stack of self- and cross-attention layers."""

    def __init__(self, dim: int, layer_kinds: Sequence[str], num_heads: int) -> None:
        super().__init__()
        self.kinds = list(layer_kinds)
        self.layers = nn.ModuleList([AttentionalPropagation(dim, num_heads) for _ in layer_kinds])


# --------------------------------------------------------------------------- functions

Linear = tuple[torch.Tensor, torch.Tensor]  # (weight [out, in], bias [out])


def fold_mlp(mlp: nn.Sequential) -> list[Linear]:
    """The MLP as linear layers with eval-mode BatchNorm folded in (ReLU between them)."""
    folded: list[Linear] = []
    for module in mlp:
        if isinstance(module, nn.Conv1d):
            folded.append((module.weight[:, :, 0], module.bias))
        elif isinstance(module, nn.BatchNorm1d):
            weight, bias = folded[-1]
            scale = module.weight / torch.sqrt(module.running_var + module.eps)
            shift = module.bias - module.running_mean * scale
            folded[-1] = (weight * scale[:, None], bias * scale + shift)
    return folded


def run_mlp(layers: Sequence[Linear], x: torch.Tensor) -> torch.Tensor:
    """x: [..., C_in] -> [..., C_out], ReLU after every layer but the last."""
    for i, (weight, bias) in enumerate(layers):
        x = F.linear(x, weight, bias)
        if i < len(layers) - 1:
            x = F.relu(x)
    return x


def head_major(num_heads: int, dim: int) -> torch.Tensor:
    """Channel permutation from the release's layout (channel = d * H + h) to h * (D/H) + d."""
    return torch.arange(dim).view(dim // num_heads, num_heads).t().reshape(-1)


def prepare_layer(layer: AttentionalPropagation) -> dict[str, torch.Tensor]:
    """Fused inference weights of one GNN layer.

    The release computes message = merge(attn) and then
    mlp([x; message]) = W2 relu(BN(W1x x + W1m message + b1)) + b2. Here BN is folded
    into W1, merge is folded into W1m, and the query/key/value projections are one
    matrix whose output has the heads contiguous (the release interleaves them:
    channel = d * H + h). Returns qkv_w [3D, D], qkv_b [3D], x_w [2D, D],
    msg_w [2D, D] (head-major input), hidden_b [2D], out_w [D, 2D], out_b [D].
    """
    attn = layer.attn
    dim = attn.merge.weight.shape[0]
    order = head_major(attn.num_heads, dim).to(attn.merge.weight.device)
    (hidden_w, hidden_b), (out_w, out_b) = fold_mlp(layer.mlp)
    merge_w, merge_b = attn.merge.weight[:, :, 0], attn.merge.bias
    hidden_x, hidden_msg = hidden_w[:, :dim], hidden_w[:, dim:]
    return {
        "qkv_w": torch.cat([p.weight[:, :, 0][order] for p in attn.proj]),
        "qkv_b": torch.cat([p.bias[order] for p in attn.proj]),
        "x_w": hidden_x.t().contiguous(),
        "msg_w": (hidden_msg @ merge_w[:, order]).t().contiguous(),
        "hidden_b": hidden_b + hidden_msg @ merge_b,
        "out_w": out_w.t().contiguous(),
        "out_b": out_b,
    }


def attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_mask: torch.Tensor | None
) -> torch.Tensor:
    """Scaled dot-product attention over valid keys.

    query: [B, H, N, d]; key, value: [B, H, M, d]; key_mask: [B, M] bool (True =
    real point) or None. Returns [B, H, N, d]; queries with no valid key get 0.
    """
    if key.shape[2] == 0:
        return query.new_zeros(query.shape)
    if key_mask is None:
        return F.scaled_dot_product_attention(query, key, value)
    has_key = key_mask.any(dim=1)  # [B]
    # a pair without any valid key attends to everything (finite), then gets 0
    safe = (key_mask | ~has_key[:, None])[:, None, None, :]
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=safe)
    return torch.where(has_key[:, None, None, None], out, out.new_zeros(()))


def normalize_keypoints(keypoints: torch.Tensor, image_size: torch.Tensor) -> torch.Tensor:
    """Centre and scale pixel coordinates: (p - size/2) / (0.7 * max(W, H)).

    keypoints: [B, N, 2] (x, y); image_size: [B, 2] (H, W). Returns [B, N, 2].
    """
    size = image_size.flip(-1).to(keypoints)  # (W, H)
    center = size / 2
    scale = size.max(dim=-1, keepdim=True).values * 0.7
    return (keypoints - center[:, None, :]) / scale[:, None, :]


def log_sinkhorn(
    couplings: torch.Tensor,
    log_mu: torch.Tensor,
    log_nu: torch.Tensor,
    row_active: torch.Tensor,
    col_active: torch.Tensor,
    iterations: int,
) -> torch.Tensor:
    """Sinkhorn normalisation in log space; inactive rows/columns stay out.

    couplings: [B, R, C] with -inf wherever a row or column is inactive;
    log_mu: [B, R], log_nu: [B, C] marginals; row_active: [B, R], col_active:
    [B, C] bool. Returns couplings + u + v ([B, R, C]). Inactive potentials are
    held at 0, so they add exactly nothing to the active sums.
    """
    u = torch.zeros_like(log_mu)
    v = torch.zeros_like(log_nu)
    zero = log_mu.new_zeros(())
    for _ in range(iterations):
        u = log_mu - torch.logsumexp(couplings + v[:, None, :], dim=2)
        u = torch.where(row_active, u, zero)
        v = log_nu - torch.logsumexp(couplings + u[:, :, None], dim=1)
        v = torch.where(col_active, v, zero)
    return couplings + u[:, :, None] + v[:, None, :]


def log_optimal_transport(
    scores: torch.Tensor,
    bin_score: torch.Tensor,
    iterations: int,
    valid0: torch.Tensor,
    valid1: torch.Tensor,
) -> torch.Tensor:
    """Entropic optimal transport with a dustbin row and column, per pair.

    scores: [B, N, M] float32; bin_score: scalar; valid0: [B, N], valid1: [B, M]
    bool. Each pair with n real points on side 0 and m on side 1 gets the
    release's marginals: 1/(n+m) per point, n/(n+m) and m/(n+m) for the dustbins
    (column and row). Returns the log assignment [B, N+1, M+1] scaled by n+m
    (log probabilities + log(n+m)); -inf at padded points (and at a dustbin whose
    other side is empty).
    """
    b, n, m = scores.shape
    count0 = valid0.sum(dim=1).to(scores.dtype)  # [B]
    count1 = valid1.sum(dim=1).to(scores.dtype)
    norm = -torch.log((count0 + count1).clamp(min=1))  # [B]
    row_active = torch.cat([valid0, (count1 > 0)[:, None]], dim=1)  # [B, N+1]
    col_active = torch.cat([valid1, (count0 > 0)[:, None]], dim=1)  # [B, M+1]

    alpha = bin_score.to(scores.dtype)
    couplings = torch.cat(
        [
            torch.cat([scores, alpha.expand(b, n, 1)], dim=2),
            alpha.expand(b, 1, m + 1),
        ],
        dim=1,
    )
    active = row_active[:, :, None] & col_active[:, None, :]
    couplings = torch.where(active, couplings, couplings.new_full((), -math.inf))

    log_mu = torch.cat([norm[:, None].expand(b, n), (count1.log() + norm)[:, None]], dim=1)
    log_nu = torch.cat([norm[:, None].expand(b, m), (count0.log() + norm)[:, None]], dim=1)
    z = log_sinkhorn(couplings, log_mu, log_nu, row_active, col_active, iterations)
    return z - norm[:, None, None]


def extract_matches(
    log_assignment: torch.Tensor,
    threshold: float | torch.Tensor,
    valid0: torch.Tensor,
    valid1: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Mutual best matches whose probability exceeds threshold.

    log_assignment: [B, N+1, M+1]; valid0: [B, N], valid1: [B, M]. Returns
    matches0 [B, N] / matches1 [B, M] int64 (-1 = unmatched) and
    matching_scores0 / matching_scores1 (exp of the log assignment where mutual, else 0).
    threshold may be a 0-d tensor (an input of the exported ONNX graph).
    """
    core = log_assignment[:, :-1, :-1]
    b, n, m = core.shape
    if n == 0 or m == 0:
        return {
            "matches0": core.new_full((b, n), -1, dtype=torch.long),
            "matches1": core.new_full((b, m), -1, dtype=torch.long),
            "matching_scores0": core.new_zeros((b, n)),
            "matching_scores1": core.new_zeros((b, m)),
        }
    max0, max1 = core.max(dim=2), core.max(dim=1)
    best0, best1 = max0.indices, max1.indices
    mutual0 = torch.arange(n, device=core.device)[None] == best1.gather(1, best0)
    mutual1 = torch.arange(m, device=core.device)[None] == best0.gather(1, best1)
    mutual0 = mutual0 & valid0
    mutual1 = mutual1 & valid1
    zero = core.new_zeros(())
    scores0 = torch.where(mutual0, max0.values.exp(), zero)
    scores1 = torch.where(mutual1, scores0.gather(1, best1), zero)
    keep0 = mutual0 & (scores0 > threshold)
    keep1 = mutual1 & keep0.gather(1, best1)
    return {
        "matches0": torch.where(keep0, best0, best0.new_full((), -1)),
        "matches1": torch.where(keep1, best1, best1.new_full((), -1)),
        "matching_scores0": scores0,
        "matching_scores1": scores1,
    }


def as_image_size(value: Any, batch: int, device: torch.device) -> torch.Tensor:
    """(H, W), [2] or [B, 2] -> float32 [B, 2] (H, W)."""
    size = torch.as_tensor(value, dtype=torch.float32, device=device)
    if size.dim() == 1 and size.shape[0] == 2:
        return size[None].expand(batch, 2)
    if size.dim() == 2 and size.shape == (batch, 2):
        return size
    raise ValueError(f"image size must be (H, W) or [B={batch}, 2], got shape {tuple(size.shape)}")


# --------------------------------------------------------------------------- model


def pad_batch(
    frame: Mapping[str, torch.Tensor], keyframes: Sequence[Mapping[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    """SuperGlue's input for one frame (side 0) against K keyframes (side 1), one batch.

    frame, keyframes[i]: {"kpts": [N, 2], "scores": [N], "desc": [D, N]} on one
    device (keyframes may differ in point count). Returns keypoints0 [K, N, 2],
    scores0 [K, N], descriptors0 [K, D, N] (the frame repeated, as views) and
    keypoints1 [K, M, 2], scores1 [K, M], descriptors1 [K, D, M], mask1 [K, M]
    with M the largest keyframe: zero padding, False in mask1. Image sizes are
    the caller's to add.
    """
    return pad_keyframes(frame, keyframes, {"kpts": 0, "scores": 0, "desc": 1})


class SuperGlue(nn.Module):
    """SuperGlue: attentional GNN + optimal transport between two keypoint sets.

    forward(data) with, for side i in {0, 1}:
      keypoints<i> [B, N_i, 2] pixel (x, y); scores<i> [B, N_i];
      descriptors<i> [B, D, N_i]; image_size<i> (H, W) or [B, 2] (or image<i>,
      whose last two dims are used); optional mask<i> [B, N_i] bool, True = real point.
    returns log_assignment [B, N+1, M+1] float32 (dustbins last, -inf at padding),
      matches0 [B, N] / matches1 [B, M] int64 (-1 = unmatched),
      matching_scores0 [B, N] / matching_scores1 [B, M] float32.
    """

    default_conf: dict[str, Any] = {
        "descriptor_dim": 256,  # D: descriptor and GNN width
        "keypoint_encoder": [32, 64, 128, 256],  # hidden widths of the position MLP
        "GNN_layers": ["self", "cross"] * 9,  # kind of each attention layer
        "num_heads": 4,  # attention heads (4 in the release)
        "sinkhorn_iterations": 100,  # optimal transport iterations (release default)
        "match_threshold": 0.2,  # minimum matching score of a kept match
        "precision": "fp32",  # fp32 | fp16 | bf16: autocast on the input's device
        # how padded pairs run: auto (see strategy_for), batched (one batch trimmed to the
        # longest pair) or loop (pair by pair). Results are the same either way.
        "batch_strategy": "auto",
    }

    def __init__(self, conf: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.conf = {**self.default_conf, **(conf or {})}
        check_conf(self.conf, self.default_conf)
        dim = int(self.conf["descriptor_dim"])
        self.kenc = KeypointEncoder(dim, self.conf["keypoint_encoder"])
        self.gnn = AttentionalGNN(dim, self.conf["GNN_layers"], int(self.conf["num_heads"]))
        self.final_proj = nn.Conv1d(dim, dim, kernel_size=1, bias=True)
        self.register_parameter("bin_score", nn.Parameter(torch.tensor(1.0)))
        # (weights key, fused weights): see prepare()
        self._prepared: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self.eval()

    # ----------------------------------------------------------------- inputs
    def _side(self, data: dict[str, Any], i: int) -> dict[str, torch.Tensor]:
        """Checked tensors of side i: points [B, N, 2], scores [B, N], desc [B, N, D], ..."""
        for key in (f"keypoints{i}", f"scores{i}", f"descriptors{i}"):
            if key not in data:
                raise ValueError(f"SuperGlue input is missing '{key}'")
        kpts, scores, desc = data[f"keypoints{i}"], data[f"scores{i}"], data[f"descriptors{i}"]
        dim = int(self.conf["descriptor_dim"])
        if not isinstance(kpts, torch.Tensor) or kpts.dim() != 3 or kpts.shape[-1] != 2:
            raise ValueError(f"keypoints{i} must be a [B, N, 2] tensor, got {_shape(kpts)}")
        b, n = kpts.shape[:2]
        if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != (b, n):
            raise ValueError(f"scores{i} must be [B={b}, N={n}], got {_shape(scores)}")
        if not isinstance(desc, torch.Tensor) or tuple(desc.shape) != (b, dim, n):
            raise ValueError(f"descriptors{i} must be [B={b}, D={dim}, N={n}], got {_shape(desc)}")
        for name, tensor in (("keypoints", kpts), ("scores", scores), ("descriptors", desc)):
            if not tensor.is_floating_point():
                raise ValueError(f"{name}{i} must be a float tensor, got {tensor.dtype}")
        return {
            "kpts": kpts.float(),
            "scores": scores.float(),
            "desc": desc.float().transpose(1, 2),  # [B, N, D]
            "size": _side_size(data, i, b, kpts.device),
            "mask": _side_mask(data, i, b, n, kpts.device),
        }

    # ----------------------------------------------------------------- compute
    def prepare(self) -> dict[str, Any]:
        """Inference weights: folded BatchNorm, fused head-major projections.

        Built once and reused until a parameter or buffer changes (load_state_dict,
        .to(), in-place edits): fusing costs 20-40 ms on a CPU, more than matching
        a small pair. Inference only: no gradient flows through them.
        """
        key = self._weights_key()
        if self._prepared is None or self._prepared[0] != key:
            # plain tensors even when called under inference_mode, so later calls in
            # any grad mode may use them
            with torch.inference_mode(False), torch.no_grad():
                fused = {
                    "kenc": fold_mlp(self.kenc.encoder),
                    "layers": [prepare_layer(layer) for layer in self.gnn.layers],
                    "final": (self.final_proj.weight[:, :, 0], self.final_proj.bias),
                }
            self._prepared = (key, fused)
        return self._prepared[1]

    def _weights_key(self) -> tuple[Any, ...]:
        """Changes whenever a parameter or buffer is replaced, moved or edited in place."""
        tensors = [*self.parameters(), *self.buffers()]
        return tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors)

    def match_scores(
        self,
        side0: dict[str, torch.Tensor],
        side1: dict[str, torch.Tensor],
        weights: dict[str, Any],
        masked: bool,
    ) -> torch.Tensor:
        """Descriptor similarity after the GNN: [B, N, M] float32 (not yet transported)."""
        n, m = side0["kpts"].shape[1], side1["kpts"].shape[1]
        b = side0["kpts"].shape[0]
        if n == 0 or m == 0:
            return side0["kpts"].new_zeros(b, n, m)
        heads = int(self.conf["num_heads"])
        dim = int(self.conf["descriptor_dim"])
        # both sides travel together as one point set [B, N + M, D] through every linear layer
        desc = torch.cat([side0["desc"], side1["desc"]], dim=1)
        position = torch.cat(
            [
                torch.cat([normalize_keypoints(s["kpts"], s["size"]), s["scores"][..., None]], -1)
                for s in (side0, side1)
            ],
            dim=1,
        )
        desc = desc + run_mlp(weights["kenc"], position)
        mask0 = side0["mask"] if masked else None
        mask1 = side1["mask"] if masked else None

        rows = desc.view(b * (n + m), dim)  # points of all pairs and both sides as rows
        message: torch.Tensor | None = None
        for kind, layer in zip(self.gnn.kinds, weights["layers"], strict=True):
            qkv = torch.addmm(layer["qkv_b"], rows, layer["qkv_w"].t())
            q, k, v = qkv.view(b, n + m, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
            # q, k, v: [B, H, N+M, d]; side 0 is [:N], side 1 is [N:]
            q0, q1 = q[:, :, :n], q[:, :, n:]
            k0, k1 = k[:, :, :n], k[:, :, n:]
            v0, v1 = v[:, :, :n], v[:, :, n:]
            if kind == "cross":
                msg0, msg1 = attention(q0, k1, v1, mask1), attention(q1, k0, v0, mask0)
            else:
                msg0, msg1 = attention(q0, k0, v0, mask0), attention(q1, k1, v1, mask1)
            if message is None:  # [B, N+M, H, d], in the compute dtype (autocast)
                message = msg0.new_empty(b, n + m, heads, dim // heads)
            message[:, :n] = msg0.transpose(1, 2)
            message[:, n:] = msg1.transpose(1, 2)
            hidden = torch.addmm(layer["hidden_b"], rows, layer["x_w"])
            hidden = F.relu_(torch.addmm(hidden, message.view(b * (n + m), dim), layer["msg_w"]))
            # the residual stream keeps the input's precision (float32) under autocast
            rows = rows + torch.addmm(layer["out_b"], hidden, layer["out_w"])
        desc = rows.view(b, n + m, dim)

        proj = F.linear(desc, *weights["final"])
        scores = proj[:, :n] @ proj[:, n:].transpose(1, 2)
        return scores.float() / dim**0.5

    def _run(
        self, side0: dict[str, torch.Tensor], side1: dict[str, torch.Tensor], masked: bool
    ) -> dict[str, torch.Tensor]:
        weights = self.prepare()
        with autocast_for(side0["kpts"].device, self.conf["precision"]):
            scores = self.match_scores(side0, side1, weights, masked)
        with torch.autocast(device_type=scores.device.type, enabled=False):
            log_assignment = log_optimal_transport(
                scores.float(),
                self.bin_score.float(),
                int(self.conf["sinkhorn_iterations"]),
                side0["mask"],
                side1["mask"],
            )
            out = extract_matches(
                log_assignment, float(self.conf["match_threshold"]), side0["mask"], side1["mask"]
            )
        return {"log_assignment": log_assignment, **out}

    def _run_groups(
        self, side0: dict[str, torch.Tensor], side1: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Masked input: pack each pair's real points to the front, run, scatter back.

        Pairs with no real point on a side skip the network (they match nothing).
        The other pairs run as one batch trimmed to the longest pair, or one by
        one, as strategy_for() decides.
        """
        b, n = side0["mask"].shape
        m = side1["mask"].shape[1]
        device = side0["kpts"].device
        index0 = [torch.nonzero(row)[:, 0] for row in side0["mask"]]
        index1 = [torch.nonzero(row)[:, 0] for row in side1["mask"]]
        live = [i for i in range(b) if len(index0[i]) and len(index1[i])]
        groups = [[i] for i in range(b) if i not in live]
        strategy = self.strategy_for(
            device, [len(index0[i]) for i in live], [len(index1[i]) for i in live]
        )
        groups += [live] if strategy == "batched" and live else [[i] for i in live]

        out = {
            "log_assignment": torch.full((b, n + 1, m + 1), -math.inf, device=device),
            "matches0": torch.full((b, n), -1, dtype=torch.long, device=device),
            "matches1": torch.full((b, m), -1, dtype=torch.long, device=device),
            "matching_scores0": torch.zeros(b, n, device=device),
            "matching_scores1": torch.zeros(b, m, device=device),
        }
        for group in groups:
            packed0, width0 = _pack(side0, group, index0)
            packed1, width1 = _pack(side1, group, index1)
            padded = any(len(index0[i]) < width0 or len(index1[i]) < width1 for i in group)
            result = self._run(packed0, packed1, masked=padded)
            for g, i in enumerate(group):
                idx0, idx1 = index0[i], index1[i]
                n_i, m_i = len(idx0), len(idx1)
                rows = torch.cat([torch.arange(n_i, device=device), idx0.new_tensor([width0])])
                cols = torch.cat([torch.arange(m_i, device=device), idx1.new_tensor([width1])])
                block = result["log_assignment"][g][rows[:, None], cols[None, :]]
                out_rows = torch.cat([idx0, idx0.new_tensor([n])])
                out_cols = torch.cat([idx1, idx1.new_tensor([m])])
                out["log_assignment"][i, out_rows[:, None], out_cols[None, :]] = block
                pm0, pm1 = result["matches0"][g, :n_i], result["matches1"][g, :m_i]
                if n_i and m_i:  # packed indices back to the caller's
                    out["matches0"][i, idx0] = torch.where(pm0 >= 0, idx1[pm0.clamp(min=0)], pm0)
                    out["matches1"][i, idx1] = torch.where(pm1 >= 0, idx0[pm1.clamp(min=0)], pm1)
                out["matching_scores0"][i, idx0] = result["matching_scores0"][g, :n_i]
                out["matching_scores1"][i, idx1] = result["matching_scores1"][g, :m_i]
        return out

    def strategy_for(
        self, device: torch.device, counts0: Sequence[int], counts1: Sequence[int]
    ) -> str:
        """'batched' or 'loop' for pairs with these real point counts (conf['batch_strategy']).

        auto, a rule from `superglue-ros bench` on a 2-core AVX-512 CPU: on an
        accelerator always one batch (one launch per layer for all pairs). On CPU
        one batch only for small pairs (at most CPU_BATCH_MAX_POINTS points per
        padded pair, where per-operation overhead dominates) with at most a quarter
        of the batch padding; larger pairs already keep the cores busy alone, so
        pair by pair wins (up to ~30 % with 8 keyframes of 1024 points).
        """
        choice = self.conf["batch_strategy"]
        if choice != "auto":
            return choice
        if device.type != "cpu" or len(counts0) <= 1:
            return "batched"
        width = max(counts0) + max(counts1)
        if width > CPU_BATCH_MAX_POINTS:
            return "loop"
        real = sum(counts0) + sum(counts1)
        return "batched" if real >= 0.75 * len(counts0) * width else "loop"

    def forward(self, data: dict[str, Any]) -> dict[str, torch.Tensor]:
        """See the class docstring."""
        side0, side1 = self._side(data, 0), self._side(data, 1)
        b0, b1 = side0["kpts"].shape[0], side1["kpts"].shape[0]
        if b0 != b1:
            raise ValueError(f"both sides need the same batch size, got {b0} and {b1}")
        if "mask0" in data or "mask1" in data:
            return self._run_groups(side0, side1)
        return self._run(side0, side1, masked=False)

    @torch.inference_mode()
    def match(self, data: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Inference entry point: forward() without autograd bookkeeping."""
        return self.forward(data)


def _pack(
    side: dict[str, torch.Tensor], group: Sequence[int], index: Sequence[torch.Tensor]
) -> tuple[dict[str, torch.Tensor], int]:
    """The pairs in group with their real points (index[i]) first, padded to the longest.

    Returns the side's tensors for a batch of len(group) and the padded width.
    """
    width = max(len(index[i]) for i in group)
    if len(group) == 1:
        i, idx = group[0], index[group[0]]
        return {key: side[key][i : i + 1, idx] for key in ("kpts", "scores", "desc", "mask")} | {
            "size": side["size"][i : i + 1]
        }, width
    kpts, scores, desc = side["kpts"], side["scores"], side["desc"]
    packed = {
        "kpts": kpts.new_zeros(len(group), width, 2),
        "scores": scores.new_zeros(len(group), width),
        "desc": desc.new_zeros(len(group), width, desc.shape[-1]),
        "mask": torch.zeros(len(group), width, dtype=torch.bool, device=kpts.device),
        "size": side["size"][list(group)],
    }
    for g, i in enumerate(group):
        count = len(index[i])
        packed["kpts"][g, :count] = kpts[i, index[i]]
        packed["scores"][g, :count] = scores[i, index[i]]
        packed["desc"][g, :count] = desc[i, index[i]]
        packed["mask"][g, :count] = True
    return packed, width


def _side_size(data: dict[str, Any], i: int, b: int, device: torch.device) -> torch.Tensor:
    """[B, 2] (H, W) of side i from image_size{i} or the shape of image{i}."""
    if f"image_size{i}" in data:
        return as_image_size(data[f"image_size{i}"], b, device)
    if f"image{i}" in data:
        return as_image_size(data[f"image{i}"].shape[-2:], b, device)
    raise ValueError(f"SuperGlue input needs 'image_size{i}' (H, W) or 'image{i}'")


def _side_mask(data: dict[str, Any], i: int, b: int, n: int, device: torch.device) -> torch.Tensor:
    """[B, N] bool mask{i} (True = real point), all True when not given."""
    mask = data.get(f"mask{i}")
    if mask is None:
        return torch.ones(b, n, dtype=torch.bool, device=device)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise ValueError(f"mask{i} must be a bool tensor [B={b}, N={n}]")
    if tuple(mask.shape) != (b, n):
        raise ValueError(f"mask{i} must be [B={b}, N={n}], got {tuple(mask.shape)}")
    return mask


def _shape(value: Any) -> str:
    return str(tuple(value.shape)) if isinstance(value, torch.Tensor) else type(value).__name__


def check_conf(conf: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Raise ValueError for an unknown option or an impossible value."""
    unknown = sorted(set(conf) - set(defaults))
    if unknown:
        raise ValueError(f"unknown SuperGlue option(s): {', '.join(unknown)}")
    dim, heads = conf["descriptor_dim"], conf["num_heads"]
    if int(heads) <= 0 or int(dim) % int(heads) != 0:
        raise ValueError(f"descriptor_dim ({dim}) must be a multiple of num_heads ({heads})")
    bad = [kind for kind in conf["GNN_layers"] if kind not in LAYER_KINDS]
    if bad:
        raise ValueError(f"GNN_layers may only hold 'self' or 'cross', got {bad}")
    if conf["precision"] not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
    if conf["batch_strategy"] not in BATCH_STRATEGIES:
        raise ValueError(f"batch_strategy must be one of {', '.join(BATCH_STRATEGIES)}")
    if int(conf["sinkhorn_iterations"]) < 0:
        raise ValueError("sinkhorn_iterations must be >= 0")
