"""Benchmark configurations x sequences x seeds on sequences with ground truth.

Each --sequences entry is ``[NAME=]PATH[?OPTIONS]``: a bag with a
``groundtruth.tum`` in it (``bag from-dataset``) or beside it (``generate
room``), or a dataset folder (KITTI, 7-Scenes, TUM RGB-D, EuRoC) imported
first into ``DIR/sequences/NAME``
with OPTIONS ``first=I``, ``last=J``, ``every=N``, ``intrinsics=FX,FY,CX,CY``
joined by ``&`` (quote the argument), as ``bag from-dataset`` takes them.

Every (configuration, sequence, seed) is one ``replay --odometry --groundtruth
--seed N`` in a fresh child process (its peak RSS is its own). DIR receives
benchmark.md and benchmark.json (one row per configuration and sequence: ATE
after Sim(3) alignment, in cm and in % of the path, RPE per frame, % of frames
posed, maps started, initialisation frame, median ms per frame of each pipeline
stage, back-end ms per frame, peak RSS; mean ± sample std over the seeds) and
runs/<config>/<sequence>/seed<N>/ (each replay's own outputs and log).

--from-correspondences PREVIOUS... reuses earlier benchmarks' front-end runs: each
run is then the back-end alone (``replay --odometry``) on the correspondences bag
PREVIOUS recorded for that configuration and sequence, with PREVIOUS's stage times
and peak RSS; configurations default to PREVIOUS's (--params picks among them by
file stem). Back-end seeds and changes then cost seconds even for the learned
front-ends, whose frames take seconds each on a CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from superglue_ros.tools.common import CliError

IMPORT_OPTIONS = ("first", "last", "every", "intrinsics")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sequences", nargs="+", required=True, metavar="SEQ", help="[NAME=]PATH[?OPTIONS]"
    )
    parser.add_argument(
        "--params", type=Path, nargs="+", metavar="FILE",
        help="pipeline parameter files, one configuration each (e.g. config/eval/*.yaml); "
        "required unless --from-correspondences gives them",
    )  # fmt: skip
    parser.add_argument(
        "--from-correspondences", type=Path, nargs="+", metavar="PREVIOUS",
        help="earlier benchmarks' --out folders: run only the back-end, on their recorded "
        "correspondences bags",
    )  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="N")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="new output folder")
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="OMP_NUM_THREADS (and MKL's, OpenBLAS's) of the runs; default: inherited",
    )
    parser.add_argument(
        "--hardware", default="", metavar="TEXT", help="the machine, for the table's header"
    )


def parse_sequence(spec: str) -> tuple[str, Path, dict[str, Any]]:
    """``[NAME=]PATH[?OPTIONS]`` -> (name, path, import options)."""
    name, _, rest = spec.partition("=") if "=" in spec.split("?", 1)[0] else ("", "", spec)
    location, _, query = rest.partition("?")
    path = Path(location)
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)):
        if key not in IMPORT_OPTIONS:
            raise CliError(f"--sequences {spec}: unknown option {key!r}; use {IMPORT_OPTIONS}")
        if key == "intrinsics":
            from superglue_ros.tools.bag import parse_intrinsics

            try:
                options[key] = parse_intrinsics(value)
            except (argparse.ArgumentTypeError, ValueError) as error:
                raise CliError(f"--sequences {spec}: {error}") from error
        else:
            try:
                options[key] = int(value)
            except ValueError as error:
                raise CliError(f"--sequences {spec}: {key} must be an integer") from error
    return name or path.name, path, options


def resolve_sequence(spec: str, out: Path) -> Any:
    """An evaluation.Sequence: the bag as it is, or the dataset imported under out."""
    from superglue_ros.evaluation.benchmark import Sequence
    from superglue_ros.tools.bag import GROUNDTRUTH_FILE, import_dataset

    name, path, options = parse_sequence(spec)
    if not path.exists():
        raise CliError(f"--sequences {spec}: {path} does not exist")
    is_bag = path.is_file() or (path / "metadata.yaml").is_file()
    if is_bag:
        if options:
            raise CliError(f"--sequences {spec}: options apply to dataset folders, not bags")
        # bag from-dataset writes it into the bag folder, generate room beside it
        folder = path.parent if path.is_file() else path
        candidates = [folder / GROUNDTRUTH_FILE, folder.parent / GROUNDTRUTH_FILE]
        groundtruth = next((c for c in candidates if c.is_file()), None)
        if groundtruth is None:
            raise CliError(f"--sequences {spec}: no ground truth {candidates[0]} (or beside it)")
        return Sequence(name, path, groundtruth)
    bag = out / "sequences" / name
    bag.parent.mkdir(parents=True, exist_ok=True)
    dataset, _ = import_dataset(path, bag, **options)
    print(f"benchmark: imported {len(dataset.frames)} frames of {path} into {bag}", file=sys.stderr)
    return Sequence(name, bag, bag / GROUNDTRUTH_FILE)


def run(args: argparse.Namespace) -> int:
    from superglue_ros.evaluation import benchmark, table
    from superglue_ros.tools.replay import prepare_output

    configs, recorded = chosen_configs(args)
    prepare_output(args.out)
    sequences = [resolve_sequence(spec, args.out) for spec in args.sequences]
    names = [s.name for s in sequences]
    if len(set(names)) != len(names):
        raise CliError(f"sequence names must differ, got {names}; name them NAME=PATH")
    env = dict(os.environ)
    if args.threads is not None:
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[variable] = str(args.threads)
    total = len(sequences) * len(configs) * len(args.seeds)

    def progress(result: Any) -> None:
        ate = result.metrics.get("ate_rmse_m")
        text = f"ATE {100 * ate:.2f} cm" if ate is not None else f"no ATE ({result.error})"
        print(
            f"benchmark: {result.config} on {result.sequence}, seed {result.seed}: {text}, "
            f"{result.wall_s:.0f} s, peak RSS {result.peak_rss_mb:.0f} MB",
            file=sys.stderr,
        )

    print(f"benchmark: {total} runs", file=sys.stderr)
    try:
        results = benchmark.run_benchmark(
            sequences, configs, args.seeds, args.out, env, progress, recorded
        )
    except ValueError as error:  # checked before any run
        raise CliError(f"benchmark: {error}") from error
    lengths = {s.name: s.path_length_m() for s in sequences}
    header = [
        "# Benchmark: replay --odometry on sequences with ground truth",
        "",
        f"Seeds: {' '.join(str(s) for s in args.seeds)}; mean ± sample std over the seeds. "
        "ATE: RMSE after a Sim(3) alignment. Times: median ms per frame per pipeline stage, "
        "back-end mean ms per frame.",
    ]
    if args.hardware:
        header.append(f"Hardware: {args.hardware}.")
    if recorded is not None:
        header.append(
            "Back-end only, on the correspondences recorded by "
            f"{' '.join(map(str, args.from_correspondences))}: "
            "front-end and matcher times and peak RSS are that benchmark's."
        )
    meta = {
        "hardware": args.hardware,
        "seeds": args.seeds,
        "threads": args.threads,
        "from_correspondences": [str(p) for p in args.from_correspondences or []],
        "sequences": [
            {"name": s.name, "bag": str(s.bag), "groundtruth": str(s.groundtruth)}
            for s in sequences
        ],
        "configs": [{"name": c.name, "params": str(c.params)} for c in configs],
    }
    table.write_table(results, lengths, args.out, header, meta)
    print(f"benchmark: table in {args.out / 'benchmark.md'}", file=sys.stderr)
    return 0


def chosen_configs(args: argparse.Namespace) -> tuple[list[Any], dict[Any, Any] | None]:
    """(configurations, recorded runs or None): --params, or --from-correspondences'."""
    from superglue_ros.evaluation import benchmark

    if args.from_correspondences is not None:
        return reused_configs(args.from_correspondences, args.params)
    if not args.params:
        raise CliError("--params is required (or --from-correspondences PREVIOUS)")
    for params in args.params:
        if not params.is_file():
            raise CliError(f"--params {params} does not exist")
    return [benchmark.Config(p) for p in args.params], None


def reused_configs(
    previous: list[Path], params: list[Path] | None
) -> tuple[list[Any], dict[Any, Any]]:
    """(configurations, recorded runs) of earlier benchmark folders (the first folder
    that ran a configuration on a sequence gives its run); params picks configurations
    by file stem."""
    import json

    from superglue_ros.evaluation import benchmark

    configs: dict[str, Any] = {}
    recorded: dict[Any, Any] = {}
    for folder in previous:
        try:
            runs = benchmark.recorded_runs(folder)
            listed = json.loads((folder / "benchmark.json").read_text()).get("configs", [])
        except ValueError as error:
            raise CliError(f"--from-correspondences: {error}") from error
        for config in listed:
            configs.setdefault(
                Path(config["params"]).stem, benchmark.Config(Path(config["params"]))
            )
        for key, run in runs.items():
            recorded.setdefault(key, run)
    if params:
        unknown = [p for p in params if p.stem not in configs]
        if unknown:
            names = ", ".join(configs) or "none"
            raise CliError(
                f"--params {' '.join(map(str, unknown))}: not among the recorded "
                f"configurations ({names})"
            )
        return [configs[p.stem] for p in params], recorded
    return list(configs.values()), recorded
