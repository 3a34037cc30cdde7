"""SuperPoint and SuperGlue on their exported ONNX graphs, with onnxruntime.

The ``runtime: onnxruntime`` counterpart of ``frontends/superpoint.py`` and
``matchers/superglue.py``: the same
Frontend / Matcher protocols, the same parameters. Running needs only numpy,
onnx and onnxruntime; torch is needed only to export a graph that is not there.

Where the graphs come from (``onnx_dir``):

* set: ``<onnx_dir>/superpoint.onnx`` and ``<onnx_dir>/superglue_<superglue.weights>.onnx``,
  written by ``superglue-ros export onnx --out DIR`` (on this machine or another).
  Nothing is exported; a missing, damaged or differently configured file is an
  error that says how to write it.
* empty (default): exported on first use from the weights found by the usual
  lookup (``weights_dir``, ``$SUPERGLUE_ROS_WEIGHTS``, user cache) into
  ``$XDG_CACHE_HOME/superglue_ros/onnx/<key>/``, key = SHA-1 of the weights' state
  dict, the baked options, the graph format and the opset. Later starts with the
  same weights and options reuse the files; other weights or options get their own.

Providers (``device``): ``cpu`` -> CPUExecutionProvider; ``cuda`` / ``cuda:N`` ->
TensorrtExecutionProvider (its engines cached under ``$XDG_CACHE_HOME/superglue_ros/
tensorrt/<key>``, key = hash of the graph, the TensorRT version and the GPU's name,
see ``tensorrt_cache_key``), then CUDAExecutionProvider, on device N, whichever of the two this
onnxruntime build has (``pip install onnxruntime-gpu``), with the CPU provider last
for operators neither takes; ``auto`` -> as ``cuda`` when the build has a GPU
provider, else the CPU. See ``select_providers``.

What the graphs leave to this module (see ``models/onnx_export.py``): SuperPoint's
keypoint selection (threshold, border, top-k) and descriptor sampling, done here
in numpy exactly as ``models/superpoint.py`` does them; and skipping pairs with no
point on a side. ALIKED, DISK and LightGlue: ``pipeline/onnx_extractors.py`` and
``pipeline/onnx_lightglue.py``, built by ``pipeline/onnx_learned.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from superglue_ros.models.onnx_format import (
    CONFIG_KEY,
    DEFAULT_OPSET,
    FORMAT_KEY,
    FORMAT_VERSION,
    MODEL_KEY,
    SUPERPOINT_FILE,
    SUPPORTED_OPSETS,
    superglue_file,
)

from .onnx_extractors import clear_border
from .params import Config, check_runtime_changes
from .types import Features, PairMatches

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
ProviderList = list[tuple[str, dict[str, Any]]]


#: CPU threads per operator of every session opened (0: onnxruntime's default, one per
#: core); benchmarks set it to compare runtimes at equal thread counts.
DEFAULT_THREADS = 0


class OnnxModelError(ValueError):
    """An .onnx file that cannot be used: damaged, wrong opset, other model or options."""


# --------------------------------------------------------------------------- providers


def user_cache() -> Path:
    """$XDG_CACHE_HOME/superglue_ros (default ~/.cache/superglue_ros)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "superglue_ros"


def select_providers(
    device: str, available: Sequence[str], engine_cache: Path | None = None
) -> ProviderList:
    """onnxruntime providers (name, options) for the ``device`` parameter, best first.

    available: what ``onnxruntime.get_available_providers()`` says. A GPU device
    asks for TensorRT then CUDA (those the build has) on that GPU, the CPU last;
    ValueError when the build has neither. 'auto' is a GPU device when the build
    has a GPU provider. TensorRT engines are cached in engine_cache (building one
    takes minutes, so it must not happen on every start).
    """
    device = str(device).strip()
    gpu_providers = [name for name in (TENSORRT, CUDA) if name in available]
    if device == "auto":
        device = "cuda" if gpu_providers else "cpu"
    if device == "cpu":
        return [(CPU, {})]
    index_text = device[len("cuda:") :] if device.startswith("cuda:") else "0"
    if not (device == "cuda" or device.startswith("cuda:")) or not index_text.isdigit():
        raise ValueError(f"parameter 'device' must be auto, cpu, cuda or cuda:N; got {device!r}")
    if not gpu_providers:
        raise ValueError(
            f"parameter 'device' is {device!r} but this onnxruntime has no GPU provider "
            f"(it has {', '.join(available) or 'none'}); install onnxruntime-gpu, "
            "or set device to cpu"
        )
    index = int(index_text)
    providers: ProviderList = []
    if TENSORRT in gpu_providers:
        cache = engine_cache or user_cache() / "tensorrt"
        providers.append(
            (
                TENSORRT,
                {
                    "device_id": index,
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache),
                },
            )
        )
    if CUDA in gpu_providers:
        providers.append((CUDA, {"device_id": index}))
    providers.append((CPU, {}))
    return providers


