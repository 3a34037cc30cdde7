"""The benchmark table: one row per (configuration, sequence), mean ± std over seeds.

Standard deviations are the sample ones (n - 1) over the seeds whose run gave
the metric; a cell with fewer than two values shows the value alone. Times are
per frame: the pipeline stages' medians as replay reports them, the back-end's
mean; peak RSS is the largest of the seeds' runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .benchmark import RunResult

MARKDOWN_FILE = "benchmark.md"
JSON_FILE = "benchmark.json"
# (summary key, metrics key, scale): the metrics aggregated as mean and std
AGGREGATED = (
    ("ate_cm", "ate_rmse_m", 100.0),
    ("rpe_translation_cm", "rpe_translation_rmse_m", 100.0),
    ("rpe_rotation_deg", "rpe_rotation_rmse_deg", 1.0),
    ("posed_percent", "pose_fraction", 100.0),
    ("maps", "maps_started", 1.0),
    ("frontend_ms", "frontend_ms", 1.0),
    ("matcher_ms", "matcher_ms", 1.0),
    ("pipeline_ms", "total_ms", 1.0),
    ("backend_ms", "backend_ms_per_frame", 1.0),
)


def mean_std(values: Sequence[float]) -> dict[str, float | int | None]:
    """mean, sample std (None below two values) and count of the finite values."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"mean": None, "std": None, "n": 0}
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else None
    return {"mean": float(np.mean(finite)), "std": std, "n": len(finite)}


def summarise(
    results: Sequence[RunResult], path_lengths_m: Mapping[str, float]
) -> list[dict[str, Any]]:
    """One summary per (configuration, sequence), in the order the runs came."""
    groups: dict[tuple[str, str], list[RunResult]] = {}
    for result in results:
        groups.setdefault((result.config, result.sequence), []).append(result)
    rows = []
    for (config, sequence), runs in groups.items():
        metrics = [r.metrics for r in runs]
        row: dict[str, Any] = {
            "config": config,
            "sequence": sequence,
            "seeds": [r.seed for r in runs],
            "runs_with_accuracy": sum(not r.error for r in runs),
            "frames": metrics[0].get("frames"),
            "path_m": path_lengths_m.get(sequence),
        }
        for key, source, scale in AGGREGATED:
            row[key] = mean_std([m[source] * scale for m in metrics if m.get(source) is not None])
        length = path_lengths_m.get(sequence)
        ates = [m["ate_rmse_m"] for m in metrics if m.get("ate_rmse_m") is not None]
        row["ate_percent_of_path"] = mean_std([100 * a / length for a in ates] if length else [])
        row["init_frames"] = [m.get("init_frame") for m in metrics]
        row["peak_rss_mb"] = max(r.peak_rss_mb for r in runs)
        row["seeds_identical"] = len(set(ates)) == 1 and len(ates) == len(runs) > 1
        row["errors"] = sorted({r.error for r in runs if r.error})
        rows.append(row)
    return rows


def _cell(stat: Mapping[str, Any], digits: int) -> str:
    if stat["mean"] is None:
        return "n/a"
    text = f"{stat['mean']:.{digits}f}"
    return text if stat["std"] is None else f"{text} ± {stat['std']:.{digits}f}"


def _init(frames: Sequence[int | None]) -> str:
    distinct = sorted({f for f in frames if f is not None})
    never = "never" if any(f is None for f in frames) else ""
    return " / ".join([str(f) for f in distinct] + ([never] if never else [])) or "never"


COLUMNS = (
    "sequence", "config", "ATE cm", "ATE % of path", "RPE cm / frame", "RPE deg / frame",
    "% posed", "maps", "init frame", "front-end ms", "matcher ms", "pipeline ms",
    "back-end ms", "peak RSS MB", "runs with ATE",
)  # fmt: skip


def markdown(rows: Sequence[Mapping[str, Any]], header: Sequence[str] = ()) -> str:
    """The table as markdown, with header lines above it and the runs' errors below."""
    lines = [*header, "", "| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for row in rows:
        cells = [
            f"{row['sequence']} ({row['frames']} frames, {row['path_m']:.2f} m)"
            if row["path_m"] is not None
            else row["sequence"],
            row["config"],
            _cell(row["ate_cm"], 2),
            _cell(row["ate_percent_of_path"], 2),
            _cell(row["rpe_translation_cm"], 2),
            _cell(row["rpe_rotation_deg"], 3),
            _cell(row["posed_percent"], 0),
            _cell(row["maps"], 1),
            _init(row["init_frames"]),
            _cell(row["frontend_ms"], 0),
            _cell(row["matcher_ms"], 0),
            _cell(row["pipeline_ms"], 0),
            _cell(row["backend_ms"], 0),
            f"{row['peak_rss_mb']:.0f}",
            f"{row['runs_with_accuracy']} / {len(row['seeds'])}",
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines.append("")
    for row in rows:
        if row["seeds_identical"]:
            lines.append(
                f"- {row['config']} on {row['sequence']}: every seed gave the same ATE "
                "(the seed changed nothing in this run)"
            )
        for error in row["errors"]:
            lines.append(f"- {row['config']} on {row['sequence']}: {error}")
    return "\n".join(lines) + "\n"


def write_table(
    results: Sequence[RunResult],
    path_lengths_m: Mapping[str, float],
    out: Path,
    header: Sequence[str] = (),
    meta: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Write out/benchmark.md and out/benchmark.json (summary rows and every run)."""
    rows = summarise(results, path_lengths_m)
    document = {
        **(meta or {}),
        "summary": rows,
        "runs": [r.to_json() for r in results],
    }
    (out / JSON_FILE).write_text(json.dumps(document, indent=2) + "\n")
    (out / MARKDOWN_FILE).write_text(markdown(rows, header))
    return rows
