"""Write a bag of one photo seen through known homographies, with their ground truth.

``homography-bag SOURCE --out BAG``: frame 0 is the centre of SOURCE (a real
photo; without one, ``--procedural`` draws a texture); frame i is SOURCE warped
by a homography H_i that drifts smoothly from frame to frame (rotation, scale,
translation, perspective), then blurred, noised and re-exposed at random. H_i
maps frame-0 pixels to frame-i pixels (pixel centres at integers) and is written,
one 3 x 3 matrix per frame keyed by its stamp, to BAG.homographies.json (or
--homographies FILE); ``replay --homographies FILE`` scores matches against it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from superglue_ros.tools.common import CliError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, nargs="?", help="a photo (jpg/png)")
    parser.add_argument("--out", type=Path, required=True, metavar="BAG", help="bag to create")
    parser.add_argument("--homographies", type=Path, help="default: BAG.homographies.json")
    parser.add_argument("--frames", type=int, default=12, help="frames in the bag")
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of the frames")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second (stamps)")
    parser.add_argument(
        "--procedural", action="store_true", help="draw a texture instead of a photo"
    )


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as error:
        raise CliError(f"--size must be WIDTHxHEIGHT, e.g. 640x480; got {text!r}") from error
    if not (32 <= width <= 8192 and 32 <= height <= 8192):
        raise CliError(f"--size must be between 32 and 8192 pixels a side; got {text!r}")
    return width, height


def run(args: argparse.Namespace) -> int:
    if (args.source is None) == (not args.procedural):
        raise CliError("give a SOURCE photo or --procedural (not both)")
    if args.source is not None and not args.source.is_file():
        raise CliError(f"source photo {args.source} does not exist")
    if args.frames < 2:
        raise CliError("--frames must be at least 2")
    if args.out.exists():
        raise CliError(f"output {args.out} exists; choose a new --out")
    from superglue_ros.evaluation.homography import make_sequence, write_bag, write_homographies

    size = parse_size(args.size)
    frames, homographies = make_sequence(args.source, args.frames, size, args.seed)
    stamps = [1_000_000_000 + round(i * 1e9 / args.rate) for i in range(len(frames))]
    write_bag(frames, stamps, args.out)
    target = args.homographies or args.out.with_name(args.out.name + ".homographies.json")
    write_homographies(target, stamps, homographies)
    print(f"wrote {len(frames)} frames to {args.out}, homographies to {target}", file=sys.stderr)
    return 0
