"""Building ALIKED, DISK and LightGlue on onnxruntime from the pipeline's Config.

Where the graphs come from, as for SuperPoint / SuperGlue (``onnx_runtime.py``):
``onnx_dir`` set: the files ``superglue-ros export onnx`` wrote there (a missing
or damaged file is an error saying how to write it); empty: exported on first
use into ``$XDG_CACHE_HOME/superglue_ros/onnx/<key>/``, key = hash of the
weights file's SHA-256, the network, the graph format and the opset (needs
torch; later starts reuse the files).

``onnx_warmup`` (auto: when TensorRT runs the graphs) runs every graph once here,
so that TensorRT builds its engines at start-up and never on a live frame.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from superglue_ros.models.onnx_format import (
    DEFAULT_OPSET,
    DISK_DENSE_FILE,
    FORMAT_VERSION,
    aliked_files,
    lightglue_adaptive_dir,
    lightglue_fixed_file,
    lightglue_stage_files,
)

from .onnx_extractors import OnnxAlikedFrontend, OnnxDiskFrontend
from .onnx_lightglue import OnnxLightGlueMatcher
from .onnx_runtime import (
    TENSORRT,
    _check_precision,
    device_kind,
    open_session,
    user_cache,
    uses_tensorrt,
)
from .params import Config

OnnxExtractor = OnnxAlikedFrontend | OnnxDiskFrontend


def graph_folder(
    config: Config, key_parts: Callable[[], list[Any]], export: Callable[[Path], Any]
) -> Path:
    """onnx_dir, or the cache folder of these weights and graphs (exported when absent).

    key_parts is called only for the cache: with onnx_dir the weights need not exist here.
    """
    onnx_dir = config.text("onnx_dir")
    if onnx_dir:
        return Path(onnx_dir).expanduser()
    text = json.dumps([*key_parts(), FORMAT_VERSION, DEFAULT_OPSET], sort_keys=True)
    folder = user_cache() / "onnx" / hashlib.sha256(text.encode()).hexdigest()[:16]
    marker = folder / ".complete"
    if not marker.is_file():
        export(folder)
        marker.write_text("written by superglue_ros on first use\n")
    return folder


def _weights_key(name: str, config: Config) -> str:
    from superglue_ros.models.onnx_bundle import weights_sha256

    return weights_sha256(name, config.text("weights_dir") or None)


def _bundle_folder(config: Config, network: list[str], weights_file: str) -> Path:
    """graph_folder of one models.onnx_bundle exporter: network is [name, *its leading
    arguments] (export_<name>_files(*arguments, folder, weights_dir)); the cache key is
    network and the SHA-256 of weights_file."""
    weights_dir = config.text("weights_dir") or None

    def export(folder: Path) -> None:
        from superglue_ros.models import onnx_bundle  # torch, only when graphs are written

        getattr(onnx_bundle, f"export_{network[0]}_files")(*network[1:], folder, weights_dir)

    return graph_folder(config, lambda: [*network, _weights_key(weights_file, config)], export)


def _warm(config: Config, session: Any) -> bool:
    choice = config.text("onnx_warmup")
    return choice == "on" or (choice == "auto" and uses_tensorrt(session))


ExtractorFiles = tuple[list[str], str, tuple[str, ...]]


@dataclass(frozen=True)
class OnnxExtractorSpec:
    """One ONNX frontend: everything build_onnx_extractor needs to know of it."""

    frontend: type[OnnxExtractor]
    settings: tuple[str, ...]  # <network>.<name> of the Config, which make its conf
    graphs: tuple[str, ...]  # the graphs it runs, in the order the class takes their sessions
    # model -> (the exporter's network and arguments (see _bundle_folder), the weights
    # file, the graph files in graphs' order); a function, as the weights table needs torch
    files: Callable[[str], ExtractorFiles]


def _aliked_files(model: str) -> ExtractorFiles:
    from superglue_ros.models.weights import ALIKED_MODELS_BY_NAME

    return ["aliked", model], ALIKED_MODELS_BY_NAME[model], aliked_files(model)


def _disk_files(model: str) -> ExtractorFiles:  # DISK has one model, "depth"
    from superglue_ros.models.weights import DISK_FILE

    return ["disk"], DISK_FILE, (DISK_DENSE_FILE,)


ONNX_EXTRACTORS: dict[str, OnnxExtractorSpec] = {
    "aliked": OnnxExtractorSpec(
        OnnxAlikedFrontend,
        ("model", "max_keypoints", "detection_threshold", "nms_radius"),
        ("aliked_dense", "aliked_descriptors"),
        _aliked_files,
    ),
    "disk": OnnxExtractorSpec(
        OnnxDiskFrontend,
        ("max_keypoints", "nms_window", "score_threshold"),
        ("disk_dense",),
        _disk_files,
    ),
}


def build_onnx_extractor(config: Config, network: str) -> OnnxExtractor:
    """ALIKED or DISK (a network of ONNX_EXTRACTORS) on its graphs (see the module doc)."""
    _check_precision(config)
    spec = ONNX_EXTRACTORS[network]
    conf = {name: config[f"{network}.{name}"] for name in spec.settings}
    model = str(conf.get("model", "depth"))
    bundle, weights_file, files = spec.files(model)
    folder = _bundle_folder(config, bundle, weights_file)
    expected = {"network": network, "model": model}
    sessions = [
        open_session(folder / file, graph, expected, config.text("device"))[0]
        for file, graph in zip(files, spec.graphs, strict=True)
    ]
    extractor = spec.frontend(*sessions, conf)
    if _warm(config, sessions[0]):
        extractor.warmup()
    return extractor


def lightglue_form(config: Config) -> str:
    """adaptive or fixed: lightglue.onnx_form, auto resolved (fixed under TensorRT)."""
    form = config.text("lightglue.onnx_form")
    if form != "auto":
        return form
    import onnxruntime as ort

    device = config.text("device")
    tensorrt = TENSORRT in ort.get_available_providers() and device != "cpu"
    return "fixed" if tensorrt else "adaptive"


def open_lightglue_sessions(
    folder: Path, features: str, form: str, device: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The sessions of one form ({"fixed": s} or the stages) and the graphs' options."""
    expected = {"network": "lightglue", "features": features, "form": form}
    if form == "fixed":
        session, config = open_session(
            folder / lightglue_fixed_file(features), "lightglue_fixed", expected, device
        )
        return {"fixed": session}, config
    stages = folder / lightglue_adaptive_dir(features)
    encode, config = open_session(stages / "encode.onnx", "lightglue_encode", expected, device)
    sessions = {"encode": encode}
    for name in lightglue_stage_files(int(config["n_layers"]))[1:]:
        kind = "lightglue_layer" if name.startswith("layer_") else "lightglue_assign"
        layer = {**expected, "layer": int(name.split("_")[1].split(".")[0])}
        sessions[name[: -len(".onnx")]], _ = open_session(stages / name, kind, layer, device)
    return sessions, config


def build_onnx_lightglue_matcher(config: Config) -> OnnxLightGlueMatcher:
    """LightGlue for the configured frontend, in lightglue.onnx_form (see the module doc)."""
    from superglue_ros.models.weights import LIGHTGLUE_FILES

    _check_precision(config)
    features = config.text("frontend")
    if features not in LIGHTGLUE_FILES:
        raise ValueError(
            f"matcher 'lightglue' has weights for frontends {', '.join(LIGHTGLUE_FILES)}; "
            f"got frontend {features!r}"
        )
    form = lightglue_form(config)
    folder = _bundle_folder(config, ["lightglue", features], LIGHTGLUE_FILES[features])
    sessions, graph_config = open_lightglue_sessions(folder, features, form, config.text("device"))
    first = next(iter(sessions.values()))
    matcher = OnnxLightGlueMatcher(
        sessions,
        graph_config,
        {
            "filter_threshold": config.number("lightglue.filter_threshold"),
            "depth_confidence": config.number("lightglue.depth_confidence"),
            "width_confidence": config.number("lightglue.width_confidence"),
        },
        device_kind(first),
    )
    if _warm(config, first):
        matcher.warmup(keyframes=config.integer("keyframes.buffer_size"))
    return matcher
