"""`superglue-ros bench`: runs on a tiny config, reports baseline ratios, and refuses a
baseline that computes something other than our models."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from superglue_ros.evaluation.model_bench import Bench
from superglue_ros.models import reference
from superglue_ros.tools.cli import main

TINY = ["--height", "64", "--width", "96", "--keypoints", "32", "--repeats", "1", "--warmup", "0"]


def test_tiny_bench_writes_baseline_ratios(tmp_path, capsys) -> None:
    out = tmp_path / "bench.json"
    argv = ["bench", *TINY, "--keyframes", "1,2", "--precisions", "fp32", "--json", str(out)]
    assert main(argv) == 0
    results = json.loads(out.read_text())
    for stage in ("superpoint", "superglue_pair"):
        for key in (f"{stage}_ms", f"{stage}_baseline_ms", f"{stage}_ratio"):
            assert isinstance(results[key], float), key
            assert math.isfinite(results[key]) and results[key] > 0, key
        # The ratio comes from the unrounded times, the ms fields are rounded to 0.01 ms
        # (over 1 % of a tiny config's time) and the ratio to 3 decimals: it must lie
        # within what that rounding allows.
        ours, theirs = results[f"{stage}_ms"], results[f"{stage}_baseline_ms"]
        low = (ours - 0.005) / (theirs + 0.005) - 5e-4
        high = (ours + 0.005) / max(theirs - 0.005, 1e-9) + 5e-4
        assert low <= results[f"{stage}_ratio"] <= high, (results[f"{stage}_ratio"], low, high)
    assert "NCHW" in results["baseline"]
    printed = capsys.readouterr().out
    assert "baseline ms" in printed and "ratio (ours / baseline)" in printed


@pytest.fixture(scope="module")
def tiny() -> Bench:
    args = argparse.Namespace(
        height=64,
        width=96,
        keypoints=32,
        sinkhorn_iterations=20,
        weights_dir=None,
        repeats=1,
        warmup=0,
    )
    return Bench(args, torch.device("cpu"))


@pytest.fixture(scope="module")
def superpoint_outputs(tiny):
    model = tiny.superpoint("fp32")
    ours = model.extract(tiny.image)
    baseline = reference.reference_superpoint(reference.contiguous_superpoint(model), tiny.image)
    assert len(ours["keypoints"][0]) == 32
    return ours, baseline


@pytest.fixture(scope="module")
def superglue_outputs(tiny):
    model, pair = tiny.superglue(), tiny.batch(1)
    ours = model.match(pair)["log_assignment"]
    baseline = reference.reference_superglue(model, pair)["log_assignment"]
    return ours, baseline


def perturbed(outputs: dict, key: str, change) -> dict:
    copy = {k: [t.clone() for t in v] for k, v in outputs.items()}
    change(copy[key][0])
    return copy


def test_superpoint_baseline_check(superpoint_outputs) -> None:
    ours, baseline = superpoint_outputs
    reference.check_superpoint_baseline(ours, baseline)  # the real baseline passes
    reordered = {k: [v[0].flip(0)] for k, v in baseline.items() if k != "descriptors"}
    reference.check_superpoint_baseline(ours, reordered)  # a set: order does not matter

    def move(points):
        points[0, 0] += 1

    def nudge(scores):
        scores[-1] += 1e-4

    with pytest.raises(reference.BaselineMismatchError, match="keypoint sets differ"):
        reference.check_superpoint_baseline(ours, perturbed(baseline, "keypoints", move))
    with pytest.raises(reference.BaselineMismatchError, match="scores differ"):
        reference.check_superpoint_baseline(ours, perturbed(baseline, "scores", nudge))
    dropped = {k: [v[0][1:]] for k, v in baseline.items() if k != "descriptors"}
    with pytest.raises(reference.BaselineMismatchError, match="keypoint sets differ"):
        reference.check_superpoint_baseline(ours, dropped)


def test_superglue_baseline_check(superglue_outputs) -> None:
    ours, baseline = superglue_outputs
    reference.check_superglue_baseline(ours, baseline)  # the real baseline passes
    off = baseline.clone()
    off[0, 3, 5] += 1e-3
    with pytest.raises(reference.BaselineMismatchError, match="differs by up to"):
        reference.check_superglue_baseline(ours, off)
    infinite = baseline.clone()
    infinite[0, 0, 0] = -math.inf
    with pytest.raises(reference.BaselineMismatchError, match="finite at other places"):
        reference.check_superglue_baseline(ours, infinite)
    with pytest.raises(reference.BaselineMismatchError, match="shape"):
        reference.check_superglue_baseline(ours, baseline[:, :-1])


def test_superglue_baseline_refuses_padded_pairs(tiny) -> None:
    model, pairs = tiny.superglue(), tiny.batch(2)
    with pytest.raises(ValueError, match="one unpadded pair"):
        reference.reference_superglue(model, pairs)


def test_frames_and_ros_parts_print_json(tmp_path, fixtures_dir, capsys, monkeypatch) -> None:
    """End-to-end frames on both runtimes (alternating, with their ratio) and the ROS
    overhead, as one JSON document on stdout; 2-layer SuperGlue weights keep it quick."""
    pytest.importorskip("onnxruntime", reason="--runtime onnxruntime needs onnxruntime")
    from model_weights import write_small_checkpoints

    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    weights = write_small_checkpoints(tmp_path / "weights", fixtures_dir)
    argv = ["bench", *TINY, "--keyframes", "2", "--precisions", "fp32", "--repeats", "2"]
    argv += ["--parts", "frames,ros", "--ros-frames", "20", "--weights-dir", str(weights)]
    assert main([*argv, "--runtime", "torch,onnxruntime", "--json"]) == 0
    results = json.loads(capsys.readouterr().out)  # nothing but the JSON document
    assert results["weights"] == "released" and results["onnxruntime"]
    rows = {(row["runtime"], row["keyframes"]): row for row in results["frames"]}
    assert set(rows) == {("torch", 2), ("onnxruntime", 2)}
    for (runtime, _), row in rows.items():
        assert row["fps"] == pytest.approx(1e3 / row["frame_ms"], rel=1e-2)
        assert 0 < row["frontend_ms"] + row["matcher_ms"] <= row["frame_ms"]
        if runtime == "onnxruntime":
            torch_row = rows[("torch", row["keyframes"])]
            ratio = row["frame_ms"] / torch_row["frame_ms"]
            # ratio_to_torch is rounded to 3 decimals: half a unit of the last is allowed
            assert row["ratio_to_torch"] == pytest.approx(ratio, rel=1e-2, abs=5e-4)
            assert row["fp32_torch_matches_kept"] >= 0.9, row
    overhead = results["ros_overhead"]
    if "skipped" not in overhead:
        steps = ("image_conversion", "message_building", "publish", "features_vins")
        assert all(overhead[f"{step}_ms"] > 0 for step in steps)
        assert overhead["total_ms"] == pytest.approx(sum(overhead[f"{s}_ms"] for s in steps), 1e-2)
        assert overhead["building_and_publish_without_descriptors_ms"] > 0
        assert overhead["message_bytes"] > 32 * 256 * 4  # descriptors are sent


def test_unknown_part_or_runtime_is_a_user_error(capsys) -> None:
    assert main(["bench", "--parts", "models,gpu"]) == 2
    assert "--parts: unknown gpu" in capsys.readouterr().err
    assert main(["bench", "--runtime", "tensorrt"]) == 2
    assert "--runtime: unknown tensorrt" in capsys.readouterr().err


def test_frames_part_runs_without_ros_or_opencv(tmp_path, fixtures_dir) -> None:
    """As on a GPU machine with torch and onnxruntime only: rclpy, OpenCV and the
    interfaces cannot be imported, the frames part runs and the ros part says why not."""
    import subprocess
    import sys

    from model_weights import write_small_checkpoints

    weights = write_small_checkpoints(tmp_path / "weights", fixtures_dir)
    argv = ["bench", *TINY, "--keyframes", "1", "--precisions", "fp32", "--runtime", "torch"]
    argv += ["--parts", "frames,ros", "--weights-dir", str(weights), "--json"]
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('rclpy', 'cv2', 'superglue_ros_msgs'):\n"
        "            raise ImportError(name + ' blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from superglue_ros.tools.cli import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr + run.stdout
    results = json.loads(run.stdout)
    assert results["frames"][0]["fps"] > 0
    assert "not importable" in results["ros_overhead"]["skipped"]
