"""SuperPoint and SuperGlue as ONNX graphs (for onnxruntime's CPU, CUDA and TensorRT
providers, and for C++ consumers).

What each graph holds, and why:

* ``superpoint.onnx``: ``image`` [B, 1, H, W] float32 in [0, 1] (B, H, W dynamic) ->
  ``scores`` [B, 8h, 8w] float32 after non-maximum suppression (zero where
  suppressed), ``descriptors`` [B, D, h, w] float32 L2-normalised, h = floor(H/8),
  w = floor(W/8). The dense network and the NMS (max-pools, the costly part) are in
  the graph; nms_radius is baked in. Keypoint selection (threshold, border, top-k)
  and descriptor sampling at the keypoints are left to the runtime: their output
  size depends on the data, so outside the graph every shape follows from the
  image size alone (what TensorRT needs to build one engine), and
  keypoint_threshold / remove_borders / max_keypoints change without a new export.
* ``superglue_<weights>.onnx``: the batched, masked matcher of ``SuperGlue``:
  ``keypoints0`` [B, N, 2], ``scores0`` [B, N], ``descriptors0`` [B, D, N],
  ``image_size0`` [B, 2] (H, W), ``mask0`` [B, N] bool, the same for side 1 (M
  points), ``match_threshold`` (a float32 scalar, so it changes at run time) ->
  ``log_assignment`` [B, N+1, M+1], ``matches0`` [B, N] / ``matches1`` [B, M] int64,
  ``matching_scores0`` / ``matching_scores1`` float32. B, N and M are dynamic (N, M
  >= 1: a pair with no point on a side is the caller's to skip). Padded points are
  masked in attention and in the Sinkhorn marginals, as in the torch model. The
  optimal transport runs in float32 with sinkhorn_iterations unrolled (baked in).

Both are written in float32 with torch's TorchScript-based exporter
(``dynamo=False``): it writes them in seconds, where the torch.export-based one
took 34 s for a 2-layer SuperGlue on this 2-core CPU and needs onnxscript. The
metadata of ``models/onnx_format.py`` is added to every file, which is written to
a temporary name first and renamed into place, so an interrupted export never
leaves a partial file under the real name.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .onnx_format import (
    CONFIG_KEY,
    DEFAULT_OPSET,
    FORMAT_KEY,
    FORMAT_VERSION,
    MODEL_KEY,
    SUPERGLUE_INPUTS,
    SUPERGLUE_OUTPUTS,
    SUPERPOINT_INPUTS,
    SUPERPOINT_OUTPUTS,
    SUPPORTED_OPSETS,
    WEIGHTS_KEY,
    WEIGHTS_SHA256_KEY,
    baked_config,
)
from .superglue import SuperGlue, extract_matches, log_optimal_transport
from .superpoint import SuperPoint, simple_nms


class OnnxExportError(ValueError):
    """An export that cannot be done: bad opset, unwritable output, exporter failure."""


def state_sha1(module: nn.Module) -> str:
    """SHA-1 of a module's state dict (names, dtypes, shapes and values), in name order."""
    digest = hashlib.sha1()
    for name, tensor in sorted(module.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)};".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class SuperPointGraph(nn.Module):
    """SuperPoint's dense outputs after NMS: image [B, 1, H, W] -> (scores, descriptors)."""

    def __init__(self, model: SuperPoint) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores, descriptors = self.model.encode(image)
        return simple_nms(scores, int(self.model.conf["nms_radius"])), descriptors


