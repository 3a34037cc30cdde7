"""ONNX export and the onnxruntime runtime: parity with torch (padded batches included),
inside the pipeline, first-use export into the cache, provider selection, and the errors
for missing, damaged or mismatched files, unsupported opsets and unwritable folders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="runtime onnxruntime needs onnxruntime (make setup)")
pytest.importorskip("onnx", reason="ONNX export needs onnx (make setup)")

from superglue_ros.io.yaml_files import dump_params_file  # noqa: E402
from superglue_ros.models.onnx_export import (  # noqa: E402
    OnnxExportError,
    export_superpoint,
    state_sha1,
)
from superglue_ros.models.superpoint import SuperPoint  # noqa: E402
from superglue_ros.models.weights import load_superglue  # noqa: E402
from superglue_ros.pipeline import Pipeline, build_frontend, build_matcher  # noqa: E402
from superglue_ros.pipeline.onnx_runtime import (  # noqa: E402
    CPU,
    CUDA,
    TENSORRT,
    OnnxModelError,
    read_graph,
    select_providers,
)
from superglue_ros.pipeline.types import Features  # noqa: E402
from superglue_ros.tools.cli import main  # noqa: E402

from model_weights import SMALL_PIPELINE_PARAMS, write_small_checkpoints  # noqa: E402
from numerics import assert_pair_matches_float64  # noqa: E402


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory, fixtures_dir):
    return write_small_checkpoints(tmp_path_factory.mktemp("weights"), fixtures_dir)


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory, weights_dir):
    """Graphs written by the export command, as a user would write them."""
    folder = tmp_path_factory.mktemp("export")
    params = dump_params_file(folder / "params.yaml", SMALL_PIPELINE_PARAMS)
    out = folder / "onnx"
    argv = ["export", "onnx", "--out", str(out), "--params", str(params)]
    assert main([*argv, "--weights-dir", str(weights_dir)]) == 0
    return out


@pytest.fixture(scope="module")
def components(weights_dir, onnx_dir):
    """{runtime: (frontend, matcher)} for torch and onnxruntime, same weights and options."""
    built = {}
    for runtime in ("torch", "onnxruntime"):
        params = {
            **SMALL_PIPELINE_PARAMS,
            "weights_dir": str(weights_dir),
            "runtime": runtime,
            "onnx_dir": str(onnx_dir) if runtime == "onnxruntime" else "",
        }
        built[runtime] = (build_frontend(params), build_matcher(params))
    return built


def assert_same_features(ours: Features, reference: Features) -> None:
    """The same keypoint set and order, scores within 1e-5, descriptors cosine >= 0.9999.

    Two float32 evaluations of SuperPoint: test_superpoint measures the float32 error of
    its scores against float64 at 2e-6 to 4e-6 (scores <= 1), so two of them differ by
    under 1e-5; a unit descriptor's entries err by ~1e-6 relative, far above 0.9999."""
    np.testing.assert_array_equal(ours.keypoints, reference.keypoints)
    np.testing.assert_allclose(ours.scores, reference.scores, atol=1e-5)
    cosine = np.sum(ours.descriptors * reference.descriptors, axis=1)
    assert len(cosine) == 0 or cosine.min() >= 0.9999
    assert ours.image_size == reference.image_size


def test_export_command_writes_graphs_with_their_options(onnx_dir, weights_dir) -> None:
    _, baked = read_graph(onnx_dir / "superpoint.onnx", "superpoint", {"nms_radius": 4})
    assert baked == {"descriptor_dim": 256, "nms_radius": 4}
    _, baked = read_graph(
        onnx_dir / "superglue_indoor.onnx", "superglue", {"sinkhorn_iterations": 10}
    )
    assert baked["GNN_layers"] == ["self", "cross"] and baked["descriptor_dim"] == 256
    import onnx

    props = {
        p.key: p.value for p in onnx.load(str(onnx_dir / "superglue_indoor.onnx")).metadata_props
    }
    model = load_superglue("indoor", weights_dir)
    assert props["superglue_ros.weights_sha1"] == state_sha1(model)
    assert not (onnx_dir / "superglue_outdoor.onnx").exists()  # only the configured weights


def test_superpoint_graph_equals_torch(components, parity_images) -> None:
    torch_frontend, onnx_frontend = components["torch"][0], components["onnxruntime"][0]
    assert "onnxruntime CPUExecutionProvider" in onnx_frontend.description
    for image in (
        parity_images[0],
        parity_images[1][:101, :157],
    ):  # sides that are not multiples of 8
        assert_same_features(onnx_frontend.extract(image), torch_frontend.extract(image))


