"""The replay report: per-configuration statistics, report.json, report.md and plots.

A RunRecorder per configuration is fed every FrameResult in order; the report
compares the configurations side by side. Plots use matplotlib's Agg backend.

Memory does not grow with the bag's length: per-frame records go to a JSON
Lines file as they come, statistics are histograms (bounded by the range of the
values, not their number), and a track's length is moved into the track-length
histogram as soon as the track can no longer be extended, i.e. once no buffered
keyframe holds its id (ids are inherited only from buffered keyframes and never
reused).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from superglue_ros.evaluation import metrics, trajectory
from superglue_ros.pipeline.types import FrameResult

STAGES = ("frontend", "matcher", "policy", "total")
PLOTS = {
    "matches": "matches_per_frame.png",
    "keyframes": "keyframe_timeline.png",
    "inliers": "inlier_ratio.png",
    "tracks": "track_length.png",
    "latency": "latency.png",
}
PER_FRAME_FILE = "frames.jsonl"
LATENCY_RESOLUTION_MS = 0.01
HOMOGRAPHY_THRESHOLD_PX = 3.0  # a match is correct within this distance of the ground truth
RATIO_RESOLUTION = 1e-4


@dataclass
class FrameRecord:
    """What the report keeps of one processed frame (one line of frames.jsonl)."""

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
    matcher_layers: list[int]  # per buffered keyframe, newest first (LightGlue); [] otherwise
    homography_matches: int | None = None  # matches scored against ground truth (all keyframes)
    homography_correct: int | None = None  # of which within HOMOGRAPHY_THRESHOLD_PX
    first_frame_matches: int | None = None  # the same, only the pair with the first frame
    first_frame_correct: int | None = None


class Histogram:
    """Counts of values rounded to a resolution (1 for integers).

    Its statistics equal metrics.summary_stats of the values themselves for
    integer data, and to within the resolution for other data; its size grows
    with the number of distinct rounded values, never with the number of values.
    """

    def __init__(self, resolution: float = 1.0) -> None:
        self.resolution = resolution
        self.counts: Counter[int] = Counter()

    def add(self, value: float) -> None:
        if math.isfinite(value):
            self.counts[round(value / self.resolution)] += 1

    def add_counts(self, values: Iterable[int], counts: Iterable[int]) -> None:
        """Add integer values with multiplicities (values in units of the resolution)."""
        for value, count in zip(values, counts, strict=True):
            self.counts[int(value)] += int(count)

    def __len__(self) -> int:
        return sum(self.counts.values())

    def merged(self, other: Histogram) -> Histogram:
        out = Histogram(self.resolution)
        out.counts = self.counts + other.counts
        return out

    def stats(self) -> dict[str, float | int | None]:
        """count, mean, median, p10, p90, min, max like metrics.summary_stats."""
        total = len(self)
        if total == 0:
            return metrics.summary_stats([])
        keys = np.array(sorted(self.counts), dtype=np.float64)
        weights = np.array([self.counts[int(k)] for k in keys], dtype=np.float64)
        ends = np.cumsum(weights)  # the sorted values up to index ends[i] - 1 equal keys[i]

        def nth(index: int) -> float:
            return float(keys[np.searchsorted(ends, index, side="right")])

        def percentile(q: float) -> float:  # numpy's default (linear) method
            position = q / 100.0 * (total - 1)
            low = math.floor(position)
            value = nth(low)
            if position > low:
                value += (position - low) * (nth(low + 1) - value)
            return value * self.resolution

        return {
            "count": int(total),
            "mean": float(np.dot(keys, weights) / total * self.resolution),
            "median": percentile(50),
            "p10": percentile(10),
            "p90": percentile(90),
            "min": float(keys[0] * self.resolution),
            "max": float(keys[-1] * self.resolution),
        }


class TrackLengths:
    """Frames per track id, in memory bounded by the ids the keyframe buffer holds.

    A track is still open while a buffered keyframe holds its id; once the last
    such keyframe is evicted (or the frame that saw it was no keyframe), its
    length is final and only its histogram bin is kept.
    """

    def __init__(self) -> None:
        self.final = Histogram()
        self.open_ids = np.zeros(0, dtype=np.int64)  # sorted
        self.open_lengths = np.zeros(0, dtype=np.int64)
        self._keyframe_ids: dict[int, np.ndarray] = {}  # keyframe id -> its unique track ids

    def add(self, result: FrameResult) -> None:
        """Count the frame's track ids, then follow its keyframe buffer update."""
        seen = np.unique(np.asarray(result.track_ids, dtype=np.int64))
        ids = np.union1d(self.open_ids, seen)
        lengths = np.zeros(ids.size, dtype=np.int64)
        lengths[np.searchsorted(ids, self.open_ids)] = self.open_lengths
        lengths[np.searchsorted(ids, seen)] += 1
        for keyframe_id in result.evicted_keyframe_ids:
            self._keyframe_ids.pop(int(keyframe_id), None)
        if result.is_keyframe:
            self._keyframe_ids[int(result.frame_id)] = seen
        buffered = list(self._keyframe_ids.values())
        still_open = np.isin(ids, np.concatenate(buffered) if buffered else [])
        closed, counts = np.unique(lengths[~still_open], return_counts=True)
        self.final.add_counts(closed.tolist(), counts.tolist())
        self.open_ids, self.open_lengths = ids[still_open], lengths[still_open]

    def histogram(self) -> Histogram:
        """Every track's length so far: the final ones and the open ones."""
        current = Histogram()
        values, counts = np.unique(self.open_lengths, return_counts=True)
        current.add_counts(values.tolist(), counts.tolist())
        return self.final.merged(current)


