"""ALIKED, DISK and LightGlue exported to ONNX and run by onnxruntime: parity with torch at
small sizes (real weights), padded batches, empty keyframes, the adaptive form's early
exit, bad .onnx files, the TensorRT engine cache key, and the registry's hooks."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("onnx", reason="ONNX export needs onnx (make setup)")
pytest.importorskip("onnxruntime", reason="the ONNX runtime needs onnxruntime (make setup)")

from superglue_ros.models.weights import (  # noqa: E402
    ALIKED_MODELS_BY_NAME,
    LIGHTGLUE_FILES,
    WeightsNotFoundError,
    find_weights,
    sha256_of,
)
from superglue_ros.pipeline.onnx_extractors import OnnxAlikedFrontend, OnnxDiskFrontend  # noqa: E402
from superglue_ros.pipeline.onnx_lightglue import OnnxLightGlueMatcher  # noqa: E402
from superglue_ros.pipeline.onnx_runtime import (  # noqa: E402
    TENSORRT,
    OnnxModelError,
    select_providers,
    tensorrt_cache_key,
)
from superglue_ros.pipeline.registry import build_frontend, build_matcher  # noqa: E402
from superglue_ros.pipeline.types import Features  # noqa: E402
from superglue_ros.tools.cli import main  # noqa: E402

from synthetic import textured_image  # noqa: E402

ALIKED = {
    "frontend": "aliked",
    "matcher": "lightglue",
    "device": "cpu",
    "aliked.max_keypoints": 256,
}
DISK = {"frontend": "disk", "matcher": "lightglue", "device": "cpu", "disk.max_keypoints": 256}


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    """The graphs written by `export onnx` for ALIKED, DISK and LightGlue (both forms)."""
    try:
        for name in (
            ALIKED_MODELS_BY_NAME["n16"],
            "disk-depth-save.pth",
            LIGHTGLUE_FILES["aliked"],
        ):
            find_weights(name)
    except WeightsNotFoundError as error:
        pytest.skip(f"permissive weights not installed: {error}")
    out = tmp_path_factory.mktemp("onnx")
    for networks in ("aliked,lightglue", "disk"):
        frontend = networks.split(",")[0]
        params = tmp_path_factory.mktemp("params") / "p.yaml"
        params.write_text(f"frontend: {frontend}\nmatcher: lightglue\n")
        argv = [
            "export",
            "onnx",
            "--out",
            str(out),
            "--params",
            str(params),
            "--networks",
            networks,
        ]
        assert main(argv) == 0
    return out


def both(params: dict, onnx_dir, **changes):
    torch_params = {**params, **changes, "runtime": "torch"}
    onnx_params = {**params, **changes, "runtime": "onnxruntime", "onnx_dir": str(onnx_dir)}
    return torch_params, onnx_params


def within(a: Features, b: Features, px: float = 0.5) -> tuple[float, float]:
    """Share of a's keypoints with one of b within px, and the smallest descriptor cosine."""
    distance = np.linalg.norm(a.keypoints[:, None] - b.keypoints[None], axis=2)
    nearest, close = distance.argmin(1), distance.min(1) <= px
    cosine = (a.descriptors[close] * b.descriptors[nearest[close]]).sum(1)
    return float(close.mean()), float(cosine.min())


@pytest.mark.parametrize("params", [ALIKED, DISK], ids=["aliked", "disk"])
@pytest.mark.parametrize("size", [(96, 128), (75, 150)])
def test_extractors_match_torch_at_any_image_size(onnx_dir, params, size) -> None:
    # Sizes that are not multiples of ALIKED's 32 or DISK's 16, unlike the export's example.
    torch_params, onnx_params = both(params, onnx_dir)
    frontend = build_frontend(onnx_params)
    assert isinstance(frontend, (OnnxAlikedFrontend, OnnxDiskFrontend))
    image = np.repeat(textured_image(*size, seed=3)[..., None], 3, axis=2)
    ours, theirs = build_frontend(torch_params).extract(image), frontend.extract(image)
    assert len(ours) > 20 and len(theirs) == len(ours)
    share, cosine = within(ours, theirs)
    # float32 graphs against float32 torch: differences at rounding level, far below 0.5 px.
    assert share >= 0.99 and cosine >= 0.999
    # Scores: ALIKED's in (0, 1), DISK's logits up to ~100; float32 through a deep network
    # agrees to ~1e-5 of the range, so allow 1e-4 of it.
    scale = 1e-4 * max(1.0, float(np.abs(ours.scores).max()))
    assert np.allclose(np.sort(ours.scores), np.sort(theirs.scores), atol=scale, rtol=0)


