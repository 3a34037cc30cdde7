"""Run the replay with the reference back-end for every (configuration, sequence, seed).

A run is the ``replay`` command itself (``python -m superglue_ros replay BAG
--out DIR --params FILE --odometry --groundtruth GT --seed N``) in a child
process: the very code path users run, and a peak RSS (``ru_maxrss`` of that
child, from wait4) that no earlier run inflates. What the run measured is read
back from its ``report.json``.

With recorded runs (:func:`recorded_runs`, ``benchmark --from-correspondences``)
a run is ``replay BAG --odometry ...`` on the correspondences bag an earlier
benchmark's run wrote: the back-end alone, on the front-end's very messages, so
seeds and back-end changes cost seconds even for the learned front-ends. Stage
times come from the recorded run's report, and peak RSS is the recorded run's
(the front-end's); the back-end-only process's own is ``backend_peak_rss_mb``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from superglue_ros.odometry.trajectory import read_tum

REPORT_FILE = "report.json"
STAGES = ("frontend", "matcher", "policy", "total")  # replay's latency_ms stages
ERROR_TAIL_CHARS = 2000


@dataclass
class Sequence:
    """A bag with its ground truth (``bag from-dataset`` writes OUT/groundtruth.tum)."""

    name: str
    bag: Path
    groundtruth: Path

    def path_length_m(self) -> float:
        """Length of the ground-truth path (sum of the steps between its poses)."""
        positions = read_tum(self.groundtruth).positions
        return float(np.linalg.norm(np.diff(positions, axis=0), axis=1).sum())


@dataclass
class Config:
    """A pipeline parameter file; its name is the file stem, as replay names it."""

    params: Path

    @property
    def name(self) -> str:
        return self.params.stem


@dataclass
class RunResult:
    """One (configuration, sequence, seed) run: its exit status and what it measured.

    metrics: ate_rmse_m, rpe_translation_rmse_m, rpe_rotation_rmse_deg, scale,
    pose_fraction, maps_started, init_frame, frames, backend_ms_per_frame and
    <stage>_ms (median per frame) where the report had them; error: why a run
    gave no accuracy ("" when it did).
    """

    config: str
    sequence: str
    seed: int
    returncode: int
    wall_s: float
    peak_rss_mb: float
    out: str
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    recorded_bag: str = ""  # the correspondences bag a back-end-only run replayed
    backend_peak_rss_mb: float | None = None  # that run's own peak RSS

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RecordedRun:
    """An earlier benchmark run: its correspondences bag and its (front-end's) peak RSS."""

    bag: Path
    peak_rss_mb: float


def recorded_runs(previous: Path) -> dict[tuple[str, str], RecordedRun]:
    """(configuration, sequence) -> the recorded run of an earlier benchmark folder (its
    lowest seed with a report; the front-end does not depend on the back-end's seed).
    ValueError when previous is no benchmark output."""
    import json

    path = previous / "benchmark.json"
    if not path.is_file():
        raise ValueError(f"{previous} is no benchmark output: no {path.name} in it")
    try:
        runs = json.loads(path.read_text())["runs"]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"cannot read {path}: {error}") from error
    recorded: dict[tuple[str, str], RecordedRun] = {}
    for run in sorted(runs, key=lambda r: r["seed"]):
        key = (run["config"], run["sequence"])
        # The folder as the earlier benchmark laid it out (it may have moved since).
        out = previous / "runs" / run["config"] / run["sequence"] / f"seed{run['seed']}"
        bag = out / run["config"] / "correspondences"
        if key not in recorded and (out / REPORT_FILE).is_file() and bag.exists():
            recorded[key] = RecordedRun(bag, float(run["peak_rss_mb"]))
    return recorded


def replay_command(
    sequence: Sequence, config: Config, seed: int, out: Path, recorded: RecordedRun | None = None
) -> list[str]:
    """The replay command line of one run (on the recorded bag when given: back-end only)."""
    if recorded is not None:
        source = ["replay", str(recorded.bag)]
    else:
        source = ["replay", str(sequence.bag), "--params", str(config.params)]
    return [
        sys.executable, "-m", "superglue_ros", *source, "--out", str(out),
        "--odometry", "--groundtruth", str(sequence.groundtruth), "--seed", str(seed),
    ]  # fmt: skip


