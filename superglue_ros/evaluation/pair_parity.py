"""Parity of a configuration's frontend and matcher with their exported ONNX graphs on one
image pair: keypoints, descriptors, matches and LightGlue's layers, each a Check against
the tolerances below (tools/parity_pair.py lists them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

KEYPOINT_PX = 0.5
KEYPOINT_SHARE = 0.99
COSINE_MIN = 0.999
MATCH_SHARE = 0.99


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


def export_for(config: Any, folder: Path) -> None:
    """The graphs of config's frontend and matcher, into folder."""
    from superglue_ros.models.onnx_format import DEFAULT_OPSET
    from superglue_ros.pipeline.onnx_exports import EXPORTERS

    weights_dir = config.text("weights_dir") or None
    for name in (config.text("frontend"), config.text("matcher")):
        if name not in EXPORTERS:
            raise ValueError(f"{name} has no ONNX export (classical networks run as they are)")
        EXPORTERS[name](config, weights_dir, folder, DEFAULT_OPSET)


def _build(config: Any, changes: dict[str, Any]) -> tuple[Any, Any]:
    from superglue_ros.pipeline.registry import build_frontend, build_matcher

    params = {**config, **changes}
    return build_frontend(params), build_matcher(params)


def _pixels(frontend: Any, image: np.ndarray) -> np.ndarray:
    from superglue_ros.pipeline.frontend import to_grayscale, to_rgb

    return to_rgb(image) if getattr(frontend, "color", False) else to_grayscale(image)


def compare(config: Any, images: list[np.ndarray], folder: Path) -> list[Check]:
    """Every check, in order, for one pair."""
    onnx = {"runtime": "onnxruntime", "onnx_dir": str(folder)}
    torch_frontend, torch_matcher = _build(config, {"runtime": "torch"})
    onnx_frontend, _ = _build(config, onnx)
    ours = [torch_frontend.extract(_pixels(torch_frontend, image)) for image in images]
    theirs = [onnx_frontend.extract(_pixels(onnx_frontend, image)) for image in images]
    checks: list[Check] = []
    nearest = []
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        index, close = nearest_keypoints(a.keypoints, b.keypoints)
        nearest.append(index)
        share = float(close.mean()) if len(close) else 1.0
        checks.append(
            Check(
                f"keypoints image{i}",
                share >= KEYPOINT_SHARE and len(a) > 0,
                f"torch {len(a)}, onnx {len(b)}, within {KEYPOINT_PX} px {share * 100:.2f}%",
            )
        )
        cosine = descriptor_cosine(a.descriptors[close], b.descriptors[index[close]])
        checks.append(
            Check(f"descriptors image{i}", cosine >= COSINE_MIN, f"min cosine {cosine:.6f}")
        )
    if config.text("matcher") == "lightglue":
        checks += lightglue_checks(config, onnx, ours, theirs, nearest, torch_matcher)
    else:
        onnx_matcher = _build(config, onnx)[1]
        checks.append(match_check("matches", torch_matcher, onnx_matcher, ours, theirs, nearest))
    return checks


def lightglue_checks(config, onnx, ours, theirs, nearest, adaptive_torch) -> list[Check]:
    full_depth = {"lightglue.depth_confidence": -1.0, "lightglue.width_confidence": -1.0}
    adaptive = _build(config, {**onnx, "lightglue.onnx_form": "adaptive"})[1]
    checks = [match_check("matches adaptive", adaptive_torch, adaptive, ours, theirs, nearest)]
    torch_layers, onnx_layers = adaptive_torch.last_layers, adaptive.last_layers
    checks.append(
        Check(
            "layers adaptive",
            torch_layers == onnx_layers,
            f"torch {torch_layers}, onnx {onnx_layers}",
        )
    )
    fixed_torch = _build(config, {"runtime": "torch", **full_depth})[1]
    fixed = _build(config, {**onnx, **full_depth, "lightglue.onnx_form": "fixed"})[1]
    checks.append(match_check("matches fixed", fixed_torch, fixed, ours, theirs, nearest))
    return checks


def match_check(name, torch_matcher, onnx_matcher, ours, theirs, nearest) -> Check:
    """Matches of image0 -> image1 by each runtime, compared by keypoint position."""
    reference = torch_matcher.match(ours[0], [ours[1]])[0].matches0
    exported = onnx_matcher.match(theirs[0], [theirs[1]])[0].matches0
    share, counts = same_matches(reference, exported, nearest)
    return Check(
        name,
        share >= MATCH_SHARE,
        f"torch {counts[0]}, onnx {counts[1]}, identical {share * 100:.2f}%",
    )


def nearest_keypoints(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each keypoint of a, the index of the nearest one of b and whether it is
    within KEYPOINT_PX."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros(len(a), np.int64), np.zeros(len(a), bool)
    index = np.empty(len(a), np.int64)
    distance = np.empty(len(a))
    for start in range(0, len(a), 512):  # bounded memory: 512 x len(b) distances at once
        block = np.linalg.norm(a[start : start + 512, None] - b[None], axis=2)
        index[start : start + 512] = block.argmin(1)
        distance[start : start + 512] = block.min(1)
    return index, distance <= KEYPOINT_PX


def descriptor_cosine(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) == 0:
        return 0.0
    a, b = a.astype(np.float64), b.astype(np.float64)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    return float(cosine.min())


def same_matches(
    reference: np.ndarray, exported: np.ndarray, nearest: list[np.ndarray]
) -> tuple[float, tuple[int, int]]:
    """Share of the matches of either run that the other makes between the same
    keypoints (torch keypoint i is the exported keypoint nearest[0][i])."""
    pairs_ref = {
        (int(nearest[0][i]), int(nearest[1][j])) for i, j in enumerate(reference) if j >= 0
    }
    pairs_exp = {(i, int(j)) for i, j in enumerate(exported) if j >= 0}
    union = pairs_ref | pairs_exp
    share = len(pairs_ref & pairs_exp) / len(union) if union else 1.0
    return share, (len(pairs_ref), len(pairs_exp))