class SuperGlueGraph(nn.Module):
    """SuperGlue on padded, masked pairs with the threshold as an input (see module doc)."""

    def __init__(self, model: SuperGlue) -> None:
        super().__init__()
        self.model = model
        # Fused inference weights as constants of the graph (no autograd history).
        self.fused = _detached(model.prepare())

    def forward(
        self,
        keypoints0: torch.Tensor,
        scores0: torch.Tensor,
        descriptors0: torch.Tensor,
        image_size0: torch.Tensor,
        mask0: torch.Tensor,
        keypoints1: torch.Tensor,
        scores1: torch.Tensor,
        descriptors1: torch.Tensor,
        image_size1: torch.Tensor,
        mask1: torch.Tensor,
        match_threshold: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        side0 = _side(keypoints0, scores0, descriptors0, image_size0, mask0)
        side1 = _side(keypoints1, scores1, descriptors1, image_size1, mask1)
        scores = self.model.match_scores(side0, side1, self.fused, masked=True)
        log_assignment = log_optimal_transport(
            scores.float(),
            self.model.bin_score.detach().float(),
            int(self.model.conf["sinkhorn_iterations"]),
            mask0,
            mask1,
        )
        out = extract_matches(log_assignment, match_threshold, mask0, mask1)
        return (log_assignment, *(out[name] for name in SUPERGLUE_OUTPUTS[1:]))


def _side(
    keypoints: torch.Tensor,
    scores: torch.Tensor,
    descriptors: torch.Tensor,
    image_size: torch.Tensor,
    mask: torch.Tensor,
) -> dict[str, torch.Tensor]:
    return {
        "kpts": keypoints,
        "scores": scores,
        "desc": descriptors.transpose(1, 2),
        "size": image_size,
        "mask": mask,
    }


def _detached(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, Mapping):
        return {key: _detached(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_detached(item) for item in value)
    return value


def check_opset(opset: int) -> int:
    if opset not in SUPPORTED_OPSETS:
        raise OnnxExportError(
            f"ONNX opset {opset} is not supported: use {SUPPORTED_OPSETS.start}-"
            f"{SUPPORTED_OPSETS.stop - 1} (default {DEFAULT_OPSET})"
        )
    return opset


def writable_directory(directory: str | Path) -> Path:
    """directory, created if needed; OnnxExportError when it cannot be written to."""
    path = Path(directory).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as error:
        reason = error.strerror or str(error)
        raise OnnxExportError(f"cannot write ONNX files to {path}: {reason}") from error
    return path


def export_superpoint(model: SuperPoint, path: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """Write model as superpoint.onnx-style graph to path (see the module docstring)."""
    example = torch.rand(2, 1, 64, 80)
    axes = {
        "image": {0: "batch", 2: "height", 3: "width"},
        "scores": {0: "batch", 1: "score_height", 2: "score_width"},
        "descriptors": {0: "batch", 2: "cells_high", 3: "cells_wide"},
    }
    return _export(
        SuperPointGraph(model.float().eval()),
        (example,),
        Path(path),
        SUPERPOINT_INPUTS,
        SUPERPOINT_OUTPUTS,
        axes,
        opset,
        "superpoint",
        model,
    )


def export_superglue(model: SuperGlue, path: str | Path, opset: int = DEFAULT_OPSET) -> Path:
    """Write model as a superglue_<weights>.onnx-style graph to path (see the module docstring)."""
    generator = torch.Generator().manual_seed(0)
    dim = int(model.conf["descriptor_dim"])
    batch, points0, points1 = 2, 6, 5
    descriptors0 = torch.randn(batch, dim, points0, generator=generator)
    descriptors1 = torch.randn(batch, dim, points1, generator=generator)
    mask1 = torch.ones(batch, points1, dtype=torch.bool)
    mask1[1, 3:] = False
    example = (
        torch.rand(batch, points0, 2, generator=generator) * 64,
        torch.rand(batch, points0, generator=generator),
        nn.functional.normalize(descriptors0, dim=1),
        torch.tensor([[64.0, 80.0]] * batch),
        torch.ones(batch, points0, dtype=torch.bool),
        torch.rand(batch, points1, 2, generator=generator) * 64,
        torch.rand(batch, points1, generator=generator),
        nn.functional.normalize(descriptors1, dim=1),
        torch.tensor([[64.0, 80.0]] * batch),
        mask1,
        torch.tensor(0.2),
    )
    axes: dict[str, dict[int, str]] = {}
    for side, points in (("0", "N"), ("1", "M")):
        axes |= {
            f"keypoints{side}": {0: "batch", 1: points},
            f"scores{side}": {0: "batch", 1: points},
            f"descriptors{side}": {0: "batch", 2: points},
            f"image_size{side}": {0: "batch"},
            f"mask{side}": {0: "batch", 1: points},
            f"matches{side}": {0: "batch", 1: points},
            f"matching_scores{side}": {0: "batch", 1: points},
        }
    axes["log_assignment"] = {0: "batch", 1: "N_plus_1", 2: "M_plus_1"}
    return _export(
        SuperGlueGraph(model.float().eval()),
        example,
        Path(path),
        SUPERGLUE_INPUTS,
        SUPERGLUE_OUTPUTS,
        axes,
        opset,
        "superglue",
        model,
    )


def _export(
    graph: nn.Module,
    example: tuple[torch.Tensor, ...],
    path: Path,
    inputs: tuple[str, ...],
    outputs: tuple[str, ...],
    axes: dict[str, dict[int, str]],
    opset: int,
    kind: str,
    model: nn.Module,
) -> Path:
    metadata = {
        MODEL_KEY: kind,
        FORMAT_KEY: FORMAT_VERSION,
        CONFIG_KEY: json.dumps(baked_config(kind, model.conf), sort_keys=True),
        WEIGHTS_KEY: state_sha1(model),
    }
    return _write(graph, example, path, inputs, outputs, axes, opset, metadata)


def export_graph(
    graph: nn.Module,
    example: tuple[torch.Tensor, ...],
    path: Path,
    input_axes: Mapping[str, dict[int, str]],
    outputs: tuple[str, ...],
    output_axes: Mapping[str, dict[int, str]],
    opset: int,
    meta: tuple[str, Mapping[str, Any], str],
) -> Path:
    """Write graph (inputs named as input_axes, in order) with the metadata
    meta = (model kind, options that shaped it, SHA-256 of the weights file)."""
    kind, config, sha256 = meta
    metadata = {
        MODEL_KEY: kind,
        FORMAT_KEY: FORMAT_VERSION,
        CONFIG_KEY: json.dumps(dict(config), sort_keys=True),
        WEIGHTS_SHA256_KEY: sha256,
    }
    axes = {**input_axes, **output_axes}
    return _write(graph, example, path, tuple(input_axes), outputs, axes, opset, metadata)


def _write(
    graph: nn.Module,
    example: tuple[torch.Tensor, ...],
    path: Path,
    inputs: tuple[str, ...],
    outputs: tuple[str, ...],
    axes: Mapping[str, dict[int, str]],
    opset: int,
    metadata: Mapping[str, str],
) -> Path:
    import onnx

    check_opset(opset)
    # A new wrapper module is in training mode, which the exporter restores on the
    # wrapped model afterwards (BatchNorm would then normalise by the batch).
    graph.eval()
    directory = writable_directory(path.parent)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=directory)
    os.close(handle)
    temp = Path(temp_name)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The tracer warns about shape-dependent Python branches (empty sides);
            # the runtime never feeds an empty side, so the traced branch is the one used.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                example,
                str(temp),
                dynamo=False,
                opset_version=opset,
                input_names=list(inputs),
                output_names=list(outputs),
                dynamic_axes=dict(axes),
            )
        proto = onnx.load(str(temp))
        onnx.helper.set_model_props(proto, dict(metadata))
        onnx.save(proto, str(temp))
        temp.chmod(0o644)  # mkstemp's 0600 would hide the file from other users
        os.replace(temp, path)
    except OSError as error:
        raise OnnxExportError(f"cannot write {path}: {error.strerror or error}") from error
    finally:
        temp.unlink(missing_ok=True)
    return path