def tensorrt_cache_key(graph: bytes, tensorrt_version: str, gpu_name: str) -> str:
    """Folder name of the TensorRT engines of one graph: an engine is valid only for
    the graph it was built from, the TensorRT that built it and the GPU model it was
    built on, so each of the three changes the key."""
    digest = hashlib.sha256(graph)
    digest.update(b"\0" + tensorrt_version.encode() + b"\0" + gpu_name.encode())
    return digest.hexdigest()[:24]


def tensorrt_version() -> str:
    """The installed TensorRT's version ("none" without the tensorrt package)."""
    try:
        import tensorrt
    except ImportError:
        return "none"
    return str(tensorrt.__version__)


def gpu_name(index: int) -> str:
    """The name of GPU index as nvidia-smi reports it ("unknown" when it cannot)."""
    import subprocess

    try:
        result = subprocess.run(
            ["nvidia-smi", f"--id={index}", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"


def engine_cache_dir(graph: bytes, device: str) -> Path:
    """$XDG_CACHE_HOME/superglue_ros/tensorrt/<tensorrt_cache_key> for this graph on device."""
    index_text = device.split(":", 1)[1] if ":" in device else "0"
    index = int(index_text) if index_text.isdigit() else 0
    key = tensorrt_cache_key(graph, tensorrt_version(), gpu_name(index))
    return user_cache() / "tensorrt" / key


def uses_tensorrt(session: Any) -> bool:
    return TENSORRT in session.get_providers()


def device_kind(session: Any) -> str:
    """cpu or cuda: where the session runs (LightGlue's pruning depends on it)."""
    return "cpu" if session.get_providers()[0] == CPU else "cuda"


# --------------------------------------------------------------------------- loading


def how_to_export(directory: Path) -> str:
    return (
        f"write it with `superglue-ros export onnx --out {directory}` (with the same "
        "--params file as the node), or leave onnx_dir empty to export on first use"
    )


def read_graph(path: Path, model: str, expected: Mapping[str, Any]) -> tuple[bytes, dict]:
    """The bytes and baked options of an exported graph, checked.

    Raises FileNotFoundError (absent), OnnxModelError (not ONNX, an opset outside
    SUPPORTED_OPSETS, not written by our exporter, another model, or baked
    options that differ from expected).
    """
    import onnx
    from google.protobuf.message import DecodeError

    if not path.is_file():
        raise FileNotFoundError(f"ONNX file {path} does not exist; " + how_to_export(path.parent))
    data = path.read_bytes()
    try:
        proto = onnx.load_model_from_string(data)
        if not proto.graph.node:
            raise ValueError("no graph in it")
    except (DecodeError, ValueError, RuntimeError) as error:
        raise OnnxModelError(
            f"{path} is not a readable ONNX file (damaged or truncated?): {error}; "
            + how_to_export(path.parent)
        ) from error
    opsets = {entry.domain: entry.version for entry in proto.opset_import}
    opset = opsets.get("", opsets.get("ai.onnx"))
    if opset not in SUPPORTED_OPSETS:
        raise OnnxModelError(
            f"{path} uses ONNX opset {opset}; this runtime reads opsets "
            f"{SUPPORTED_OPSETS.start}-{SUPPORTED_OPSETS.stop - 1}: re-export it with "
            f"`superglue-ros export onnx --opset {DEFAULT_OPSET}`"
        )
    props = {entry.key: entry.value for entry in proto.metadata_props}
    if props.get(MODEL_KEY) != model or props.get(FORMAT_KEY) != FORMAT_VERSION:
        raise OnnxModelError(
            f"{path} is not a {model} graph of format {FORMAT_VERSION} written by "
            f"superglue-ros export onnx (metadata: model {props.get(MODEL_KEY)!r}, "
            f"format {props.get(FORMAT_KEY)!r}); " + how_to_export(path.parent)
        )
    baked = json.loads(props.get(CONFIG_KEY, "{}"))
    differ = [
        f"{key} {baked.get(key)!r} (parameters: {value!r})"
        for key, value in expected.items()
        if baked.get(key) != value
    ]
    if differ:
        raise OnnxModelError(
            f"{path} was exported with other options: {', '.join(differ)}; "
            + how_to_export(path.parent)
        )
    return data, baked


def open_session(
    path: Path, model: str, expected: Mapping[str, Any], device: str, threads: int | None = None
) -> Any:
    """An onnxruntime InferenceSession of a checked graph (see read_graph), and its options.

    threads: CPU threads per operator (None: DEFAULT_THREADS; 0: onnxruntime's default,
    one per core). Idle
    worker threads sleep instead of spinning, so that between frames they leave the
    cores to the node's other threads and to other processes.
    """
    import onnxruntime as ort

    data, baked = read_graph(path, model, expected)
    available = ort.get_available_providers()
    cache = engine_cache_dir(data, device) if TENSORRT in available else None
    providers = select_providers(device, available, cache)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: the CPU fallback notices are expected
    options.intra_op_num_threads = DEFAULT_THREADS if threads is None else threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(
            data,
            options,
            providers=[name for name, _ in providers],
            provider_options=[opts for _, opts in providers],
        )
    except Exception as error:  # onnxruntime raises its own exception types
        raise OnnxModelError(f"onnxruntime cannot load {path}: {error}") from error
    return session, baked


# --------------------------------------------------------------------------- SuperPoint


def select_keypoints(
    scores: np.ndarray, threshold: float, border: int, max_keypoints: int
) -> tuple[np.ndarray, np.ndarray]:
    """models.superpoint.select_keypoints in numpy: scores [H, W] after NMS ->
    (keypoints [N, 2] float32 (x, y), scores [N] float32); raster order, or by
    decreasing score when max_keypoints cuts."""
    rows, cols = np.nonzero(clear_border(scores > threshold, border))
    kept = scores[rows, cols]
    if 0 <= max_keypoints < len(kept):
        best = np.argpartition(-kept, max_keypoints - 1)[:max_keypoints]
        best = best[np.argsort(-kept[best], kind="stable")]
        rows, cols, kept = rows[best], cols[best], kept[best]
    keypoints = np.stack([cols, rows], axis=1).astype(np.float32)
    return keypoints, kept.astype(np.float32)


def sample_descriptors(
    keypoints: np.ndarray, descriptors: np.ndarray, stride: int = 8
) -> np.ndarray:
    """models.superpoint.sample_descriptors in numpy: bilinear (align_corners, zero
    outside the map), then L2-normalised. keypoints [N, 2]; descriptors [D, h, w].
    Returns [D, N] float32."""
    dim, h, w = descriptors.shape
    if len(keypoints) == 0:
        return np.zeros((dim, 0), np.float32)
    # pixel p -> cell coordinate (p - s/2 + 0.5) / (size*s - s/2 - 0.5) * (size - 1)
    x = (keypoints[:, 0] - stride / 2 + 0.5) / (w * stride - stride / 2 - 0.5) * (w - 1)
    y = (keypoints[:, 1] - stride / 2 + 0.5) / (h * stride - stride / 2 - 0.5) * (h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    out = np.zeros((dim, len(keypoints)), np.float64)
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            weight = (1 - np.abs(x - xi)) * (1 - np.abs(y - yi))
            inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            values = descriptors[:, yi.clip(0, h - 1), xi.clip(0, w - 1)]
            out += values * np.where(inside, weight, 0.0)
    norm = np.maximum(np.linalg.norm(out, axis=0), 1e-12)
    return (out / norm).astype(np.float32)


class OnnxSuperPointFrontend:
    """Frontend: [H, W] uint8 image -> keypoints, scores, [N, D] descriptors (ONNX)."""

    def __init__(self, session: Any, conf: Mapping[str, Any]) -> None:
        self.session = session
        self.threshold = float(conf["keypoint_threshold"])
        self.border = int(conf["remove_borders"])
        self.max_keypoints = int(conf["max_keypoints"])

    @property
    def description(self) -> str:
        limit = self.max_keypoints if self.max_keypoints >= 0 else "all"
        return f"superpoint(max {limit}) on onnxruntime {self.session.get_providers()[0]} fp32"

    def dense(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The graph's outputs for [H, W] uint8: scores [8h, 8w], descriptors [D, h, w]."""
        tensor = (image.astype(np.float32) / np.float32(255.0))[None, None]
        scores, descriptors = self.session.run(None, {"image": tensor})
        return scores[0], descriptors[0]

    def extract(self, image: np.ndarray) -> Features:
        """image: [H, W] uint8 grayscale."""
        if not isinstance(image, np.ndarray) or image.ndim != 2 or image.dtype != np.uint8:
            got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image)
            raise ValueError(f"SuperPoint frontend needs an [H, W] uint8 numpy image, got {got}")
        if image.shape[0] < 8 or image.shape[1] < 8:
            raise ValueError(f"image must be at least 8 x 8 pixels, got {image.shape}")
        scores, descriptors = self.dense(image)
        keypoints, kept = select_keypoints(scores, self.threshold, self.border, self.max_keypoints)
        sampled = sample_descriptors(keypoints, descriptors)
        return Features(
            keypoints=keypoints,
            scores=kept,
            descriptors=np.ascontiguousarray(sampled.T),
            image_size=(int(image.shape[0]), int(image.shape[1])),
        )


# --------------------------------------------------------------------------- SuperGlue


class OnnxSuperGlueMatcher:
    """Matcher: one frame against K keyframes in one padded, masked batch (ONNX)."""

    def __init__(
        self, session: Any, descriptor_dim: int, match_threshold: float, weights: str = "indoor"
    ) -> None:
        self.session = session
        self.descriptor_dim = int(descriptor_dim)
        self._threshold = np.array(match_threshold, np.float32)
        self.weights = weights

    @property
    def description(self) -> str:
        provider = self.session.get_providers()[0]
        return f"superglue({self.weights}) on onnxruntime {provider} fp32"

    @property
    def match_threshold(self) -> float:
        return float(self._threshold)

    def update_params(self, changes: Mapping[str, Any]) -> None:
        """Apply run-time changes (superglue.match_threshold); other names are ignored.

        ValueError (nothing applied) for a bad change, see check_runtime_changes.
        """
        checked = check_runtime_changes(changes)
        if "superglue.match_threshold" in checked:
            self._threshold = np.array(checked["superglue.match_threshold"], np.float32)

    def _side(self, features: Features) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        descriptors = np.asarray(features.descriptors)
        if (
            descriptors.ndim != 2
            or descriptors.shape[1] != self.descriptor_dim
            or descriptors.dtype == np.uint8
        ):
            raise ValueError(
                f"SuperGlue needs float descriptors [N, {self.descriptor_dim}] (SuperPoint's), "
                f"got {descriptors.dtype} {descriptors.shape}"
            )
        return (
            np.asarray(features.keypoints, np.float32).reshape(-1, 2),
            np.asarray(features.scores, np.float32).reshape(-1),
            descriptors.astype(np.float32, copy=False),
        )

    def feeds(self, frame: Features, keyframes: Sequence[Features]) -> dict[str, np.ndarray]:
        """The graph's inputs: the frame repeated as side 0, keyframes padded as side 1."""
        count, dim = len(keyframes), self.descriptor_dim
        kpts0, scores0, desc0 = self._side(frame)
        sides1 = [self._side(k) for k in keyframes]
        num0, width = len(scores0), max(len(s[1]) for s in sides1)
        kpts1 = np.zeros((count, width, 2), np.float32)
        scores1 = np.zeros((count, width), np.float32)
        desc1 = np.zeros((count, dim, width), np.float32)
        mask1 = np.zeros((count, width), bool)
        for i, (kpts, scores, desc) in enumerate(sides1):
            size = len(scores)
            kpts1[i, :size], scores1[i, :size], desc1[i, :, :size] = kpts, scores, desc.T
            mask1[i, :size] = True
        return {
            "keypoints0": np.broadcast_to(kpts0, (count, num0, 2)).copy(),
            "scores0": np.broadcast_to(scores0, (count, num0)).copy(),
            "descriptors0": np.broadcast_to(desc0.T, (count, dim, num0)).copy(),
            "image_size0": np.tile(np.float32(frame.image_size), (count, 1)),
            "mask0": np.ones((count, num0), bool),
            "keypoints1": kpts1,
            "scores1": scores1,
            "descriptors1": desc1,
            "image_size1": np.array([k.image_size for k in keyframes], np.float32),
            "mask1": mask1,
            "match_threshold": self._threshold,
        }

    def match(self, frame: Features, keyframes: Sequence[Features]) -> list[PairMatches]:
        """One PairMatches per keyframe, in the order given (one graph run)."""
        if not keyframes:
            return []
        num0 = len(frame)
        if num0 == 0 or max(len(k) for k in keyframes) == 0:
            self._side(frame)  # still reject descriptors of the wrong kind
            return [PairMatches.unmatched(num0) for _ in keyframes]
        matches0, scores0 = self.session.run(
            ["matches0", "matching_scores0"], self.feeds(frame, keyframes)
        )
        return PairMatches.from_batch(matches0, scores0)


# --------------------------------------------------------------------------- building


def _check_precision(config: Config) -> None:
    precision = config.text("precision")
    if precision != "fp32":
        raise ValueError(
            f"runtime onnxruntime runs the exported float32 graphs; precision {precision!r} "
            "is for runtime torch (set precision to fp32)"
        )


def graph_key(kind: str, weights_sha1: str, baked: Mapping[str, Any], opset: int) -> str:
    """The cache folder name of one export: what the graph depends on, hashed."""
    text = json.dumps([kind, weights_sha1, dict(baked), FORMAT_VERSION, opset], sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def cached_export(kind: str, model: Any, file_name: str) -> Path:
    """The cache's graph of a torch model, exported now when absent (needs torch)."""
    from superglue_ros.models.onnx_export import export_superglue, export_superpoint, state_sha1
    from superglue_ros.models.onnx_format import baked_config

    baked = baked_config(kind, model.conf)
    key = graph_key(kind, state_sha1(model), baked, DEFAULT_OPSET)
    path = user_cache() / "onnx" / key / file_name
    if not path.is_file():
        export = export_superpoint if kind == "superpoint" else export_superglue
        export(model, path, DEFAULT_OPSET)
    return path


def build_onnx_superpoint_frontend(config: Config) -> OnnxSuperPointFrontend:
    """SuperPoint on superpoint.onnx from onnx_dir, or from the cache (see module doc)."""
    _check_precision(config)
    conf = {
        "nms_radius": config.integer("superpoint.nms_radius"),
        "keypoint_threshold": config.number("superpoint.keypoint_threshold"),
        "max_keypoints": config.integer("superpoint.max_keypoints"),
        "remove_borders": config.integer("superpoint.remove_borders"),
    }
    onnx_dir = config.text("onnx_dir")
    if onnx_dir:
        path = Path(onnx_dir).expanduser() / SUPERPOINT_FILE
    else:
        from superglue_ros.models.weights import load_superpoint

        model = load_superpoint(config.text("weights_dir") or None, conf)
        path = cached_export("superpoint", model, SUPERPOINT_FILE)
    expected = {"nms_radius": conf["nms_radius"]}
    session, _ = open_session(path, "superpoint", expected, config.text("device"))
    return OnnxSuperPointFrontend(session, conf)


def build_onnx_superglue_matcher(config: Config) -> OnnxSuperGlueMatcher:
    """SuperGlue on superglue_<weights>.onnx from onnx_dir, or from the cache."""
    _check_precision(config)
    which = config.text("superglue.weights")
    iterations = config.integer("superglue.sinkhorn_iterations")
    onnx_dir = config.text("onnx_dir")
    if onnx_dir:
        path = Path(onnx_dir).expanduser() / superglue_file(which)
    else:
        from superglue_ros.models.weights import load_superglue

        weights_dir = config.text("weights_dir") or None
        model = load_superglue(which, weights_dir, {"sinkhorn_iterations": iterations})
        path = cached_export("superglue", model, superglue_file(which))
    expected = {"sinkhorn_iterations": iterations}
    session, baked = open_session(path, "superglue", expected, config.text("device"))
    threshold = config.number("superglue.match_threshold")
    return OnnxSuperGlueMatcher(session, baked["descriptor_dim"], threshold, which)
