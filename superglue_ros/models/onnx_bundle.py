"""The ALIKED, DISK and LightGlue graphs of one configuration, exported from the
released weights (found and SHA-256 checked by ``models/weights.py``).

Shared by ``superglue-ros export onnx`` and the runtime's export on first use
(``pipeline/onnx_learned.py``). Which options a graph bakes in: only its
network and sizes; keypoint limits, thresholds, NMS radii, LightGlue's
confidences are applied by the runtime, so they change without a new export.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .onnx_export import DEFAULT_OPSET
from .onnx_format import LIGHTGLUE_FORMS


def export_aliked_files(
    model: str, directory: str | Path, weights_dir: str | None = None, opset: int = DEFAULT_OPSET
) -> list[Path]:
    """aliked_<model>_dense.onnx and aliked_<model>_descriptors.onnx from aliked-<model>.pth."""
    from .extractors import build_aliked
    from .onnx_extractors import export_aliked
    from .weights import ALIKED_MODELS_BY_NAME, load_state, sha256_of

    state, path = load_state(ALIKED_MODELS_BY_NAME[model], weights_dir)
    network = build_aliked(state, {"model": model}, str(path))
    return export_aliked(network, model, directory, sha256_of(path), opset)


def export_disk_files(
    directory: str | Path, weights_dir: str | None = None, opset: int = DEFAULT_OPSET
) -> list[Path]:
    """disk_dense.onnx from disk-depth-save.pth."""
    from .extractors import build_disk
    from .onnx_extractors import export_disk
    from .weights import DISK_FILE, load_state, sha256_of

    state, path = load_state(DISK_FILE, weights_dir)
    return export_disk(build_disk(state, str(path)), directory, sha256_of(path), opset)


def export_lightglue_files(
    features: str,
    directory: str | Path,
    weights_dir: str | None = None,
    forms: Sequence[str] = LIGHTGLUE_FORMS,
    opset: int = DEFAULT_OPSET,
) -> list[Path]:
    """The LightGlue graphs for <features> descriptors, in the given forms."""
    from .lightglue import build_lightglue
    from .onnx_lightglue import export_lightglue_adaptive, export_lightglue_fixed
    from .weights import LIGHTGLUE_FILES, load_state, sha256_of

    unknown = [form for form in forms if form not in LIGHTGLUE_FORMS]
    if unknown:
        raise ValueError(f"LightGlue ONNX forms are {', '.join(LIGHTGLUE_FORMS)}; got {unknown}")
    state, path = load_state(LIGHTGLUE_FILES[features], weights_dir)
    model = build_lightglue(state, {}, str(path))
    sha256 = sha256_of(path)
    written = []
    if "fixed" in forms:
        written.append(export_lightglue_fixed(model, features, directory, sha256, opset))
    if "adaptive" in forms:
        written += export_lightglue_adaptive(model, features, directory, sha256, opset)
    return written


def weights_sha256(name: str, weights_dir: str | None = None) -> str:
    """SHA-256 of the verified weights file <name> (what the exported graphs record)."""
    from .weights import find_weights, sha256_of

    return sha256_of(find_weights(name, weights_dir))