def _wait_with_usage(command: list[str], env: Mapping[str, str], log: Path) -> tuple[int, float]:
    """Run command (output to log); (exit status, peak RSS in MiB of the child)."""
    with log.open("wb") as output:
        pid = os.posix_spawn(
            command[0],
            command,
            dict(env),
            file_actions=[
                (os.POSIX_SPAWN_DUP2, output.fileno(), 1),
                (os.POSIX_SPAWN_DUP2, output.fileno(), 2),
            ],
        )
        try:
            _, status, usage = os.wait4(pid, 0)
        except BaseException:
            os.kill(pid, 15)
            os.waitpid(pid, 0)
            raise
    # ru_maxrss is in KiB on Linux
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024


def read_metrics(report: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """(metrics, error) of a replay report.json with one configuration run with --odometry."""
    config = report["configs"][0]
    odometry = config.get("odometry", {})
    metrics: dict[str, Any] = {
        "frames": odometry.get("frames", config.get("frames")),
        "pose_fraction": odometry.get("pose_fraction"),
        "maps_started": odometry.get("maps_started"),
        "init_frame": next(
            (e["frame_id"] for e in odometry.get("events", []) if "initialised" in e["reason"]),
            None,
        ),
        "backend_ms_per_frame": odometry.get("ms_per_frame"),
        "ransac_seed": odometry.get("ransac_seed"),
    }
    for stage in STAGES:
        metrics[f"{stage}_ms"] = config.get("latency_ms", {}).get(stage, {}).get("median")
    accuracy = odometry.get("accuracy")
    if accuracy is None:
        return metrics, odometry.get("accuracy_error", "no odometry in the report")
    for key in ("ate_rmse_m", "rpe_translation_rmse_m", "rpe_rotation_rmse_deg", "scale"):
        metrics[key] = accuracy[key]
    return metrics, ""


def run_one(
    sequence: Sequence,
    config: Config,
    seed: int,
    out: Path,
    env: Mapping[str, str] | None = None,
    recorded: RecordedRun | None = None,
) -> RunResult:
    """One run in a fresh child process; out (a new folder) receives the replay's outputs
    and its log (``<out>.log``). recorded: run the back-end alone on that run's bag."""
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.parent / f"{out.name}.log"
    start = time.perf_counter()
    command = replay_command(sequence, config, seed, out, recorded)
    returncode, peak_rss_mb = _wait_with_usage(command, env or os.environ, log)
    result = RunResult(
        config.name,
        sequence.name,
        seed,
        returncode,
        time.perf_counter() - start,
        peak_rss_mb if recorded is None else recorded.peak_rss_mb,
        str(out),
    )
    if recorded is not None:
        result.recorded_bag, result.backend_peak_rss_mb = str(recorded.bag), peak_rss_mb
    report = out / REPORT_FILE
    if report.is_file():
        import json

        result.metrics, result.error = read_metrics(json.loads(report.read_text()))
    else:
        tail = log.read_text(errors="replace")[-ERROR_TAIL_CHARS:].strip()
        result.error = f"replay exited {returncode} without a report: {tail}"
    return result


def run_benchmark(
    sequences: list[Sequence],
    configs: list[Config],
    seeds: list[int],
    out: Path,
    env: Mapping[str, str] | None = None,
    progress: Callable[[RunResult], None] | None = None,
    recorded: Mapping[tuple[str, str], RecordedRun] | None = None,
) -> list[RunResult]:
    """Every (configuration, sequence, seed), in that nesting order; runs go to
    out/runs/<config>/<sequence>/seed<N>. recorded (recorded_runs()): the back-end alone
    on those runs' bags; every (configuration, sequence) must have one."""
    if not sequences or not configs or not seeds:
        raise ValueError("the benchmark needs at least one sequence, configuration and seed")
    names = [c.name for c in configs]
    if len(set(names)) != len(names):
        raise ValueError(f"configurations must have different file names, got {names}")
    if recorded is not None:
        missing = [
            f"{c.name} on {s.name}"
            for c in configs
            for s in sequences
            if (c.name, s.name) not in recorded
        ]
        if missing:
            raise ValueError(f"no recorded run with a correspondences bag for {', '.join(missing)}")
    results = []
    for config in configs:
        for sequence in sequences:
            for seed in seeds:
                run_dir = out / "runs" / config.name / sequence.name / f"seed{seed}"
                source = None if recorded is None else recorded[(config.name, sequence.name)]
                result = run_one(sequence, config, seed, run_dir, env, source)
                results.append(result)
                if progress is not None:
                    progress(result)
    return results