def test_superglue_padded_batch_equals_torch(components, parity_images) -> None:
    """Keyframes of unequal sizes, one empty and one single point, in one padded batch."""
    torch_frontend, torch_matcher = components["torch"]
    onnx_matcher = components["onnxruntime"][1]
    frame = torch_frontend.extract(parity_images[0])
    full = torch_frontend.extract(parity_images[1])
    part = Features(full.keypoints[:40], full.scores[:40], full.descriptors[:40], full.image_size)
    one = Features(full.keypoints[5:6], full.scores[5:6], full.descriptors[5:6], full.image_size)
    empty = Features(
        np.zeros((0, 2), np.float32),
        np.zeros(0, np.float32),
        np.zeros((0, 256), np.float32),
        (9, 9),
    )
    keyframes = [full, part, empty, one, frame]
    batch = onnx_matcher.match(frame, keyframes)
    reference = torch_matcher.match(frame, keyframes)
    assert len(batch) == len(keyframes)
    for i, (ours, theirs) in enumerate(zip(batch, reference, strict=True)):
        single = onnx_matcher.match(frame, [keyframes[i]])[0]  # pair by pair
        # ONNX Runtime and torch are two float32 evaluations (other kernels): each against
        # the pair in float64, within the float32 reference's own error (numerics.py).
        assert_pair_matches_float64(
            torch_matcher.model, frame, keyframes[i], [ours, theirs, single]
        )
    assert (batch[0].matches0 >= 0).sum() > 10 and (batch[4].matches0 >= 0).sum() > 10
    assert (batch[2].matches0 == -1).all()
    assert onnx_matcher.match(empty, keyframes)[0].matches0.shape == (0,)


def test_match_threshold_changes_at_run_time(components, parity_images) -> None:
    torch_frontend = components["torch"][0]
    frame, keyframe = (
        torch_frontend.extract(parity_images[0]),
        torch_frontend.extract(parity_images[1]),
    )
    counts = []
    for runtime in ("torch", "onnxruntime"):
        matcher = components[runtime][1]
        before = (matcher.match(frame, [keyframe])[0].matches0 >= 0).sum()
        matcher.update_params({"superglue.match_threshold": 0.95})
        after = matcher.match(frame, [keyframe])[0].matches0
        matcher.update_params({"superglue.match_threshold": 0.2})
        counts.append((before, (after >= 0).sum()))
    assert counts[0] == counts[1] and counts[0][1] < counts[0][0]


def test_pipeline_on_onnxruntime_equals_torch(weights_dir, onnx_dir, parity_images) -> None:
    frames = [parity_images[0], np.roll(parity_images[0], 5, axis=1), parity_images[1]]
    results = {}
    for runtime in ("torch", "onnxruntime"):
        pipeline = Pipeline.from_params(
            {
                **SMALL_PIPELINE_PARAMS,
                "weights_dir": str(weights_dir),
                "runtime": runtime,
                "onnx_dir": str(onnx_dir) if runtime == "onnxruntime" else "",
                "keyframes.buffer_size": 2,
                "keyframes.max_frames_between": 2,
            }
        )
        results[runtime] = [pipeline.process(frame, 10 * i) for i, frame in enumerate(frames)]
    assert "onnxruntime" in pipeline.description
    for ours, theirs in zip(results["onnxruntime"], results["torch"], strict=True):
        assert ours.is_keyframe == theirs.is_keyframe
        np.testing.assert_array_equal(ours.track_ids, theirs.track_ids)
        assert [m.keyframe_id for m in ours.matches] == [m.keyframe_id for m in theirs.matches]
        for mine, reference in zip(ours.matches, theirs.matches, strict=True):
            np.testing.assert_array_equal(mine.frame_indices, reference.frame_indices)
            np.testing.assert_array_equal(mine.keyframe_indices, reference.keyframe_indices)
    assert sum(len(r.matches) for r in results["onnxruntime"]) >= 2


