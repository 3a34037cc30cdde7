"""Time SuperPoint and SuperGlue per stage, the pipeline per frame, and the node's ROS work.

Parts (--parts, default all): ``models`` (below), ``frames`` (end-to-end frame time
and frames/s of the pipeline per runtime, precision and keyframe count:
evaluation/frame_bench.py) and ``ros`` (the node's per-frame ROS work on its own:
ros/overhead.py; skipped where rclpy is not importable). --json alone prints the
results as JSON instead of the tables; --json FILE also writes them to FILE.

Part ``models``: median milliseconds per stage.

Stages: SuperPoint on one H x W image; SuperGlue on one pair; SuperGlue between
one frame and K keyframes (K = 1, 2, 4, 8 by default) as one padded batch and
pair by pair, plus the strategy the model picks by itself ("auto"); and each
precision (fp32, bf16, fp16) with its agreement with fp32 (same keypoints, same
matches). A precision the device cannot run is reported as unsupported.

Weights: the released files when found (--weights-dir, $SUPERGLUE_ROS_WEIGHTS,
user cache), otherwise seeded random weights of the same size: timings do not
depend on the values. Keypoints are synthetic (the frame's points moved, noisy
and partly replaced in each keyframe, keyframe sizes varying by up to 20 %), so
every run is the same work.

Baseline: SuperPoint and SuperGlue (one pair) are also timed as the authors'
reference implementation computes them, with the same weights, in the same run,
alternating baseline and ours on every repeat so that machine load hits both
alike; the table prints ours, the baseline and ours / baseline. The baseline
SuperPoint runs NCHW-contiguous weights and tensors (ours: channels-last) and
NMS with square (2r+1) x (2r+1) max-pools (ours: a row pool then a column pool).
The baseline SuperGlue runs the model's own modules the reference's way, one
pair per call: Conv1d layers on [B, D, N], separate query/key/value projections
with interleaved heads, unfolded BatchNorm, explicit attention (softmax(q k^T /
sqrt(d)) v with einsum) and unmasked Sinkhorn (ours: fused projections, folded
BatchNorm and merge, scaled_dot_product_attention, masked Sinkhorn). Before
timing, each baseline's output is checked against ours (SuperPoint: same
keypoint set, scores within 1e-5; SuperGlue: log assignment within 1e-4); a
mismatch raises BaselineMismatchError, since a baseline that computes something
else is no baseline.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from superglue_ros.evaluation.model_bench import (
    Bench,
    importable,
    print_frame_rows,
    print_ros,
    print_table,
)
from superglue_ros.tools.common import CliError

PARTS = ("models", "frames", "ros")
RUNTIMES = ("torch", "onnxruntime")
STDOUT = Path("-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--height", type=int, default=480, help="image height (default 480)")
    parser.add_argument("--width", type=int, default=640, help="image width (default 640)")
    parser.add_argument(
        "--keypoints", type=int, default=1024, help="keypoints per image (default 1024)"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default cpu)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per stage (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per stage first")
    parser.add_argument(
        "--sinkhorn-iterations", type=int, default=20, help="Sinkhorn iterations (default 20)"
    )
    parser.add_argument(
        "--keyframes", default="1,2,4,8", help="keyframe counts to batch (default 1,2,4,8)"
    )
    parser.add_argument(
        "--precisions", default="fp32,bf16,fp16", help="precisions to try (default all)"
    )
    parser.add_argument("--weights-dir", default=None, help="directory of the released weights")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument(
        "--json",
        type=Path,
        nargs="?",
        const=STDOUT,
        default=None,
        metavar="FILE",
        help="write the results as JSON to FILE (no FILE: print JSON instead of the tables)",
    )
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"what to time (default {','.join(PARTS)})"
    )
    parser.add_argument(
        "--runtime",
        default="torch,onnxruntime",
        help="runtimes of the frames part: torch, onnxruntime or both (default both)",
    )
    parser.add_argument(
        "--ros-frames", type=int, default=200, help="frames timed by the ros part (default 200)"
    )


def parse_list(text: str, kind: Callable[[str], Any], what: str) -> list[Any]:
    try:
        values = [kind(v) for v in text.split(",") if v.strip()]
    except ValueError as error:
        raise CliError(f"--{what}: {error}") from error
    if not values:
        raise CliError(f"--{what} is empty")
    return values


def checked_arguments(
    args: argparse.Namespace,
) -> tuple[list[int], list[str], list[str], list[str]]:
    """(keyframe counts, precisions, parts, runtimes) of the command line; CliError if bad."""
    keyframe_counts = parse_list(args.keyframes, int, "keyframes")
    precisions = parse_list(args.precisions, str, "precisions")
    bad = [p for p in precisions if p not in ("fp32", "fp16", "bf16")]
    if bad:
        raise CliError(f"--precisions: unknown {', '.join(bad)} (fp32, fp16, bf16)")
    if min(keyframe_counts) < 1 or args.repeats < 1 or args.keypoints < 1:
        raise CliError("--keyframes, --repeats and --keypoints must be positive")
    if args.height < 8 or args.width < 8:
        raise CliError("--height and --width must be at least 8")
    parts = parse_list(args.parts, str, "parts")
    runtimes = parse_list(args.runtime, str, "runtime")
    for name, given, known in (("parts", parts, PARTS), ("runtime", runtimes, RUNTIMES)):
        unknown = [value for value in given if value not in known]
        if unknown:
            raise CliError(f"--{name}: unknown {', '.join(unknown)} ({', '.join(known)})")
    if "frames" in parts and "onnxruntime" in runtimes and not importable("onnxruntime"):
        raise CliError("--runtime onnxruntime: onnxruntime is not installed")
    return keyframe_counts, precisions, parts, runtimes


def usable_device(args: argparse.Namespace) -> Any:
    """The torch.device of --device (threads set from --threads); CliError if unusable."""
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        device = torch.device(args.device)
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError) as error:
        raise CliError(f"device {args.device!r} is not usable: {error}") from error
    return device


def run(args: argparse.Namespace) -> int:
    keyframe_counts, precisions, parts, runtimes = checked_arguments(args)
    bench = Bench(args, usable_device(args))
    tables = args.json != STDOUT
    results = bench.summary()
    if "models" in parts:
        results = bench.run_all(keyframe_counts, precisions)
        if tables:
            print_table(results)
    if "frames" in parts:
        import tempfile

        from superglue_ros.evaluation.frame_bench import FrameBench

        with tempfile.TemporaryDirectory(prefix="superglue-ros-bench-") as workdir:
            frames = FrameBench(bench, Path(workdir)).run(keyframe_counts, precisions, runtimes)
        results["frames"] = frames
        if tables:
            height, width = args.height, args.width
            print_frame_rows(
                frames, f"\nend to end per frame ({width}x{height} image in, FrameResult out)"
            )
    if "ros" in parts:
        results["ros_overhead"] = ros_overhead(args)
        if tables:
            print_ros(results["ros_overhead"])
    if args.json == STDOUT:
        print(json.dumps(results, indent=2))
    elif args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def ros_overhead(args: argparse.Namespace) -> dict[str, Any]:
    """The ros part's medians, or why it was skipped."""
    for module in ("rclpy", "superglue_ros_msgs"):
        if not importable(module):
            return {"skipped": f"{module} is not importable (needs ROS 2: make setup)"}
    from superglue_ros.ros.overhead import measure

    return measure(args.ros_frames, args.keypoints, 4, args.height, args.width)