class RunRecorder:
    """Statistics of one configuration's replay, fed one FrameResult at a time.

    camera_k: [3, 3] intrinsics of the images (essential-matrix inlier ratio) or
    None (fundamental matrix in pixels). frames_path: the JSON Lines file each
    frame's FrameRecord is appended to (None: not kept).
    """

    def __init__(
        self,
        name: str,
        description: str,
        params: Mapping[str, Any],
        camera_k: np.ndarray | None,
        output_bag: str,
        frames_path: Path | None = None,
        per_frame_file: str | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self.params = dict(params)
        self.camera_k = camera_k
        self.output_bag = output_bag
        self.per_frame_file = per_frame_file
        self.frames = 0
        self.keyframes = 0
        self.wall_ms = 0.0
        self.keyframe_reasons: Counter[str] = Counter()
        self.keypoints = Histogram()
        self.matches_newest = Histogram()
        self.matches_all = Histogram()
        self.inlier_ratios = Histogram(RATIO_RESOLUTION)
        self.latency = {stage: Histogram(LATENCY_RESOLUTION_MS) for stage in STAGES}
        self.tracks = TrackLengths()
        self.matcher_layers = Histogram()
        # {stamp_ns: [3, 3] H from a reference frame}: ground truth of a homography bag.
        self.homographies: Mapping[int, np.ndarray] | None = None
        self.homography = Counter()  # matches, correct, first_matches, first_correct, frames
        self.correct_per_frame = Histogram()
        self._first_frame_id: int | None = None
        self._keyframe_points: dict[int, np.ndarray] = {}
        self._frames_file: IO[str] | None = (
            frames_path.open("w", encoding="utf-8") if frames_path is not None else None
        )

    def add(self, result: FrameResult, wall_ms: float) -> None:
        """Record one frame (frames must come in processing order)."""
        keypoints = np.asarray(result.features.keypoints)
        ratio = None
        if result.matches:
            newest = result.matches[0]
            keyframe_points = self._keyframe_points.get(newest.keyframe_id)
            if keyframe_points is not None:
                ratio = metrics.inlier_ratio(
                    keyframe_points[newest.keyframe_indices],
                    keypoints[newest.frame_indices],
                    self.camera_k,
                )
        if self._first_frame_id is None:
            self._first_frame_id = int(result.frame_id)
        scored = self._score_homographies(result, keypoints)
        for keyframe_id in result.evicted_keyframe_ids:
            self._keyframe_points.pop(int(keyframe_id), None)
        if result.is_keyframe:
            self._keyframe_points[result.frame_id] = keypoints
        self.tracks.add(result)
        record = FrameRecord(
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
            matcher_layers=[int(m.layers) for m in result.matches if m.layers > 0],
            homography_matches=scored[0] if scored else None,
            homography_correct=scored[1] if scored else None,
            first_frame_matches=scored[2] if scored else None,
            first_frame_correct=scored[3] if scored else None,
        )
        self._count(record)
        if self._frames_file is not None:
            self._frames_file.write(json.dumps(asdict(record)) + "\n")
            self._frames_file.flush()

    def _score_homographies(
        self, result: FrameResult, keypoints: np.ndarray
    ) -> tuple[int, int, int, int] | None:
        """(matches, correct) over every keyframe pair of the frame, then the same for the
        pair with the first frame (0, 0 when it is not buffered); None without ground truth."""
        if self.homographies is None:
            return None
        frame_h = self.homographies.get(int(result.stamp_ns))
        if frame_h is None:
            return None
        total = correct = first_total = first_correct = 0
        for match in result.matches:
            keyframe_h = self.homographies.get(int(match.keyframe_stamp_ns))
            keyframe_points = self._keyframe_points.get(match.keyframe_id)
            if keyframe_h is None or keyframe_points is None:
                continue
            errors = metrics.homography_errors(
                keyframe_points[match.keyframe_indices],
                keypoints[match.frame_indices],
                keyframe_h,
                frame_h,
            )
            good = int((errors <= HOMOGRAPHY_THRESHOLD_PX).sum())
            total, correct = total + len(errors), correct + good
            if match.keyframe_id == self._first_frame_id:
                first_total, first_correct = len(errors), good
        return total, correct, first_total, first_correct

    def _count(self, record: FrameRecord) -> None:
        self.frames += 1
        self.wall_ms += record.wall_ms
        self.keypoints.add(record.keypoints)
        if record.is_keyframe:
            self.keyframes += 1
            self.keyframe_reasons[reason_kind(record.keyframe_reason)] += 1
        # Frames without a buffered keyframe (the first one) are left out.
        if record.keyframes_matched > 0:
            self.matches_newest.add(record.matches_newest)
            self.matches_all.add(record.matches_all)
        if record.inlier_ratio is not None:
            self.inlier_ratios.add(record.inlier_ratio)
        for stage, histogram in self.latency.items():
            if stage in record.timings_ms:
                histogram.add(record.timings_ms[stage])
        for layers in record.matcher_layers:
            self.matcher_layers.add(layers)
        if record.homography_matches is not None:
            self.homography.update(
                frames=1,
                matches=record.homography_matches,
                correct=record.homography_correct or 0,
                first_matches=record.first_frame_matches or 0,
                first_correct=record.first_frame_correct or 0,
            )
            if record.keyframes_matched > 0:
                self.correct_per_frame.add(record.homography_correct or 0)

    def close(self) -> None:
        """Close the per-frame file (the summary stays available)."""
        if self._frames_file is not None:
            self._frames_file.close()
            self._frames_file = None

    def summary(self) -> dict[str, Any]:
        """Everything report.json holds for this configuration."""
        lengths = self.tracks.histogram()
        wall_s = self.wall_ms / 1e3
        return {
            "name": self.name,
            "description": self.description,
            "params": self.params,
            "output_bag": self.output_bag,
            "frames": self.frames,
            "keyframes": self.keyframes,
            "keyframe_reasons": dict(self.keyframe_reasons),
            "keypoints_per_frame": self.keypoints.stats(),
            "matches_per_frame": {
                "newest_keyframe": self.matches_newest.stats(),
                "all_keyframes": self.matches_all.stats(),
            },
            "inlier_ratio": {
                "method": "essential" if self.camera_k is not None else "fundamental",
                **self.inlier_ratios.stats(),
            },
            "track_length": {
                "tracks": len(lengths),
                **lengths.stats(),
                "histogram": {str(k): v for k, v in sorted(lengths.counts.items())},
            },
            "homography": self.homography_summary(),
            # Transformer layers per frame-keyframe pair (LightGlue's early exit).
            "matcher_layers": self.matcher_layers.stats(),
            "latency_ms": {stage: latency_stats(h) for stage, h in self.latency.items()},
            "fps": self.frames / wall_s if wall_s > 0 else None,
            "per_frame_file": self.per_frame_file,
        }

    def homography_summary(self) -> dict[str, Any] | None:
        """Precision at HOMOGRAPHY_THRESHOLD_PX and correct matches; None without ground truth."""
        h = self.homography
        if not h["frames"]:
            return None
        return {
            "threshold_px": HOMOGRAPHY_THRESHOLD_PX,
            "frames_scored": h["frames"],
            # every frame-keyframe pair
            "matches": h["matches"],
            "correct": h["correct"],
            "precision": h["correct"] / h["matches"] if h["matches"] else None,
            "correct_per_frame": self.correct_per_frame.stats(),
            # only the pairs of each frame with the first frame (while it is buffered)
            "first_frame": {
                "matches": h["first_matches"],
                "correct": h["first_correct"],
                "precision": h["first_correct"] / h["first_matches"]
                if h["first_matches"]
                else None,
            },
        }


def reason_kind(reason: str) -> str:
    """A keyframe reason without its numbers: "large parallax (52.2 px > 40 px)" -> the words."""
    return reason.split(" (", 1)[0]


def latency_stats(histogram: Histogram) -> dict[str, float | None]:
    """median / p90 / max milliseconds of one stage."""
    stats = histogram.stats()
    return {key: stats[key] for key in ("median", "p90", "max")}


PLOT_COLUMNS = ("frame_id", "stamp_ns", "is_keyframe", "matches_newest", "matches_all")


def read_per_frame(path: Path) -> dict[str, np.ndarray]:
    """The columns the plots need from a frames.jsonl file (see read_per_frame_lines)."""
    with path.open(encoding="utf-8") as lines:
        return read_per_frame_lines(lines)


def read_per_frame_lines(lines: Iterable[str]) -> dict[str, np.ndarray]:
    """[F] columns of PLOT_COLUMNS (stamp_ns int64, the others float64) and inlier_ratio
    (NaN: none) from JSON lines."""
    columns: dict[str, list[Any]] = {key: [] for key in (*PLOT_COLUMNS, "inlier_ratio")}
    for line in lines:
        record = json.loads(line)
        for key, values in columns.items():
            value = record[key]
            values.append(math.nan if value is None else value)
    return {
        key: np.asarray(values, dtype=np.int64 if key == "stamp_ns" else np.float64)
        for key, values in columns.items()
    }


def write_report(report: Mapping[str, Any], out_dir: Path) -> None:
    """report.json, plots/*.png and report.md into out_dir."""
    (out_dir / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    plot_dir = out_dir / "plots"
    plot_dir.mkdir(exist_ok=True)
    write_plots(report["configs"], plot_dir, out_dir)
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
    if any(c.get("homography") for c in configs):
        for key, label in (
            (None, f"homography ground truth: precision @{HOMOGRAPHY_THRESHOLD_PX:g} px"),
            ("first_frame", "the same, pairs with the first frame only"),
        ):
            cells = []
            for c in configs:
                h = c.get("homography") or {}
                h = h.get(key) or {} if key else h
                cells.append(
                    f"{_fmt(h.get('precision'), 3)} ({h.get('correct', 'n/a')} correct "
                    f"of {h.get('matches', 'n/a')})"
                )
            rows.append((label, cells))
    if any((c.get("matcher_layers") or {}).get("count") for c in configs):
        rows.append(
            (
                "LightGlue layers / pair, mean (max)",
                [
                    f"{_fmt(c['matcher_layers']['mean'], 2)} "
                    f"(max {_fmt(c['matcher_layers']['max'], 0)})"
                    for c in configs
                ],
            )
        )
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
        f"- skipped (undecodable) frames: {report['skipped_count']}",
    ]
    if report.get("input_damage"):
        lines.append(
            f"- **damaged input**: {report['input_damage']['reason']} "
            f"({report['input_damage']['file']}); the numbers cover the intact frames before it."
        )
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
    lines += trajectory.markdown_section(configs)
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


def write_plots(configs: Sequence[Mapping[str, Any]], plot_dir: Path, out_dir: Path) -> None:
    """One PNG per plot in PLOTS, every configuration in each.

    Per-frame series come from each configuration's per_frame_file (relative to out_dir).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    def save(fig: Any, key: str) -> None:
        fig.tight_layout()
        fig.savefig(plot_dir / PLOTS[key], dpi=100)
        plt.close(fig)

    empty = read_per_frame_lines([])
    series = [
        read_per_frame(out_dir / c["per_frame_file"]) if c.get("per_frame_file") else empty
        for c in configs
    ]

    fig, ax = plt.subplots(figsize=(8, 4))
    for i, (c, frames) in enumerate(zip(configs, series, strict=True)):
        color = colors[i % len(colors)]
        ax.plot(frames["frame_id"], frames["matches_newest"], "-", color=color, label=c["name"])
        ax.plot(frames["frame_id"], frames["matches_all"], "--", color=color)
        keyframes = frames["is_keyframe"] > 0
        ax.plot(
            frames["frame_id"][keyframes], frames["matches_newest"][keyframes], "o", color=color
        )
    ax.set(xlabel="frame id (o: keyframe)", ylabel="matches")
    ax.legend()
    save(fig, "matches")

    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.5 * len(configs)))
    start = min((f["stamp_ns"][0] for f in series if f["stamp_ns"].size), default=0)
    for i, frames in enumerate(series):
        times = (frames["stamp_ns"] - start) / 1e9
        ax.plot(times, [i] * len(times), "|", color="0.7")
        key_times = times[frames["is_keyframe"] > 0]
        ax.plot(key_times, [i] * len(key_times), "D", color=colors[i % len(colors)])
    ax.set_yticks(range(len(configs)), [c["name"] for c in configs])
    ax.set(xlabel="time since first frame (s); diamonds: keyframes, ticks: frames")
    ax.set_ylim(-0.5, len(configs) - 0.5)
    save(fig, "keyframes")

    fig, ax = plt.subplots(figsize=(8, 4))
    for i, (c, frames) in enumerate(zip(configs, series, strict=True)):
        has_ratio = np.isfinite(frames["inlier_ratio"])
        if has_ratio.any():
            x, y = frames["frame_id"][has_ratio], frames["inlier_ratio"][has_ratio]
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
