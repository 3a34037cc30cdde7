"""`superglue-ros benchmark`: the table agrees with the runs it was made from.

One small generated room, ORB + MNN, two seeds, each a real replay in its own
child process; nothing here is timed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from superglue_ros.evaluation.benchmark import RunResult
from superglue_ros.evaluation.table import markdown, summarise
from superglue_ros.odometry.trajectory import read_tum
from superglue_ros.tools import cli
from superglue_ros.tools.benchmark import parse_sequence
from superglue_ros.tools.common import CliError

from conftest import PROJECT_ROOT, SHARED, require_module

ORB = PROJECT_ROOT / "config" / "eval" / "orb_mnn.yaml"


@pytest.fixture(scope="module")
def benchmarked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(benchmark output folder, generated room folder)."""
    require_module("gtsam", "the back-end needs GTSAM (make setup installs it)")
    require_module("evo", "trajectory errors come from evo (make setup installs it)")
    room = tmp_path_factory.mktemp("room") / "seq"
    assert cli.main([
        "generate", "room", "--out", str(room), "--frames", "12",
        "--width", "320", "--height", "240", "--path-length", "1.2",
    ]) == 0  # fmt: skip
    out = tmp_path_factory.mktemp("bench") / "out"
    assert cli.main([
        "benchmark", "--sequences", f"room={room / 'bag'}", "--params", str(ORB),
        "--seeds", "0", "1", "--out", str(out), "--threads", "1", "--hardware", "test machine",
    ]) == 0  # fmt: skip
    return out, room


def test_table_is_made_of_its_runs(benchmarked: tuple[Path, Path]) -> None:
    benchmarked, room = benchmarked
    document = json.loads((benchmarked / "benchmark.json").read_text())
    runs = document["runs"]
    assert [(r["config"], r["sequence"], r["seed"]) for r in runs] == [
        ("orb_mnn", "room", 0),
        ("orb_mnn", "room", 1),
    ]
    ates = []
    for run in runs:
        assert run["returncode"] == 0 and run["error"] == ""
        report = json.loads((Path(run["out"]) / "report.json").read_text())
        odometry = report["configs"][0]["odometry"]
        assert odometry["ransac_seed"] == run["seed"] == run["metrics"]["ransac_seed"]
        assert run["metrics"]["ate_rmse_m"] == odometry["accuracy"]["ate_rmse_m"]
        assert run["metrics"]["pose_fraction"] == odometry["pose_fraction"]
        assert run["metrics"]["frames"] == 12
        assert run["peak_rss_mb"] > 50  # a Python process with numpy, OpenCV and GTSAM loaded
        ates.append(odometry["accuracy"]["ate_rmse_m"])
    (row,) = document["summary"]
    assert row["ate_cm"]["mean"] == pytest.approx(100 * np.mean(ates), rel=1e-12)
    assert row["ate_cm"]["std"] == pytest.approx(100 * np.std(ates, ddof=1), abs=1e-12)
    assert row["ate_cm"]["n"] == row["runs_with_accuracy"] == 2
    assert document["sequences"][0]["groundtruth"] == str(room / "groundtruth.tum")
    truth = read_tum(room / "groundtruth.tum")
    length = np.linalg.norm(np.diff(truth.positions, axis=0), axis=1).sum()
    assert row["path_m"] == pytest.approx(length, rel=1e-12)
    assert row["path_m"] == pytest.approx(1.2, rel=0.05)  # the --path-length asked for
    assert row["ate_percent_of_path"]["mean"] == pytest.approx(
        100 * np.mean(ates) / length, rel=1e-12
    )
    assert row["peak_rss_mb"] == max(r["peak_rss_mb"] for r in runs)
    assert document["hardware"] == "test machine" and document["seeds"] == [0, 1]
    table = (benchmarked / "benchmark.md").read_text()
    assert "Hardware: test machine." in table
    (line,) = [t for t in table.splitlines() if t.startswith("| room")]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == "orb_mnn"
    assert cells[2].startswith(f"{row['ate_cm']['mean']:.2f}")
    assert cells[-1] == "2 / 2"
    inits = sorted({r["metrics"]["init_frame"] for r in runs})
    assert cells[8] == " / ".join(str(i) for i in inits)


def summary_of(ates: list[float | None], errors: list[str]) -> dict:
    runs = [
        RunResult(
            "c", "s", seed, 0, 1.0, 100.0 + seed, "x",
            metrics={"ate_rmse_m": ate, "frames": 10, "init_frame": None if ate is None else 2},
            error=error,
        )
        for seed, (ate, error) in enumerate(zip(ates, errors, strict=True))
    ]  # fmt: skip
    (row,) = summarise(runs, {"s": 2.0})
    return row


