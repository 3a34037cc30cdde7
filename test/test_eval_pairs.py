"""`superglue-ros eval-pairs`: the relative-pose protocol end to end and its geometry helpers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from superglue_ros.evaluation import pairs as eval_pairs
from superglue_ros.tools import cli

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
    # Every pair has enough matches for a pose (an estimator that always fails would pass
    # the range checks above; the known-answer tests below check the poses themselves).
    assert all(pair["pose_error_deg"] is not None for pair in row["per_pair"])


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


# ------------------------------------------------------------ known answer
K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])


def rotation_y(degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def two_plane_pair(seed: int, yaw_deg: float, t: np.ndarray) -> tuple[np.ndarray, ...]:
    """Two exact views of a scene of two textured planes (z = 4 m behind, z = 2 m in front).

    View 0 is the textures as seen from camera 0; view 1 warps each plane with its
    homography K (R + t n^T / d) K^-1 (camera-0 points X map to R X + t), the near
    plane drawn over the far one. Returns image0, image1 and T_0to1 [4, 4].
    """
    import cv2

    from synthetic import textured_image

    rotation = rotation_y(yaw_deg)
    far, near = textured_image(480, 640, seed), textured_image(480, 640, seed + 100)
    near_mask = np.zeros((480, 640), np.uint8)
    near_mask[140:340, 200:440] = 255
    image0 = np.where(near_mask > 0, near, far)
    normal = np.array([0.0, 0.0, 1.0])
    image1 = None
    for texture, depth, mask in ((far, 4.0, None), (near, 2.0, near_mask)):
        homography = K @ (rotation + np.outer(t, normal) / depth) @ np.linalg.inv(K)
        warped = cv2.warpPerspective(texture, homography, (640, 480), flags=cv2.INTER_LINEAR)
        if mask is None:
            image1 = warped
        else:
            covered = cv2.warpPerspective(mask, homography, (640, 480), flags=cv2.INTER_NEAREST)
            image1 = np.where(covered > 0, warped, image1)
    t_0to1 = np.eye(4)
    t_0to1[:3, :3], t_0to1[:3, 3] = rotation, t
    return image0, image1, t_0to1


def write_pairs(folder: Path, pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Path:
    import cv2

    lines = []
    k = " ".join(map(str, K.ravel()))
    for index, (image0, image1, t_0to1) in enumerate(pairs):
        names = (f"{index}_0.png", f"{index}_1.png")
        cv2.imwrite(str(folder / names[0]), image0)
        cv2.imwrite(str(folder / names[1]), image1)
        lines.append(f"{names[0]} {names[1]} 0 0 {k} {k} " + " ".join(map(str, t_0to1.ravel())))
    path = folder / "pairs.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def exact_pairs() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    motions = [(2.0, [0.3, 0.02, 0.05]), (-3.0, [-0.25, 0.05, 0.1]), (1.0, [0.1, -0.2, 0.0])]
    return [two_plane_pair(seed, yaw, np.array(t)) for seed, (yaw, t) in enumerate(motions)]


def evaluate_pairs(folder: Path, pairs: list) -> dict:
    out = folder / "results.json"
    argv = ["eval-pairs", str(write_pairs(folder, pairs)), str(folder),
            "--params", str(ORB_MNN), "--json", str(out)]  # fmt: skip
    assert run_cli(*argv) == 0
    (row,) = json.loads(out.read_text())["configs"]
    return row


def test_exact_geometry_gives_an_auc_near_100(exact_pairs, tmp_path: Path) -> None:
    """Known answer: the pose of every exactly rendered pair is recovered to within a
    few degrees, so AUC@20 is near 100 (a broken estimator, a transposed pose or swapped
    intrinsics all fail this), and most matches are epipolar-correct."""
    row = evaluate_pairs(tmp_path, exact_pairs)
    errors = [p["pose_error_deg"] for p in row["per_pair"]]
    assert all(e is not None and e < 5.0 for e in errors), errors
    assert row["auc@20"] > 90.0 and row["auc@10"] > 80.0, row
    assert row["precision"] > 50.0


def test_one_failed_estimate_lowers_the_auc(exact_pairs, tmp_path: Path) -> None:
    """A pair with nothing to match (a blank second image) has no pose: its error is
    infinite, so the AUC can reach at most (P - 1) / P of 100."""
    blank = np.full((480, 640), 128, np.uint8)
    pairs = [*exact_pairs, (exact_pairs[0][0], blank, exact_pairs[0][2])]
    row = evaluate_pairs(tmp_path, pairs)
    assert row["per_pair"][-1]["pose_error_deg"] is None
    assert row["per_pair"][-1]["ransac_inliers"] == 0
    limit = 100.0 * (len(pairs) - 1) / len(pairs)
    assert 0.9 * limit < row["auc@20"] <= limit
