"""`superglue-ros eval-pairs`: the relative-pose protocol end to end and its geometry helpers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from superglue_ros.tools import cli, eval_pairs

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ORB_MNN = PROJECT_ROOT / "config" / "eval" / "orb_mnn.yaml"


def run_cli(*argv: str) -> int:
    """superglue-ros with its real dispatch and error handling (exit status returned)."""
    return cli.main(list(argv))


@pytest.fixture(scope="module")
def scannet_dir(data_dir: Path) -> Path:
    path = data_dir / "scannet_sample"
    if not (path / "pairs_with_gt.txt").is_file():
        pytest.skip(f"{path} has no pairs_with_gt.txt")
    return path


def test_orb_baseline_end_to_end(
    scannet_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "results.json"
    argv = ["eval-pairs", str(scannet_dir / "pairs_with_gt.txt"), str(scannet_dir),
            "--resize", "640", "480", "--params", str(ORB_MNN), "--max-pairs", "8",
            "--json", str(out)]  # fmt: skip
    assert run_cli(*argv) == 0
    printed = capsys.readouterr().out
    assert "| orb_mnn | orb + mnn | 8 |" in printed
    document = json.loads(out.read_text())
    assert document["resize"] == [640, 480]
    (row,) = document["configs"]
    assert row["pairs"] == len(row["per_pair"]) == 8
    values = [row[k] for k in ("auc@5", "auc@10", "auc@20", "precision", "matching_score")]
    assert all(math.isfinite(v) and 0.0 <= v <= 100.0 for v in values)
    assert row["auc@5"] <= row["auc@10"] <= row["auc@20"]
    assert row["matches"] > 20 and row["keypoints"] > 100
    for pair in row["per_pair"]:
        assert pair["correct_matches"] <= pair["matches"] <= min(pair["keypoints"])
        assert pair["pose_error_deg"] is None or 0.0 <= pair["pose_error_deg"] <= 180.0
    # Some matches are right: the ground truth convention (T_0to1) is read the right way round.
    assert row["precision"] > 5.0


def test_pairs_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text("a.jpg b.jpg 0 0 1 2 3\n")
    with pytest.raises(ValueError, match="expected 38 values"):
        eval_pairs.read_pairs(path)
    path.write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="no pairs"):
        eval_pairs.read_pairs(path)


def test_missing_image_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = tmp_path / "pairs.txt"
    identity = " ".join(["1", "0", "0", "0", "1", "0", "0", "0", "1"])
    pose = " ".join(map(str, np.eye(4).ravel()))
    pairs.write_text(f"x.jpg y.jpg 0 0 {identity} {identity} {pose}\n")
    argv = ["eval-pairs", str(pairs), str(tmp_path), "--params", str(ORB_MNN)]
    assert run_cli(*argv) == 2
    assert "x.jpg does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_rotation_moves_pixels_intrinsics_and_pose_together(turns: int) -> None:
    """A 3D point projects where np.rot90 moves its pixel, through the rotated K and pose."""
    k = np.array([[500.0, 0.0, 300.0], [0.0, 480.0, 200.0], [0.0, 0.0, 1.0]])
    image = np.zeros((400, 640), np.uint8)
    point = np.array([0.3, -0.2, 2.0])
    u, v = (k @ point)[:2] / point[2]
    image[round(v), round(u)] = 255

    rotated, k_rotated, rotation = eval_pairs.rotate_quarter_turns(image, k, turns)
    np.testing.assert_array_equal(rotated, np.rot90(image, turns))
    projected = k_rotated @ (rotation @ point)
    x, y = projected[:2] / projected[2]
    row, col = np.argwhere(rotated == 255)[0]
    # The marked pixel sits at the rounded projection; the projection moves exactly.
    assert abs(x - col) <= 0.5 and abs(y - row) <= 0.5


def test_resize_scales_intrinsics() -> None:
    k = np.array([[1000.0, 0.0, 640.0], [0.0, 1000.0, 480.0], [0.0, 0.0, 1.0]])
    image, scaled = eval_pairs.resize_image(np.zeros((960, 1280), np.uint8), k, (640, 480))
    assert image.shape == (480, 640)
    np.testing.assert_allclose(scaled, [[500.0, 0, 320.0], [0, 500.0, 240.0], [0, 0, 1]])