def test_summary_over_seeds_with_a_failed_run() -> None:
    row = summary_of([0.01, 0.03, None], ["", "", "map lost"])
    assert row["ate_cm"] == {"mean": pytest.approx(2.0), "std": pytest.approx(np.sqrt(2)), "n": 2}
    assert row["ate_percent_of_path"]["mean"] == pytest.approx(1.0)  # 2 cm of 2 m
    assert row["runs_with_accuracy"] == 2 and row["errors"] == ["map lost"]
    assert row["peak_rss_mb"] == 102.0 and not row["seeds_identical"]
    text = markdown([row])
    assert "| 2.00 ± 1.41 |" in text and "| 2 / never |" in text and "- c on s: map lost" in text


def test_identical_seeds_are_said() -> None:
    row = summary_of([0.01, 0.01], ["", ""])
    assert row["seeds_identical"] and row["ate_cm"]["std"] == 0.0
    assert "every seed gave the same ATE" in markdown([row])
    assert summary_of([0.01], [""])["ate_cm"]["std"] is None  # one seed: no spread


def test_sequence_specs() -> None:
    assert parse_sequence("/data/seq-01") == ("seq-01", Path("/data/seq-01"), {})
    name, path, options = parse_sequence("k=/d/06?last=50&every=2&intrinsics=700,700,600,180")
    assert (name, path) == ("k", Path("/d/06"))
    assert options == {"last": 50, "every": 2, "intrinsics": (700.0, 700.0, 600.0, 180.0)}
    with pytest.raises(CliError, match="unknown option 'step'"):
        parse_sequence("/d/06?step=2")
    with pytest.raises(CliError, match="every must be an integer"):
        parse_sequence("/d/06?every=x")


def test_dataset_folders_are_imported_and_bad_specs_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from superglue_ros.tools.benchmark import resolve_sequence

    kitti = SHARED / "data" / "kitti_odometry" / "sequences" / "06"
    if not kitti.is_dir():
        pytest.skip(f"{kitti} is absent (tests that need ../shared skip in a plain clone)")
    sequence = resolve_sequence(f"kitti={kitti}?last=2", tmp_path)
    assert sequence.bag == tmp_path / "sequences" / "kitti"
    assert len(read_tum(sequence.groundtruth)) == 3
    # a bag needs its ground truth; a missing path is named
    (tmp_path / "nogt").mkdir()
    (tmp_path / "nogt" / "metadata.yaml").write_text("")
    code = cli.main(["benchmark", "--sequences", str(tmp_path / "nogt"), "--params", str(ORB),
                     "--out", str(tmp_path / "o1")])  # fmt: skip
    assert code == 2 and "no ground truth" in capsys.readouterr().err
    code = cli.main(["benchmark", "--sequences", str(tmp_path / "none"), "--params", str(ORB),
                     "--out", str(tmp_path / "o2")])  # fmt: skip
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_from_correspondences_reruns_the_backend_on_the_recorded_bags(
    benchmarked: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The back-end alone on the first benchmark's bags gives each seed's very ATE; the
    front-end's times and peak RSS are the recorded run's."""
    previous, room = benchmarked
    out = tmp_path / "again"
    assert cli.main([
        "benchmark", "--sequences", f"room={room / 'bag'}", "--from-correspondences",
        str(previous), "--seeds", "0", "1", "--out", str(out), "--threads", "1",
    ]) == 0  # fmt: skip
    first = json.loads((previous / "benchmark.json").read_text())["runs"]
    again = json.loads((out / "benchmark.json").read_text())["runs"]
    recorded = previous / "runs" / "orb_mnn" / "room" / "seed0" / "orb_mnn" / "correspondences"
    for before, after in zip(first, again, strict=True):
        assert after["seed"] == before["seed"] and after["error"] == ""
        assert after["metrics"]["ate_rmse_m"] == before["metrics"]["ate_rmse_m"]
        assert after["metrics"]["init_frame"] == before["metrics"]["init_frame"]
        assert after["metrics"]["total_ms"] == first[0]["metrics"]["total_ms"]
        assert after["peak_rss_mb"] == first[0]["peak_rss_mb"]
        assert after["recorded_bag"] == str(recorded) and after["backend_peak_rss_mb"] > 50
    assert "Back-end only" in (out / "benchmark.md").read_text()
    # a folder that is no benchmark output, and a configuration it did not run
    code = cli.main(["benchmark", "--sequences", f"room={room / 'bag'}", "--from-correspondences",
                     str(tmp_path), "--out", str(tmp_path / "o1")])  # fmt: skip
    assert code == 2 and "no benchmark.json" in capsys.readouterr().err
    code = cli.main(["benchmark", "--sequences", f"room={room / 'bag'}", "--from-correspondences",
                     str(previous), "--params", "sift_mnn.yaml",
                     "--out", str(tmp_path / "o2")])  # fmt: skip
    assert code == 2 and "not among the recorded" in capsys.readouterr().err
