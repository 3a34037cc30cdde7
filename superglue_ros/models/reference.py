"""The authors' reference computation of SuperPoint and SuperGlue, with our models' weights.

The bench times our models against this, in the same run, so a speed claim is
a same-machine ratio. Each function runs the given model's own modules the way
the released code does (see BASELINE); check_*_baseline raise
BaselineMismatchError unless a baseline computes what our model computes, since
a baseline that computes something else is no baseline. torch is imported
inside the functions, as the models' users may import this module cheaply.
"""

from __future__ import annotations

import copy
from typing import Any

BASELINE = (
    "the reference's computation with the same weights, alternating with ours in this run: "
    "SuperPoint with NCHW tensors and square-window NMS; SuperGlue with Conv1d layers, "
    "separate projections, BatchNorm, explicit softmax attention and unmasked Sinkhorn, "
    "one pair per call"
)


class BaselineMismatchError(RuntimeError):
    """The baseline's output differs from ours: it would time some other computation."""


def square_window_max(x: Any, radius: int) -> Any:
    """The reference's window maximum: one square (2r+1) x (2r+1) max-pool. x: [B, H, W]."""
    import torch.nn.functional as F

    return F.max_pool2d(x, kernel_size=radius * 2 + 1, stride=1, padding=radius)


def contiguous_superpoint(model: Any) -> Any:
    """A copy of a SuperPoint whose weights are NCHW-contiguous (the reference's layout)."""
    import torch

    baseline = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    for name, param in baseline.named_parameters():
        if not param.is_contiguous():
            raise BaselineMismatchError(f"baseline SuperPoint weight {name} is not contiguous")
    return baseline


def reference_superpoint(model: Any, image: Any) -> dict[str, list[Any]]:
    """SuperPoint as the reference computes it, with model's modules (fp32, NCHW).

    model: a SuperPoint from contiguous_superpoint(); image: [B, 1, H, W].
    Returns what SuperPoint.extract returns.
    """
    import torch
    import torch.nn.functional as F

    from superglue_ros.models.superpoint import (
        prepare_image,
        sample_descriptors,
        select_keypoints,
        simple_nms,
    )

    conf = model.conf
    with torch.inference_mode():
        x = prepare_image(image)  # contiguous NCHW
        for first, second in (
            (model.conv1a, model.conv1b),
            (model.conv2a, model.conv2b),
            (model.conv3a, model.conv3b),
        ):
            x = F.relu(second(F.relu(first(x), inplace=True)), inplace=True)
            x = F.max_pool2d(x, kernel_size=2, stride=2)
        x = F.relu(model.conv4b(F.relu(model.conv4a(x), inplace=True)), inplace=True)

        scores = model.convPb(F.relu(model.convPa(x), inplace=True))
        scores = F.softmax(scores, 1)[:, :-1]
        b, _, h, w = scores.shape
        scores = scores.permute(0, 2, 3, 1).reshape(b, h, w, 8, 8)
        scores = scores.permute(0, 1, 3, 2, 4).reshape(b, h * 8, w * 8)
        scores = simple_nms(scores, int(conf["nms_radius"]), square_window_max)

        descriptors = model.convDb(F.relu(model.convDa(x), inplace=True))
        descriptors = F.normalize(descriptors, p=2, dim=1)
        out: dict[str, list[Any]] = {"keypoints": [], "scores": [], "descriptors": []}
        for score_map, desc_map in zip(scores, descriptors, strict=True):
            kpts, kscores = select_keypoints(
                score_map,
                float(conf["keypoint_threshold"]),
                int(conf["remove_borders"]),
                int(conf["max_keypoints"]),
            )
            out["keypoints"].append(kpts)
            out["scores"].append(kscores)
            out["descriptors"].append(sample_descriptors(kpts, desc_map, 8))
    return out


def check_superpoint_baseline(
    ours: dict[str, list[Any]], baseline: dict[str, list[Any]], atol: float = 1e-5
) -> None:
    """Raise BaselineMismatchError unless every image has the same keypoint set in both
    outputs and the scores of each keypoint agree within atol."""
    if len(ours["keypoints"]) != len(baseline["keypoints"]):
        raise BaselineMismatchError("SuperPoint baseline: different number of images")
    for i, (kpts, scores, base_kpts, base_scores) in enumerate(
        zip(
            ours["keypoints"],
            ours["scores"],
            baseline["keypoints"],
            baseline["scores"],
            strict=True,
        )
    ):
        mine = dict(zip(map(tuple, kpts.tolist()), scores.tolist(), strict=True))
        theirs = dict(zip(map(tuple, base_kpts.tolist()), base_scores.tolist(), strict=True))
        if mine.keys() != theirs.keys():
            raise BaselineMismatchError(
                f"SuperPoint baseline, image {i}: keypoint sets differ (ours {len(mine)}, "
                f"baseline {len(theirs)}, common {len(mine.keys() & theirs.keys())})"
            )
        worst = max((abs(mine[p] - theirs[p]) for p in mine), default=0.0)
        if not worst <= atol:
            raise BaselineMismatchError(
                f"SuperPoint baseline, image {i}: scores differ by up to {worst:.3g} (> {atol})"
            )


def reference_attention(query: Any, key: Any, value: Any) -> Any:
    """The reference's attention: [B, d, H, N] tensors, softmax(q k^T / sqrt(d)) v."""
    import torch

    dim = query.shape[1]
    scores = torch.einsum("bdhn,bdhm->bhnm", query, key) / dim**0.5
    prob = torch.nn.functional.softmax(scores, dim=-1)
    return torch.einsum("bhnm,bdhm->bdhn", prob, value)


