"""Time ALIKED / DISK extraction and LightGlue matching (median milliseconds).

Stages, per frontend (aliked, disk), on real consecutive frames (the Freiburg
sequence in ../shared when present, else a procedural homography sequence):
extraction of one image; LightGlue on one pair; one frame against K keyframes
as one padded batch and pair by pair (the loop is the baseline: both run in the
same process, alternating on every repeat so that machine load hits both alike);
the transformer layers each pair ran (early exit); and each --precisions entry
with its agreement with fp32: the share of fp32 matches found again *by
position* (both keypoints within AGREE_PX of the fp32 match's), since another
precision detects its own keypoints, in another order.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

from superglue_ros.evaluation.lightglue_bench import (
    AGREE_PX,
    agreement,
    bench_precision,
    load_frames,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frontends", default="aliked,disk", help="comma-separated")
    parser.add_argument("--keypoints", type=int, default=1024, help="keypoints per image")
    parser.add_argument("--keyframes", type=int, default=4, help="K for the per-frame stage")
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT the frames are resized to")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per stage (median)")
    parser.add_argument("--precisions", default="bf16", help="besides fp32, comma-separated")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
    parser.add_argument("--images", type=Path, default=None, help="folder of frames (sorted)")


def run(args: argparse.Namespace) -> int:
    import torch

    from superglue_ros.tools.homography_bag import parse_size

    size = parse_size(args.size)
    frames, source = load_frames(args.images, args.keyframes + 1, size)
    print(
        f"bench-lightglue: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}; "
        f"{len(frames)} frames {size[0]}x{size[1]} from {source}; "
        f"median of {args.repeats} runs"
    )
    for name in [n for n in args.frontends.split(",") if n]:
        lines, reference = bench_precision(name, "fp32", frames, args)
        print("\n".join(lines), flush=True)
        for precision in [p for p in args.precisions.split(",") if p]:
            lines, matches = bench_precision(name, precision, frames, args)
            print("\n".join(lines), flush=True)
            share = 100 * agreement(matches, reference)
            print(
                f"{name} {precision}: {share:.1f} % of the fp32 matches found again "
                f"(by position, both keypoints within {AGREE_PX:g} px)",
                flush=True,
            )
    return 0