def test_first_use_exports_into_the_cache_once(weights_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    params = {**SMALL_PIPELINE_PARAMS, "weights_dir": str(weights_dir), "runtime": "onnxruntime"}
    build_matcher(params)
    (first,) = (tmp_path / "superglue_ros" / "onnx").glob("*/superglue_indoor.onnx")
    stamp = first.stat().st_mtime_ns
    build_matcher(params)  # same weights and options: the same file, not written again
    assert first.stat().st_mtime_ns == stamp
    build_matcher({**params, "superglue.sinkhorn_iterations": 5})
    files = sorted((tmp_path / "superglue_ros" / "onnx").glob("*/superglue_indoor.onnx"))
    assert len(files) == 2
    _, baked = read_graph(next(f for f in files if f != first), "superglue", {})
    assert baked["sinkhorn_iterations"] == 5


# --------------------------------------------------------------------------- errors


def onnx_params(folder, **changes) -> dict:
    return {**SMALL_PIPELINE_PARAMS, "runtime": "onnxruntime", "onnx_dir": str(folder), **changes}


def test_missing_file_says_how_to_export(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="superpoint.onnx does not exist.*export onnx"):
        build_frontend(onnx_params(tmp_path))


def test_damaged_file(onnx_dir, tmp_path) -> None:
    data = (onnx_dir / "superpoint.onnx").read_bytes()
    (tmp_path / "superpoint.onnx").write_bytes(data[: len(data) // 3])
    with pytest.raises(OnnxModelError, match="not a readable ONNX file"):
        build_frontend(onnx_params(tmp_path))
    (tmp_path / "superpoint.onnx").write_bytes(b"")
    with pytest.raises(OnnxModelError, match="not a readable ONNX file"):
        build_frontend(onnx_params(tmp_path))


def test_graph_not_written_by_the_exporter(tmp_path) -> None:
    import onnx
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1])
    out = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["scores"])], "g", [value], [out]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "superpoint.onnx"))
    with pytest.raises(OnnxModelError, match="not a superpoint graph of format 1"):
        build_frontend(onnx_params(tmp_path))


def test_unsupported_opset_in_a_file(onnx_dir, tmp_path) -> None:
    import onnx

    proto = onnx.load(str(onnx_dir / "superglue_indoor.onnx"))
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = 99
    onnx.save(proto, str(tmp_path / "superglue_indoor.onnx"))
    with pytest.raises(OnnxModelError, match="opset 99.*--opset 17"):
        build_matcher(onnx_params(tmp_path))


def test_graph_baked_with_other_options(onnx_dir) -> None:
    with pytest.raises(OnnxModelError, match=r"nms_radius 4 \(parameters: 3\)"):
        build_frontend(onnx_params(onnx_dir, **{"superpoint.nms_radius": 3}))
    with pytest.raises(OnnxModelError, match=r"sinkhorn_iterations 10 \(parameters: 20\)"):
        build_matcher(onnx_params(onnx_dir, **{"superglue.sinkhorn_iterations": 20}))
    with pytest.raises(FileNotFoundError, match="superglue_outdoor.onnx"):
        build_matcher(onnx_params(onnx_dir, **{"superglue.weights": "outdoor"}))


def test_reduced_precision_is_for_torch(onnx_dir) -> None:
    with pytest.raises(ValueError, match="precision 'fp16' is for runtime torch"):
        build_frontend(onnx_params(onnx_dir, precision="fp16"))


def test_export_command_errors(weights_dir, tmp_path, capsys) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    argv = ["export", "onnx", "--weights-dir", str(weights_dir)]
    assert main([*argv, "--out", str(blocker / "onnx")]) == 2
    assert "cannot write ONNX files to" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main([*argv, "--out", str(locked)]) == 2
        assert "cannot write ONNX files to" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "out"), "--opset", "9"]) == 2
    assert "opset 9 is not supported: use 14-20" in capsys.readouterr().err
    assert main(["export", "onnx", "--out", str(tmp_path / "out"), "--weights-dir", "/nowhere"])
    assert "superpoint_v1.pth not found" in capsys.readouterr().err
    with pytest.raises(OnnxExportError, match="opset 21"):
        export_superpoint(SuperPoint(), tmp_path / "x.onnx", opset=21)


# --------------------------------------------------------------------------- providers


def test_provider_selection() -> None:
    cpu_only = ["AzureExecutionProvider", CPU]
    gpu = [TENSORRT, CUDA, CPU]
    assert select_providers("cpu", gpu) == [(CPU, {})]
    assert select_providers("auto", cpu_only) == [(CPU, {})]
    assert select_providers("auto", [CUDA, CPU]) == [(CUDA, {"device_id": 0}), (CPU, {})]
    providers = select_providers("cuda:1", gpu, engine_cache=Path("/c"))
    assert [name for name, _ in providers] == [TENSORRT, CUDA, CPU]
    assert providers[0][1] == {
        "device_id": 1,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": "/c",
    }
    assert providers[1][1] == {"device_id": 1}
    with pytest.raises(ValueError, match="no GPU provider.*onnxruntime-gpu"):
        select_providers("cuda", cpu_only)
    for bad in ("gpu", "cuda:x", "cuda:"):
        with pytest.raises(ValueError, match="auto, cpu, cuda or cuda:N"):
            select_providers(bad, gpu)
