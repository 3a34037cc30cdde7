"""The ONNX graphs of one configuration's networks, by network name: each exporter loads
the weights (the usual lookup), writes its files into a folder and returns (path, what is
baked in) per file. Used by ``superglue-ros export`` and the parity and ONNX benchmarks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def export_superpoint(params: Any, weights_dir: str | None, out: Path, opset: int) -> list:
    from superglue_ros.models.onnx_export import export_superpoint
    from superglue_ros.models.onnx_format import SUPERPOINT_FILE
    from superglue_ros.models.weights import load_superpoint

    model = load_superpoint(weights_dir, {"nms_radius": params["superpoint.nms_radius"]})
    path = export_superpoint(model, out / SUPERPOINT_FILE, opset)
    return [(path, "baked " + json.dumps({"nms_radius": model.conf["nms_radius"]}))]


def export_superglue(params: Any, weights_dir: str | None, out: Path, opset: int) -> list:
    from superglue_ros.models.onnx_export import export_superglue
    from superglue_ros.models.onnx_format import superglue_file
    from superglue_ros.models.weights import load_superglue

    which = params["superglue.weights"]
    iterations = params["superglue.sinkhorn_iterations"]
    model = load_superglue(which, weights_dir, {"sinkhorn_iterations": iterations})
    path = export_superglue(model, out / superglue_file(which), opset)
    return [(path, "baked " + json.dumps({"sinkhorn_iterations": iterations}))]


def export_aliked(params: Any, weights_dir: str | None, out: Path, opset: int) -> list:
    from superglue_ros.models.onnx_bundle import export_aliked_files

    model = params["aliked.model"]
    return [(p, f"aliked-{model}") for p in export_aliked_files(model, out, weights_dir, opset)]


def export_disk(params: Any, weights_dir: str | None, out: Path, opset: int) -> list:
    from superglue_ros.models.onnx_bundle import export_disk_files

    return [(p, "disk") for p in export_disk_files(out, weights_dir, opset)]


def export_lightglue(params: Any, weights_dir: str | None, out: Path, opset: int) -> list:
    from superglue_ros.models.onnx_bundle import export_lightglue_files
    from superglue_ros.models.onnx_export import OnnxExportError
    from superglue_ros.pipeline.registry import choose_networks

    config, _ = choose_networks(params)
    features = config.text("frontend")
    if features not in ("aliked", "disk", "superpoint"):
        raise OnnxExportError(
            f"LightGlue has weights for aliked, disk and superpoint; frontend is {features}"
        )
    paths = export_lightglue_files(features, out, weights_dir, opset=opset)
    return [(p, f"lightglue for {features}") for p in paths]


EXPORTERS: dict[str, Callable[[Any, str | None, Path, int], list]] = {
    "superpoint": export_superpoint,
    "superglue": export_superglue,
    "aliked": export_aliked,
    "disk": export_disk,
    "lightglue": export_lightglue,
}