def random_features(rng, count: int, base: Features | None = None, noise: float = 0.2):
    """Random 128-d features; the first 3/4 near base's (so there are matches)."""
    keypoints = (rng.random((count, 2)) * [639, 479]).astype(np.float32)
    descriptors = rng.standard_normal((count, 128)).astype(np.float32)
    if base is not None:
        shared = min(count, len(base)) * 3 // 4
        keypoints[:shared] = base.keypoints[:shared] + 1.5
        descriptors[:shared] = base.descriptors[:shared] + noise * rng.standard_normal(
            (shared, 128)
        )
    descriptors /= np.maximum(np.linalg.norm(descriptors, axis=1, keepdims=True), 1e-12)
    return Features(keypoints, np.ones(count, np.float32), descriptors, (480, 640))


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(7)
    frame = random_features(rng, 300)
    keyframes = [
        random_features(rng, 280, frame, 0.05),  # easy: stops early
        random_features(rng, 200, frame, 0.6),  # hard
        random_features(rng, 0),  # empty keyframe
        random_features(rng, 320),  # unrelated
    ]
    return frame, keyframes


def matchers(onnx_dir, form: str, **changes):
    torch_params, onnx_params = both(ALIKED, onnx_dir, **changes)
    onnx_params["lightglue.onnx_form"] = form
    torch_params["lightglue.batching"] = "batched"
    return build_matcher(torch_params), build_matcher(onnx_params)


@pytest.mark.parametrize("form", ["adaptive", "fixed"])
def test_padded_batch_gives_the_pair_by_pair_result(onnx_dir, pairs, form) -> None:
    frame, keyframes = pairs
    _, matcher = matchers(onnx_dir, form)
    assert isinstance(matcher, OnnxLightGlueMatcher) and matcher.form == form
    batched = matcher.match(frame, keyframes)
    layers = list(matcher.last_layers)
    for i, keyframe in enumerate(keyframes):
        alone = matcher.match(frame, [keyframe])[0]
        assert np.array_equal(alone.matches0, batched[i].matches0)
        assert np.allclose(alone.scores0, batched[i].scores0, atol=1e-5)
        assert matcher.last_layers == [layers[i]]
    assert (batched[0].matches0 >= 0).sum() > 100  # the easy pair matches


def test_empty_keyframes_and_frames(onnx_dir, pairs) -> None:
    frame, keyframes = pairs
    _, matcher = matchers(onnx_dir, "adaptive")
    assert matcher.match(frame, []) == [] and matcher.last_layers == []
    empty = keyframes[2]
    out = matcher.match(frame, [empty, empty])
    assert [len(o.matches0) for o in out] == [300, 300]
    assert all((o.matches0 == -1).all() for o in out) and matcher.last_layers == [0, 0]
    out = matcher.match(empty, keyframes[:2])
    assert [len(o.matches0) for o in out] == [0, 0]


def test_adaptive_form_stops_and_prunes_as_torch(onnx_dir, pairs) -> None:
    frame, keyframes = pairs
    reference, exported = matchers(onnx_dir, "adaptive")
    ours, theirs = reference.match(frame, keyframes), exported.match(frame, keyframes)
    assert exported.last_layers == reference.last_layers
    # The easy pair exits early, the unrelated one runs deeper: the criterion is per pair.
    assert reference.last_layers[0] < 9 and reference.last_layers[2] == 0
    for a, b in zip(ours, theirs, strict=True):
        assert np.array_equal(a.matches0, b.matches0)
        assert np.allclose(a.scores0, b.scores0, atol=1e-4)


def test_fixed_form_is_torch_at_full_depth(onnx_dir, pairs) -> None:
    frame, keyframes = pairs
    off = {"lightglue.depth_confidence": -1.0, "lightglue.width_confidence": -1.0}
    reference, exported = matchers(onnx_dir, "fixed", **off)
    ours, theirs = reference.match(frame, keyframes), exported.match(frame, keyframes)
    assert exported.last_layers == [9, 9, 0, 9] == reference.last_layers
    for a, b in zip(ours, theirs, strict=True):
        assert np.array_equal(a.matches0, b.matches0)


