"""What an exported graph of this project is: file names, opsets, metadata keys.

Shared by the exporter (``models/onnx_export.py``, needs torch) and the runtime
(``pipeline/onnx_runtime.py``, needs only numpy and onnxruntime), so this module
imports neither torch nor onnx.

Every file written by ``superglue-ros export onnx`` carries these ONNX
``metadata_props``:

* ``superglue_ros.model``: ``superpoint`` or ``superglue``;
* ``superglue_ros.format``: FORMAT_VERSION, the layout of inputs and outputs;
* ``superglue_ros.config``: JSON of the model options baked into the graph
  (SuperPoint: ``descriptor_dim``, ``nms_radius``; SuperGlue: ``descriptor_dim``,
  ``keypoint_encoder``, ``GNN_layers``, ``num_heads``, ``sinkhorn_iterations``);
* ``superglue_ros.weights_sha1``: SHA-1 of the state dict the graph was made from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

FORMAT_VERSION = "1"
#: Opsets the exporter writes and the runtime reads: 14 is the first with the
#: attention and Trilu operators the graphs need, 20 the last that torch's
#: TorchScript-based exporter writes.
SUPPORTED_OPSETS = range(14, 21)
DEFAULT_OPSET = 17

SUPERPOINT_FILE = "superpoint.onnx"
MODEL_KEY = "superglue_ros.model"
FORMAT_KEY = "superglue_ros.format"
CONFIG_KEY = "superglue_ros.config"
WEIGHTS_KEY = "superglue_ros.weights_sha1"

#: Model options baked into each graph (the rest are applied by the runtime).
BAKED_OPTIONS: dict[str, tuple[str, ...]] = {
    "superpoint": ("descriptor_dim", "nms_radius"),
    "superglue": (
        "descriptor_dim",
        "keypoint_encoder",
        "GNN_layers",
        "num_heads",
        "sinkhorn_iterations",
    ),
}

SUPERPOINT_INPUTS = ("image",)
SUPERPOINT_OUTPUTS = ("scores", "descriptors")
SUPERGLUE_INPUTS = (
    "keypoints0",
    "scores0",
    "descriptors0",
    "image_size0",
    "mask0",
    "keypoints1",
    "scores1",
    "descriptors1",
    "image_size1",
    "mask1",
    "match_threshold",
)
SUPERGLUE_OUTPUTS = (
    "log_assignment",
    "matches0",
    "matches1",
    "matching_scores0",
    "matching_scores1",
)


def superglue_file(weights: str) -> str:
    """File name of the SuperGlue graph made from superglue_<weights>.pth."""
    return f"superglue_{weights}.onnx"


def baked_config(model: str, conf: Mapping[str, Any]) -> dict[str, Any]:
    """The options of conf that a graph of this model bakes in (JSON-ready values)."""
    return {key: json.loads(json.dumps(conf[key])) for key in BAKED_OPTIONS[model]}


# ----------------------------------------------------------------- ALIKED, DISK, LightGlue
#
# Their graphs carry superglue_ros.weights_sha256 (the SHA-256 of the released
# .pth file, the value models/weights.py checks) instead of the SHA-1 of a
# state dict, and superglue_ros.config holds the options that shaped the graph.

WEIGHTS_SHA256_KEY = "superglue_ros.weights_sha256"
DISK_DENSE_FILE = "disk_dense.onnx"
LIGHTGLUE_FORMS = ("fixed", "adaptive")


def aliked_files(model: str) -> tuple[str, str]:
    """The dense and descriptor-head graphs of ALIKED-<model>."""
    return f"aliked_{model}_dense.onnx", f"aliked_{model}_descriptors.onnx"


def extractor_config(network: str, model: str) -> dict[str, Any]:
    """What an extractor graph depends on besides its weights."""
    return {"network": network, "model": model}


def lightglue_fixed_file(features: str) -> str:
    """The fixed-depth LightGlue graph for <features> descriptors (all layers, no pruning)."""
    return f"lightglue_{features}_fixed.onnx"


def lightglue_adaptive_dir(features: str) -> str:
    """The folder of the adaptive form: one graph per stage, driven by the runtime."""
    return f"lightglue_{features}_adaptive"


def lightglue_stage_files(n_layers: int) -> list[str]:
    """Files of the adaptive form, relative to its folder: the input encoder, then per
    layer its transformer layer (with the confidence and matchability heads) and its
    assignment."""
    files = ["encode.onnx"]
    for i in range(n_layers):
        files += [f"layer_{i}.onnx", f"assign_{i}.onnx"]
    return files
