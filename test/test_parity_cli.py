"""`superglue-ros parity`: passes on the shipped fixtures, fails on a tampered one, and
reads any fixture of that format (other sizes, depths, iterations, thresholds, limits)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from superglue_ros.models.superglue import SuperGlue
from superglue_ros.models.superpoint import SuperPoint
from superglue_ros.models.weights import synthetic_superglue_state
from superglue_ros.tools.cli import main

from conftest import PROJECT_ROOT


def parity(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "superglue_ros", "parity", *map(str, args)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in:\n{text}"
    return float(match.group(1))


def test_shipped_fixtures_pass(fixtures_dir) -> None:
    run = parity(
        "--superpoint",
        fixtures_dir / "superpoint_parity_small.npz",
        "--superglue",
        fixtures_dir / "superglue_parity_small.npz",
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    for image in ("image0", "image1"):
        line = next(row for row in out.splitlines() if row.startswith(f"superpoint {image}"))
        assert number(r"common \d+ \(([\d.]+)%\)", line) >= 99.5
        assert number(r"max score diff ([\d.e+-]+)", line) <= 1e-5
        assert number(r"min descriptor cosine ([\d.]+)", line) >= 0.9999
    assert number(r"max log_assignment diff ([\d.e+-]+)", out) <= 1e-3
    assert "matches0 agree 300/300" in out and "matches1 agree 300/300" in out
    assert out.rstrip().endswith("parity: PASS")


def rewrite(source, target, change) -> None:
    with np.load(source) as npz:
        arrays = {key: npz[key] for key in npz.files}
    change(arrays)
    np.savez(target, **arrays)


def test_tampered_weights_fail(fixtures_dir, tmp_path) -> None:
    def perturb(arrays):
        arrays["weights/gnn.layers.3.mlp.3.weight"] = (
            arrays["weights/gnn.layers.3.mlp.3.weight"] * 1.5
        )

    bad = tmp_path / "superglue_bad.npz"
    rewrite(fixtures_dir / "superglue_parity_small.npz", bad, perturb)
    run = parity("--superglue", bad)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "superglue: FAIL" in run.stdout and "parity: FAIL" in run.stdout


def test_tampered_superpoint_reference_fails(fixtures_dir, tmp_path, capsys) -> None:
    def shift(arrays):
        arrays["out1/scores"] = arrays["out1/scores"] + 1e-3

    bad = tmp_path / "superpoint_bad.npz"
    rewrite(fixtures_dir / "superpoint_parity_small.npz", bad, shift)
    assert main(["parity", "--superpoint", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "superpoint image0" in out and "image1" in out and "superpoint: FAIL" in out


def test_needs_a_fixture(capsys) -> None:
    assert main(["parity"]) == 2
    assert "--superpoint" in capsys.readouterr().err


def test_shipped_fixtures_pass_through_onnxruntime(fixtures_dir, capsys) -> None:
    pytest.importorskip("onnxruntime", reason="--runtime onnxruntime needs onnxruntime")
    fixtures = (
        ["--superpoint", str(fixtures_dir / "superpoint_parity_small.npz")],
        ["--superglue", str(fixtures_dir / "superglue_parity_small.npz")],
    )
    assert main(["parity", "--runtime", "onnxruntime", *fixtures[0], *fixtures[1]]) == 0
    out = capsys.readouterr().out
    assert "runtime: onnxruntime" in out
    for image in ("image0", "image1"):
        line = next(row for row in out.splitlines() if row.startswith(f"superpoint {image}"))
        assert number(r"common \d+ \(([\d.]+)%\)", line) >= 99.5
        assert number(r"max score diff ([\d.e+-]+)", line) <= 1e-5
    assert number(r"max log_assignment diff ([\d.e+-]+)", out) <= 1e-3
    assert "matches0 agree 300/300" in out and "matches1 agree 300/300" in out
    assert out.rstrip().endswith("parity: PASS")


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_any_configuration_of_the_fixture_format(fixtures_dir, tmp_path, capsys, runtime) -> None:
    """Fixtures written by our own models with other settings: the command must build
    models from each fixture's config and weights (self-consistency, not reference parity),
    and export them with those settings for --runtime onnxruntime."""
    if runtime == "onnxruntime":
        pytest.importorskip("onnxruntime", reason="--runtime onnxruntime needs onnxruntime")
    with np.load(fixtures_dir / "superpoint_parity_small.npz") as npz:
        sp_weights = {k: npz[k] for k in npz.files if k.startswith("weights/")}
        image = npz["image0"][:101, :157].copy()  # sides not multiples of 8
    sp_conf = {
        "nms_radius": 2,
        "keypoint_threshold": 0.01,
        "max_keypoints": -1,
        "remove_borders": 8,
        "descriptor_dim": 256,
    }
    superpoint = SuperPoint(sp_conf)
    superpoint.load_state_dict({k[8:]: torch.from_numpy(v) for k, v in sp_weights.items()})
    out = superpoint.extract(torch.from_numpy(image)[None, None])
    sp_file = tmp_path / "sp.npz"
    np.savez(
        sp_file,
        config=json.dumps(sp_conf),
        image0=image,
        **sp_weights,
        **{f"out0/{k}": v[0].numpy() for k, v in out.items()},
    )

    sg_conf = {
        "descriptor_dim": 32,
        "keypoint_encoder": [16, 32],
        "GNN_layers": ["self", "cross", "self"],
        "sinkhorn_iterations": 7,
        "match_threshold": 0.05,
    }
    state = synthetic_superglue_state(3, sg_conf, projection_gain=6.0)
    superglue = SuperGlue(sg_conf)
    superglue.load_state_dict(state)
    gen = torch.Generator().manual_seed(0)
    inputs = {
        "keypoints0": torch.rand(1, 40, 2, generator=gen) * 100,
        "keypoints1": torch.rand(1, 33, 2, generator=gen) * 100,
        "scores0": torch.rand(1, 40, generator=gen),
        "scores1": torch.rand(1, 33, generator=gen),
        "descriptors0": torch.nn.functional.normalize(torch.randn(1, 32, 40, generator=gen), dim=1),
        "descriptors1": torch.nn.functional.normalize(torch.randn(1, 32, 33, generator=gen), dim=1),
    }
    result = superglue.match({**inputs, "image_size0": (90, 120), "image_size1": (100, 100)})
    sg_file = tmp_path / "sg.npz"
    np.savez(
        sg_file,
        config=json.dumps(sg_conf),
        image_size0=np.array([90, 120]),
        image_size1=np.array([100, 100]),
        **{f"weights/{k}": v.numpy() for k, v in state.items()},
        **{f"in/{k}": v[0].numpy() for k, v in inputs.items()},
        **{k: v[0].numpy() for k, v in result.items()},
    )
    fixtures = ["--superpoint", str(sp_file), "--superglue", str(sg_file)]
    assert main(["parity", "--runtime", runtime, *fixtures]) == 0
    text = capsys.readouterr().out
    assert "parity: PASS" in text
    assert f"keypoints ref {len(out['keypoints'][0])}" in text


@pytest.mark.parametrize("missing", ["superpoint", "superglue"])
def test_missing_fixture_file_is_a_user_error(tmp_path, capsys, missing) -> None:
    assert main(["parity", f"--{missing}", str(tmp_path / "absent.npz")]) == 2
    assert "absent.npz" in capsys.readouterr().err


@pytest.fixture
def image_pair(tmp_path):
    """Two views (a 6 px shift) of one texture, as PNG files, and a small ALIKED + LightGlue
    parameters file (few keypoints: the check runs torch and both ONNX forms)."""
    import cv2

    from synthetic import textured_image

    pytest.importorskip("onnxruntime", reason="the ONNX runtime needs onnxruntime")
    big = textured_image(140, 200, seed=5)
    paths = []
    for i, shift in enumerate((0, 6)):
        path = tmp_path / f"view{i}.png"
        cv2.imwrite(str(path), big[10:130, 10 + shift : 170 + shift])
        paths.append(path)
    params = tmp_path / "aliked.yaml"
    params.write_text("frontend: aliked\nmatcher: lightglue\naliked:\n  max_keypoints: 128\n")
    return params, paths


def test_pair_mode_passes_on_a_real_pair_of_views(image_pair, capsys) -> None:
    params, (first, second) = image_pair
    argv = ["parity", "--runtime", "onnxruntime", "--params", str(params), "--pair"]
    assert main([*argv, str(first), str(second)]) == 0
    out = capsys.readouterr().out
    for name in ("keypoints image0", "descriptors image1", "matches adaptive", "layers adaptive"):
        assert f"{name}: " in out and "-> FAIL" not in out
    assert number(r"matches fixed: torch (\d+)", out) > 10
    assert out.rstrip().endswith("parity: PASS")


def test_pair_mode_names_the_first_disagreement(image_pair, capsys, monkeypatch) -> None:
    from superglue_ros.pipeline.onnx_extractors import OnnxAlikedFrontend

    extract = OnnxAlikedFrontend.extract

    def shifted(self, image):  # an exported frontend one pixel off
        features = extract(self, image)
        features.keypoints[:] += 1.0
        return features

    monkeypatch.setattr(OnnxAlikedFrontend, "extract", shifted)
    params, (first, second) = image_pair
    argv = ["parity", "--runtime", "onnxruntime", "--params", str(params), "--pair"]
    assert main([*argv, str(first), str(second)]) == 1
    last = capsys.readouterr().out.rstrip().splitlines()[-1]
    assert last.startswith("parity: FAIL (first disagreement: keypoints image0:")


def test_pair_mode_needs_onnxruntime_and_readable_images(image_pair, tmp_path, capsys) -> None:
    params, (first, _) = image_pair
    argv = ["parity", "--params", str(params), "--pair", str(first), str(first)]
    assert main(argv) != 0
    assert "--runtime onnxruntime" in capsys.readouterr().err
    missing = tmp_path / "nowhere.png"
    argv = ["parity", "--runtime", "onnxruntime", "--pair", str(first), str(missing)]
    assert main(argv) != 0
    assert "nowhere.png does not exist" in capsys.readouterr().err
