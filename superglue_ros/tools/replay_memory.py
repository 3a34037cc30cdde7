"""Benchmark: peak memory of ``superglue-ros replay`` against the length of the bag.

    superglue-ros replay-memory [--frames 1000 10000] [--keep DIR]

Writes one generated bag per length (a 320x240 camera sliding over a textured
canvas, JPEG sensor_msgs/CompressedImage, new points entering on every frame),
replays each with ORB + MNN in a fresh process and prints that process's peak
RSS. Replay state is bounded by the keyframe buffer, so the peak should not
grow with the number of frames.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, nargs="+", default=[1000, 10000], metavar="N")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep bags and outputs here")


def run(args: argparse.Namespace) -> int:
    from superglue_ros.evaluation import memory

    with tempfile.TemporaryDirectory(prefix="replay_memory_") as scratch:
        root = args.keep or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        params = root / "orb_mnn.yaml"
        params.write_text(memory.PARAMS)
        texture = memory.canvas()
        rows = []
        for frames in args.frames:
            bag = root / f"bag_{frames}"
            start = time.perf_counter()
            memory.write_bag(bag, frames, texture)
            written = time.perf_counter() - start
            result = memory.measure(bag, root / f"out_{frames}", params)
            report = json.loads((root / f"out_{frames}" / "report.json").read_text())
            tracks = report["configs"][0]["track_length"]["tracks"]
            rows.append((frames, result["peak_rss_kib"] / 1024, tracks))
            print(
                f"{frames:6d} frames: peak RSS {result['peak_rss_kib'] / 1024:7.1f} MiB, "
                f"{tracks} tracks, replay {result['seconds']:.1f} s "
                f"(bag written in {written:.1f} s)",
                flush=True,
            )
        if len(rows) > 1:
            growth = rows[-1][1] - rows[0][1]
            print(f"growth from {rows[0][0]} to {rows[-1][0]} frames: {growth:+.1f} MiB")
    return 0