def test_metadata_records_options_and_weights_sha256(onnx_dir) -> None:
    import onnx

    proto = onnx.load(str(onnx_dir / "lightglue_aliked_adaptive" / "layer_3.onnx"))
    props = {p.key: p.value for p in proto.metadata_props}
    config = json.loads(props["superglue_ros.config"])
    assert props["superglue_ros.model"] == "lightglue_layer"
    assert config["layer"] == 3 and config["form"] == "adaptive" and config["n_layers"] == 9
    expected = sha256_of(find_weights(LIGHTGLUE_FILES["aliked"]))
    assert props["superglue_ros.weights_sha256"] == expected


def test_missing_and_corrupt_graphs_are_clear_errors(onnx_dir, tmp_path) -> None:
    folder = tmp_path / "graphs"
    folder.mkdir()
    params = {**ALIKED, "runtime": "onnxruntime", "onnx_dir": str(folder)}
    with pytest.raises(
        FileNotFoundError, match="aliked_n16_dense.onnx does not exist.*export onnx"
    ):
        build_frontend(params)
    for name in ("aliked_n16_dense.onnx", "aliked_n16_descriptors.onnx"):
        data = (onnx_dir / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 3])  # truncated by an interrupted copy
    with pytest.raises(OnnxModelError, match="not a readable ONNX file"):
        build_frontend(params)
    # A graph of another network under the expected name.
    (folder / "aliked_n16_dense.onnx").write_bytes((onnx_dir / "disk_dense.onnx").read_bytes())
    with pytest.raises(OnnxModelError, match="is not a aliked_dense graph"):
        build_frontend(params)


def test_tensorrt_cache_key_changes_with_graph_version_and_gpu() -> None:
    key = tensorrt_cache_key(b"graph", "10.3.0", "NVIDIA H100")
    assert key == tensorrt_cache_key(b"graph", "10.3.0", "NVIDIA H100")
    others = {
        tensorrt_cache_key(b"graph2", "10.3.0", "NVIDIA H100"),
        tensorrt_cache_key(b"graph", "8.6.1", "NVIDIA H100"),
        tensorrt_cache_key(b"graph", "10.3.0", "Orin (nvgpu)"),
    }
    assert key not in others and len(others) == 3
    providers = select_providers("cuda:1", [TENSORRT, "CPUExecutionProvider"], engine_cache=None)
    name, options = providers[0]
    assert name == TENSORRT and options["device_id"] == 1 and options["trt_engine_cache_enable"]


def test_registry_accepts_onnxruntime_for_open_networks(onnx_dir) -> None:
    _, onnx_params = both(ALIKED, onnx_dir)
    assert isinstance(build_frontend(onnx_params), OnnxAlikedFrontend)
    assert isinstance(build_matcher(onnx_params), OnnxLightGlueMatcher)
    _, disk_params = both(DISK, onnx_dir)
    assert isinstance(build_frontend(disk_params), OnnxDiskFrontend)
    with pytest.raises(ValueError, match="precision 'bf16' is for runtime torch"):
        build_frontend({**onnx_params, "precision": "bf16"})


def test_warmup_runs_every_stage(onnx_dir) -> None:
    _, matcher = matchers(onnx_dir, "adaptive")
    calls: dict[str, int] = {}
    for name, session in matcher.sessions.items():
        original = session.run

        def counted(*args, _name=name, _run=original, **kwargs):
            calls[_name] = calls.get(_name, 0) + 1
            return _run(*args, **kwargs)

        session.run = counted
    matcher.warmup(points=64, keyframes=2)
    assert set(calls) == set(matcher.sessions)


def test_runtime_auto_follows_the_measured_table(onnx_dir) -> None:
    from superglue_ros.pipeline.params import validate
    from superglue_ros.pipeline.registry import AUTO_RUNTIME, runtime_for

    auto = validate({**ALIKED, "runtime": "auto", "onnx_dir": str(onnx_dir)})
    for network in ("superpoint", "superglue", "aliked", "disk", "lightglue"):
        assert runtime_for(auto, network) == AUTO_RUNTIME.get(("cpu", network), "torch")
        explicit = validate({**auto, "runtime": "torch"})
        assert runtime_for(explicit, network) == "torch"
        # The exported graphs are float32: another precision stays on torch.
        assert runtime_for(validate({**auto, "precision": "bf16"}), network) == "torch"
    onnx_aliked = AUTO_RUNTIME.get(("cpu", "aliked")) == "onnxruntime"
    assert isinstance(build_frontend(auto), OnnxAlikedFrontend) == onnx_aliked
