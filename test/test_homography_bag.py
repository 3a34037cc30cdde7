"""homography-bag and replay --homographies: known warps, exact ground truth, scored matches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from superglue_ros.evaluation import metrics
from superglue_ros.evaluation.homography import (
    drifting_homographies,
    load_homographies,
    make_sequence,
)
from superglue_ros.tools import cli


def test_homography_errors_compose_through_the_reference() -> None:
    rng = np.random.default_rng(3)
    h_k, h_f = drifting_homographies(3, (320, 240), rng)[1:]
    reference = rng.uniform(20, 200, (50, 2))

    def apply(h, points):
        p = np.hstack([points, np.ones((len(points), 1))]) @ h.T
        return p[:, :2] / p[:, 2:]

    in_keyframe, in_frame = apply(h_k, reference), apply(h_f, reference)
    np.testing.assert_allclose(
        metrics.homography_errors(in_keyframe, in_frame, h_k, h_f), 0, atol=1e-9
    )
    shifted = in_frame + [3.0, 4.0]
    np.testing.assert_allclose(metrics.homography_errors(in_keyframe, shifted, h_k, h_f), 5.0)


def test_frames_are_the_source_warped_by_the_recorded_homography() -> None:
    frames, homographies = make_sequence(None, 3, (160, 120), seed=5)
    assert len(frames) == 3 and frames[0].shape == (120, 160, 3)
    np.testing.assert_array_equal(homographies[0], np.eye(3))
    assert not np.allclose(homographies[2], np.eye(3))
    # Frame 0 warped by H_2 lines up with frame 2 (degraded: compare edges loosely).
    import cv2

    warped = cv2.warpPerspective(frames[0], homographies[2], (160, 120)).astype(float)
    inside = cv2.warpPerspective(np.ones((120, 160)), homographies[2], (160, 120)) > 0.99
    inside &= frames[2].sum(2) > 0
    aligned = np.corrcoef(warped[inside].ravel(), frames[2][inside].astype(float).ravel())[0, 1]
    unaligned = np.corrcoef(
        frames[0][inside].astype(float).ravel(), frames[2][inside].astype(float).ravel()
    )[0, 1]
    assert aligned > 0.8 and aligned > unaligned + 0.2


@pytest.fixture(scope="module")
def procedural_bag(tmp_path_factory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("homography") / "seq"
    args = ["homography-bag", "--procedural", "--out", str(out), "--frames", "4"]
    assert cli.main([*args, "--size", "320x240", "--seed", "2"]) == 0
    return out, out.with_name("seq.homographies.json")


def test_replay_scores_orb_against_the_ground_truth(procedural_bag, tmp_path) -> None:
    bag_path, truth = procedural_bag
    assert set(load_homographies(truth)) and len(load_homographies(truth)) == 4
    params = Path(__file__).resolve().parents[1] / "config" / "eval" / "orb_mnn.yaml"
    out = tmp_path / "r"
    argv = ["replay", str(bag_path), "--out", str(out), "--params", str(params)]
    assert cli.main([*argv, "--homographies", str(truth)]) == 0
    (config,) = json.loads((out / "report.json").read_text())["configs"]
    scores = config["homography"]
    assert scores["frames_scored"] == 4 and scores["threshold_px"] == 3.0
    assert scores["matches"] >= scores["correct"] > 50
    assert 0.3 < scores["precision"] <= 1.0
    assert "homography ground truth: precision @3 px" in (out / "report.md").read_text()


def test_a_bad_homography_file_is_a_user_error(procedural_bag, tmp_path, capsys) -> None:
    bag_path, _ = procedural_bag
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"frames": [{"stamp_ns": 1, "H": [[1, 0], [0, 1]]}]}))
    argv = ["replay", str(bag_path), "--out", str(tmp_path / "r"), "--homographies", str(bad)]
    assert cli.main(argv) == 2
    assert "not a finite 3 x 3 matrix" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