def reference_log_optimal_transport(scores: Any, alpha: Any, iterations: int) -> Any:
    """The reference's Sinkhorn with dustbins (no masks). scores: [B, N, M]."""
    import torch

    b, m, n = scores.shape
    one = scores.new_tensor(1)
    ms, ns = (m * one).to(scores), (n * one).to(scores)
    bins0, bins1 = alpha.expand(b, m, 1), alpha.expand(b, 1, n)
    couplings = torch.cat(
        [torch.cat([scores, bins0], -1), torch.cat([bins1, alpha.expand(b, 1, 1)], -1)], 1
    )
    norm = -(ms + ns).log()
    log_mu = torch.cat([norm.expand(m), ns.log()[None] + norm])[None].expand(b, -1)
    log_nu = torch.cat([norm.expand(n), ms.log()[None] + norm])[None].expand(b, -1)
    u, v = torch.zeros_like(log_mu), torch.zeros_like(log_nu)
    for _ in range(iterations):
        u = log_mu - torch.logsumexp(couplings + v.unsqueeze(1), dim=2)
        v = log_nu - torch.logsumexp(couplings + u.unsqueeze(2), dim=1)
    return couplings + u.unsqueeze(2) + v.unsqueeze(1) - norm


def reference_superglue(model: Any, data: dict[str, Any], dtype: Any = None) -> dict[str, Any]:
    """SuperGlue on one unpadded pair as the reference computes it, with model's modules.

    data: SuperGlue input with B = 1 and no padding (a mask, if given, all True).
    dtype: torch.float32 (None, the reference's) or torch.float64, which computes the
    same pair with a copy of the model in double precision (the exact result to within
    ~1e-16 relative, against which float32 rounding is measured).
    Returns log_assignment [1, N+1, M+1] and the matches (SuperGlue.match's keys).
    """
    import torch

    from superglue_ros.models.superglue import as_image_size, extract_matches, normalize_keypoints

    for i in (0, 1):
        mask = data.get(f"mask{i}")
        if data[f"keypoints{i}"].shape[0] != 1 or (mask is not None and not bool(mask.all())):
            raise ValueError("the SuperGlue baseline runs one unpadded pair")
    dtype = torch.float32 if dtype is None else dtype
    if dtype != torch.float32:
        model = copy.deepcopy(model).to(dtype)
    conf = model.conf
    dim, heads = int(conf["descriptor_dim"]), int(conf["num_heads"])
    with torch.inference_mode():
        desc = []
        for i in (0, 1):
            kpts = data[f"keypoints{i}"].to(dtype)
            size = as_image_size(data[f"image_size{i}"], 1, kpts.device)
            position = torch.cat(
                [normalize_keypoints(kpts, size).transpose(1, 2), data[f"scores{i}"][:, None]], 1
            ).to(dtype)
            desc.append(data[f"descriptors{i}"].to(dtype) + model.kenc.encoder(position))
        desc0, desc1 = desc

        def propagate(layer: Any, x: Any, source: Any) -> Any:
            attn = layer.attn
            query, key, value = (
                proj(t).view(1, dim // heads, heads, -1)
                for proj, t in zip(attn.proj, (x, source, source), strict=True)
            )
            message = reference_attention(query, key, value)
            message = attn.merge(message.contiguous().view(1, dim, -1))
            return layer.mlp(torch.cat([x, message], dim=1))

        for layer, kind in zip(model.gnn.layers, model.gnn.kinds, strict=True):
            src0, src1 = (desc1, desc0) if kind == "cross" else (desc0, desc1)
            delta0, delta1 = propagate(layer, desc0, src0), propagate(layer, desc1, src1)
            desc0, desc1 = desc0 + delta0, desc1 + delta1

        mdesc0, mdesc1 = model.final_proj(desc0), model.final_proj(desc1)
        scores = torch.einsum("bdn,bdm->bnm", mdesc0, mdesc1) / dim**0.5
        log_assignment = reference_log_optimal_transport(
            scores, model.bin_score, int(conf["sinkhorn_iterations"])
        )
        valid0 = torch.ones(scores.shape[:2], dtype=torch.bool, device=scores.device)
        valid1 = torch.ones(1, scores.shape[2], dtype=torch.bool, device=scores.device)
        matches = extract_matches(log_assignment, float(conf["match_threshold"]), valid0, valid1)
    return {"log_assignment": log_assignment, **matches}


def check_superglue_baseline(ours: Any, baseline: Any, atol: float = 1e-4) -> None:
    """Raise BaselineMismatchError unless the two log assignments agree within atol."""
    if tuple(ours.shape) != tuple(baseline.shape):
        raise BaselineMismatchError(
            f"SuperGlue baseline: log assignment shape {tuple(baseline.shape)}, "
            f"ours {tuple(ours.shape)}"
        )
    ours, baseline = ours.float().cpu(), baseline.float().cpu()
    if not bool((ours.isfinite() == baseline.isfinite()).all()):
        raise BaselineMismatchError("SuperGlue baseline: log assignment finite at other places")
    finite = ours.isfinite()
    worst = float((ours[finite] - baseline[finite]).abs().max()) if bool(finite.any()) else 0.0
    if not worst <= atol:
        raise BaselineMismatchError(
            f"SuperGlue baseline: log assignment differs by up to {worst:.3g} (> {atol})"
        )
