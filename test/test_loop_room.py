"""Loop closure end to end on generated rooms (``generate room --path loop``), ORB + MNN.

The camera goes once round the room looking outward at the walls and returns to
its start; ``replay --odometry --groundtruth`` runs the back-end with and without
``loop_closure.enabled``. On a room where every face has its own picture the
loop between the last and the first frames is found and closing it cuts the
trajectory error; on one whose middle wall picture repeats on other walls
(perceptual aliasing) no loop joins places that are far apart.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from superglue_ros.evaluation.textures import procedural_texture
from superglue_ros.odometry.trajectory import read_tum
from superglue_ros.pipeline.place_recognition import vocabulary_from_images
from superglue_ros.tools.cli import main as cli_main
from superglue_ros.tools.generate import generate_room

from conftest import require_module
from synthetic import orb_pipeline

pytestmark = pytest.mark.slow  # two replays round a room (ORB, about 10 s of CPU each)
# Measured on the oldest stack (make test-oldest, OpenCV 4.6.0): ORB tracking round the
# room posed only 31 of 80 frames, so no loop could be found; on the aliased room the
# map broke and an aliased loop was taken as a relocalisation across the break, which
# the back-end cannot verify (issue 18). The back-end's tracking depends on OpenCV's
# USAC there, as test_odometry_backend's OLD_USAC cases; kept visible as expected failures.
OLD_USAC = pytest.mark.xfail(
    tuple(int(v) for v in cv2.__version__.split(".")[:2]) < (4, 7),
    reason="OpenCV < 4.7: ORB tracking round the room breaks (issues 16 and 18)",
    strict=False,
)

FRAMES = 80
WIDTH, HEIGHT = 320, 240
FAR_M = 0.5  # a loop between places farther apart than this is false (issue 18)


@pytest.fixture(scope="module")
def params(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """ORB params files without and with loop closure; the vocabulary is trained on
    procedural pictures of other seeds than the rooms'."""
    require_module("gtsam", "the back-end needs GTSAM (make setup installs it)")
    require_module("evo", "trajectory errors come from evo (make setup installs it)")
    require_module("rosbags", "the generator writes rosbag2 files")
    folder = tmp_path_factory.mktemp("params")
    rng = np.random.default_rng(12345)
    training = [cv2.resize(procedural_texture(rng), (WIDTH, HEIGHT)) for _ in range(16)]
    vocabulary = vocabulary_from_images(training, orb_pipeline().frontend, 128, seed=0)
    vocabulary_path = vocabulary.save(folder / "orb.npz")
    base = "/**:\n  ros__parameters:\n    frontend: orb\n    matcher: mnn\n"
    off, on = folder / "orb.yaml", folder / "orb_loops.yaml"
    off.write_text(base)
    on.write_text(
        base + f"    loop_closure:\n      enabled: true\n      vocabulary: {vocabulary_path}\n"
    )
    return off, on


def replay_room(params: tuple[Path, Path], out: Path, repeat_textures: int) -> tuple[dict, dict]:
    """The report's odometry entries (without, with loop closure) and the ground truth
    positions by stamp."""
    room = out / "room"
    generate_room(
        room,
        FRAMES,
        width=WIDTH,
        height=HEIGHT,
        seed=1,
        path="loop",
        repeat_textures=repeat_textures,
    )
    replayed = out / "replay"
    command = ["replay", str(room / "bag"), "--out", str(replayed), "--params", *map(str, params)]
    command += ["--odometry", "--groundtruth", str(room / "groundtruth.tum")]
    assert cli_main(command) == 0
    report = json.loads((replayed / "report.json").read_text())
    off, on = (c["odometry"] for c in report["configs"])
    truth = read_tum(room / "groundtruth.tum")
    positions = {round(s * 1e9): p for s, p in zip(truth.stamps, truth.positions, strict=True)}
    return {"off": off, "on": on}, positions


def loop_distances(odometry: dict, positions: dict) -> list[float]:
    """Ground-truth distance between the two places each reported loop joins."""
    return [
        float(np.linalg.norm(positions[c["query_stamp_ns"]] - positions[c["match_stamp_ns"]]))
        for c in odometry["loop_closures"]
    ]


@OLD_USAC
def test_the_loop_round_the_room_is_found_and_closing_it_cuts_the_error(params, tmp_path) -> None:
    runs, positions = replay_room(params, tmp_path, repeat_textures=1)
    off, on = runs["off"], runs["on"]
    assert off["loop_closure_enabled"] is False and off["loop_closures"] == []
    assert on["loop_closure_enabled"] is True
    stamps = sorted(positions)
    last, first = stamps[int(0.9 * FRAMES)], stamps[int(0.1 * FRAMES)]
    closing = [
        c
        for c in on["loop_closures"]
        if c["query_stamp_ns"] >= last and c["match_stamp_ns"] < first
    ]
    assert closing, on["loop_closures"]
    assert max(loop_distances(on, positions)) < FAR_M
    assert on["accuracy"]["ate_rmse_m"] <= 0.5 * off["accuracy"]["ate_rmse_m"], (on, off)


@OLD_USAC
def test_a_picture_repeated_on_three_walls_gives_no_false_loop(params, tmp_path) -> None:
    runs, positions = replay_room(params, tmp_path, repeat_textures=3)
    on = runs["on"]
    assert all(d < FAR_M for d in loop_distances(on, positions)), on["loop_closures"]
