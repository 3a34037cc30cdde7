"""The replay report: per-configuration statistics, report.json, report.md and plots.

A RunRecorder per configuration is fed every FrameResult in order; the report
compares the configurations side by side. Plots use matplotlib's Agg backend.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from superglue_ros.pipeline.types import FrameResult
from superglue_ros.tools import evaluate, odometry_eval

STAGES = ("frontend", "matcher", "policy", "total")
PLOTS = {
    "matches": "matches_per_frame.png",
    "keyframes": "keyframe_timeline.png",
    "inliers": "inlier_ratio.png",
    "tracks": "track_length.png",
    "latency": "latency.png",
}


@dataclass
class FrameRecord:
    """What the report keeps of one processed frame."""

    frame_id: int
    stamp_ns: int
    is_keyframe: bool
    keyframe_reason: str
    keypoints: int
    keyframes_matched: int  # buffered keyframes the frame was matched against
    matches_newest: int  # matches to the newest buffered keyframe
    matches_all: int  # matches summed over every buffered keyframe
    inlier_ratio: float | None  # RANSAC inliers / matches to the newest keyframe
    timings_ms: dict[str, float]
    wall_ms: float  # process() call measured by the caller


class RunRecorder:
    """Statistics of one configuration's replay, fed one FrameResult at a time.

    camera_k: [3, 3] intrinsics of the images (essential-matrix inlier ratio) or
    None (fundamental matrix in pixels).
    """

    def __init__(
        self,
        name: str,
        description: str,
        params: Mapping[str, Any],
        camera_k: np.ndarray | None,
        output_bag: str,
    ) -> None:
        self.name = name
        self.description = description
        self.params = dict(params)
        self.camera_k = camera_k
        self.output_bag = output_bag
        self.frames: list[FrameRecord] = []
        self._keyframe_points: dict[int, np.ndarray] = {}
        self._track_lengths: Counter[int] = Counter()

    def add(self, result: FrameResult, wall_ms: float) -> None:
        """Record one frame (frames must come in processing order)."""
        keypoints = np.asarray(result.features.keypoints)
        ratio = None
        if result.matches:
            newest = result.matches[0]
            keyframe_points = self._keyframe_points.get(newest.keyframe_id)
            if keyframe_points is not None:
                ratio = evaluate.inlier_ratio(
                    keyframe_points[newest.keyframe_indices],
                    keypoints[newest.frame_indices],
                    self.camera_k,
                )
        for keyframe_id in result.evicted_keyframe_ids:
            self._keyframe_points.pop(int(keyframe_id), None)
        if result.is_keyframe:
            self._keyframe_points[result.frame_id] = keypoints
        self._track_lengths.update(np.unique(result.track_ids).tolist())
        self.frames.append(
            FrameRecord(
                frame_id=int(result.frame_id),
                stamp_ns=int(result.stamp_ns),
                is_keyframe=bool(result.is_keyframe),
                keyframe_reason=result.keyframe_reason,
                keypoints=len(keypoints),
                keyframes_matched=len(result.matches),
                matches_newest=len(result.matches[0].frame_indices) if result.matches else 0,
                matches_all=sum(len(m.frame_indices) for m in result.matches),
                inlier_ratio=ratio,
                timings_ms={k: float(v) for k, v in result.timings_ms.items()},
                wall_ms=wall_ms,
            )
        )

    def summary(self) -> dict[str, Any]:
        """Everything report.json holds for this configuration."""
        frames = self.frames
        matched = [f for f in frames if f.keyframes_matched > 0]
        lengths = list(self._track_lengths.values())
        wall_s = sum(f.wall_ms for f in frames) / 1e3
        ratios = [f.inlier_ratio for f in frames if f.inlier_ratio is not None]
        return {
            "name": self.name,
            "description": self.description,
            "params": self.params,
            "output_bag": self.output_bag,
            "frames": len(frames),
            "keyframes": sum(f.is_keyframe for f in frames),
            "keyframe_reasons": dict(
                Counter(reason_kind(f.keyframe_reason) for f in frames if f.is_keyframe)
            ),
            "keypoints_per_frame": evaluate.summary_stats([f.keypoints for f in frames]),
            # Frames without a buffered keyframe (the first one) are left out.
            "matches_per_frame": {
                "newest_keyframe": evaluate.summary_stats([f.matches_newest for f in matched]),
                "all_keyframes": evaluate.summary_stats([f.matches_all for f in matched]),
            },
            "inlier_ratio": {
                "method": "essential" if self.camera_k is not None else "fundamental",
                **evaluate.summary_stats(ratios),
            },
            "track_length": {
                "tracks": len(lengths),
                **evaluate.summary_stats(lengths),
                "histogram": {str(k): v for k, v in sorted(Counter(lengths).items())},
            },
            "latency_ms": {stage: latency_stats(frames, stage) for stage in STAGES},
            "fps": len(frames) / wall_s if wall_s > 0 else None,
            "per_frame": [asdict(f) for f in frames],
        }


def reason_kind(reason: str) -> str:
    """A keyframe reason without its numbers: "large parallax (52.2 px > 40 px)" -> the words."""
    return reason.split(" (", 1)[0]


def latency_stats(frames: Sequence[FrameRecord], stage: str) -> dict[str, float | None]:
    """median / p90 / max milliseconds of one stage."""
    values = [f.timings_ms[stage] for f in frames if stage in f.timings_ms]
    if not values:
        return {"median": None, "p90": None, "max": None}
    return {
        "median": float(np.median(values)),
        "p90": float(np.percentile(values, 90)),
        "max": float(np.max(values)),
    }


def write_report(report: Mapping[str, Any], out_dir: Path) -> None:
    """report.json, plots/*.png and report.md into out_dir."""
    (out_dir / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    plot_dir = out_dir / "plots"
    plot_dir.mkdir(exist_ok=True)
    write_plots(report["configs"], plot_dir)
    (out_dir / "report.md").write_text(markdown(report))


def _fmt(value: float | int | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def summary_rows(configs: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[str]]]:
    """(metric, one cell per configuration) rows of the side-by-side table."""
    rows: list[tuple[str, list[str]]] = [
        ("pipeline", [c["description"] for c in configs]),
        ("frames", [str(c["frames"]) for c in configs]),
        ("keyframes", [str(c["keyframes"]) for c in configs]),
        (
            "keypoints / frame (median)",
            [_fmt(c["keypoints_per_frame"]["median"], 0) for c in configs],
        ),
    ]
    for key, label in (("newest_keyframe", "newest keyframe"), ("all_keyframes", "all keyframes")):
        cells = []
        for c in configs:
            stats = c["matches_per_frame"][key]
            cells.append(f"{_fmt(stats['median'], 0)} (p10 {_fmt(stats['p10'], 0)})")
        rows.append((f"matches to {label}, median (p10)", cells))
    rows.append(
        (
            "RANSAC inlier ratio vs newest keyframe, median (p10)",
            [
                f"{_fmt(c['inlier_ratio']['median'], 3)} (p10 {_fmt(c['inlier_ratio']['p10'], 3)})"
                f" [{c['inlier_ratio']['method']}]"
                for c in configs
            ],
        )
    )
    rows.append(
        (
            "track length, mean / max (tracks)",
            [
                f"{_fmt(c['track_length']['mean'], 2)} / {_fmt(c['track_length']['max'], 0)} "
                f"({c['track_length']['tracks']})"
                for c in configs
            ],
        )
    )
    for stage in STAGES:
        cells = [
            f"{_fmt(c['latency_ms'][stage]['median'])} / {_fmt(c['latency_ms'][stage]['p90'])} / "
            f"{_fmt(c['latency_ms'][stage]['max'])}"
            for c in configs
        ]
        rows.append((f"{stage} ms, median / p90 / max", cells))
    rows.append(("FPS (process() only)", [_fmt(c["fps"], 2) for c in configs]))
    return rows


def markdown_table(configs: Sequence[Mapping[str, Any]]) -> str:
    """The side-by-side summary as a Markdown table, one column per configuration."""
    lines = [
        "| metric | " + " | ".join(c["name"] for c in configs) + " |",
        "| --- |" + " --- |" * len(configs),
    ]
    lines += [
        f"| {metric} | " + " | ".join(cells) + " |" for metric, cells in summary_rows(configs)
    ]
    return "\n".join(lines)


def markdown(report: Mapping[str, Any]) -> str:
    """report.md: what was replayed, the summary table, the plots and each configuration."""
    configs = report["configs"]
    intrinsics = "from CameraInfo" if report["intrinsics"] is not None else "unknown"
    lines = [
        "# Replay report",
        "",
        f"- bag: `{report['bag']}`",
        f"- images: `{report['image_topic']}` ({report['image_type']}), "
        f"{report['frames_read']} of {report['frames_in_bag']} read",
        f"- camera info: `{report['camera_info_topic']}`, intrinsics {intrinsics}",
        f"- skipped (undecodable) frames: {len(report['skipped_frames'])}",
    ]
    if report["interrupted"]:
        lines.append(
            "- **interrupted**: the replay was stopped early; the numbers cover the frames "
            "processed before that."
        )
    lines += ["", "## Summary", "", markdown_table(configs), "", "## Plots", ""]
    titles = {
        "matches": "Matches per frame (solid: newest keyframe, dashed: all keyframes)",
        "keyframes": "Keyframe timeline",
        "inliers": "RANSAC inlier ratio vs the newest keyframe",
        "tracks": "Track length histogram",
        "latency": "Latency per stage (median, bars to p90)",
    }
    for key, title in titles.items():
        lines += [f"### {title}", "", f"![{title}](plots/{PLOTS[key]})", ""]
    lines += odometry_eval.markdown_section(configs)
    lines += ["## Configurations", ""]
    for c in configs:
        params = "\n".join(f"{k}: {v}" for k, v in sorted(c["params"].items()))
        lines += [
            f"### {c['name']}",
            "",
            f"{c['description']}; output bag `{c['output_bag']}`",
            "",
            "```yaml",
            params,
            "```",
            "",
        ]
    return "\n".join(lines)


def write_plots(configs: Sequence[Mapping[str, Any]], plot_dir: Path) -> None:
    """One PNG per plot in PLOTS, every configuration in each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def save(fig: Any, key: str) -> None:
        fig.tight_layout()
        fig.savefig(plot_dir / PLOTS[key], dpi=100)
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4))
    for i, c in enumerate(configs):
        frames = c["per_frame"]
        x = [f["frame_id"] for f in frames]
        color = colors[i % len(colors)]
        ax.plot(x, [f["matches_newest"] for f in frames], "-", color=color, label=c["name"])
        ax.plot(x, [f["matches_all"] for f in frames], "--", color=color)
        keyframes = [f for f in frames if f["is_keyframe"]]
        ax.plot(
            [f["frame_id"] for f in keyframes],
            [f["matches_newest"] for f in keyframes],
            "o",
            color=color,
        )
    ax.set(xlabel="frame id (o: keyframe)", ylabel="matches")
    ax.legend()
    save(fig, "matches")

    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.5 * len(configs)))
    start = min((c["per_frame"][0]["stamp_ns"] for c in configs if c["per_frame"]), default=0)
    for i, c in enumerate(configs):
        times = [(f["stamp_ns"] - start) / 1e9 for f in c["per_frame"]]
        key_times = [(f["stamp_ns"] - start) / 1e9 for f in c["per_frame"] if f["is_keyframe"]]
        ax.plot(times, [i] * len(times), "|", color="0.7")
        ax.plot(key_times, [i] * len(key_times), "D", color=colors[i % len(colors)])
    ax.set_yticks(range(len(configs)), [c["name"] for c in configs])
    ax.set(xlabel="time since first frame (s); diamonds: keyframes, ticks: frames")
    ax.set_ylim(-0.5, len(configs) - 0.5)
    save(fig, "keyframes")

    fig, ax = plt.subplots(figsize=(8, 4))
    for i, c in enumerate(configs):
        points = [(f["frame_id"], f["inlier_ratio"]) for f in c["per_frame"]]
        points = [p for p in points if p[1] is not None]
        if points:
            x, y = zip(*points, strict=True)
            ax.plot(x, y, ".-", color=colors[i % len(colors)], label=c["name"])
    ax.set(xlabel="frame id", ylabel="inlier ratio", ylim=(0, 1.05))
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    save(fig, "inliers")

    fig, ax = plt.subplots(figsize=(8, 4))
    longest = max((c["track_length"]["max"] or 1 for c in configs), default=1)
    bins = np.arange(1, int(longest) + 2) - 0.5
    for i, c in enumerate(configs):
        histogram = {int(k): v for k, v in c["track_length"]["histogram"].items()}
        lengths = list(histogram)
        ax.hist(
            lengths,
            bins=bins,
            weights=[histogram[k] for k in lengths],
            histtype="step",
            linewidth=2,
            color=colors[i % len(colors)],
            label=c["name"],
        )
    ax.set(xlabel="track length (frames)", ylabel="tracks")
    if any(c["track_length"]["tracks"] for c in configs):
        ax.set_yscale("log")
    ax.legend()
    save(fig, "tracks")

    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(len(configs), 1)
    for i, c in enumerate(configs):
        medians = [c["latency_ms"][s]["median"] or 0.0 for s in STAGES]
        p90s = [c["latency_ms"][s]["p90"] or 0.0 for s in STAGES]
        x = np.arange(len(STAGES)) + i * width
        errors = [
            [0.0] * len(STAGES),
            [max(p - m, 0.0) for p, m in zip(p90s, medians, strict=True)],
        ]
        ax.bar(x, medians, width, yerr=errors, color=colors[i % len(colors)], label=c["name"])
    ax.set_xticks(np.arange(len(STAGES)) + width * (len(configs) - 1) / 2, STAGES)
    ax.set(ylabel="ms")
    ax.legend()
    save(fig, "latency")
