"""Replay with SuperPoint + SuperGlue (test checkpoints: random weights, real code paths).

Small on purpose (3 frames, images downscaled, 128 keypoints) so that it runs in
seconds on a CPU; it checks that the torch path is deterministic and complete.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rosbags.highlevel import AnyReader

from superglue_ros.tools import bag, cli

from model_weights import write_test_checkpoints


@pytest.fixture(scope="module")
def small_bag(freiburg_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    images = tmp_path_factory.mktemp("images")
    for path in sorted(freiburg_dir.glob("*.png"))[:3]:
        (images / path.name).symlink_to(path)
    out = tmp_path_factory.mktemp("bag") / "bag"
    bag.write_from_images(images, out, camera_yaml=freiburg_dir / "camera.yaml")
    return out


@pytest.fixture(scope="module")
def params_file(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    weights = write_test_checkpoints(tmp_path_factory.mktemp("weights"), fixtures_dir)
    path = tmp_path_factory.mktemp("params") / "superglue_small.yaml"
    path.write_text(
        f"frontend: superpoint\nmatcher: superglue\ndevice: cpu\nweights_dir: {weights}\n"
        "max_image_side: 320\nsuperpoint: {max_keypoints: 128}\n"
    )
    return path


def replay_payloads(bag_path: Path, params: Path, out: Path) -> list[bytes]:
    assert cli.main(["replay", str(bag_path), "--out", str(out), "--params", str(params)]) == 0
    with AnyReader([out / params.stem / "correspondences"]) as reader:
        return [bytes(raw) for _, _, raw in reader.messages()]


def test_superglue_replay_is_deterministic(
    small_bag: Path, params_file: Path, tmp_path: Path
) -> None:
    first = replay_payloads(small_bag, params_file, tmp_path / "a")
    second = replay_payloads(small_bag, params_file, tmp_path / "b")
    assert len(first) >= 3 and first == second
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    (config,) = report["configs"]
    assert config["frames"] == 3 and "superglue" in config["description"]
    assert config["keypoints_per_frame"]["max"] <= 128
    assert config["matches_per_frame"]["newest_keyframe"]["count"] == 2
