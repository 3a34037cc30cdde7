"""``superglue-ros bench-onnx``: the learned default's frame on onnxruntime against torch.

One frame = the frontend on an H x W image plus the matcher against K keyframes
(whose features the pipeline keeps), for the frontend and matcher of --params
(default ALIKED-n16 + LightGlue). The graphs are exported into a temporary
folder first. torch and onnxruntime run alternately, frame by frame, so machine
load hits both alike; the table gives median frame milliseconds, the ratio
onnxruntime / torch for the frame and for each stage (frontend, matcher; medians of
the stage times), and the matches each keeps (onnxruntime's matches that are
torch's, compared by keypoint position, as a share of torch's).

Images: a textured image and shifted, slightly rotated views of it, generated
(every run is the same work), at 640 x 480 by default.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from superglue_ros.evaluation.onnx_bench import components, print_table, row, scene
from superglue_ros.tools.common import CliError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=Path, default=None, metavar="FILE", help="parameters file")
    parser.add_argument("--height", type=int, default=480, help="image height (default 480)")
    parser.add_argument("--width", type=int, default=640, help="image width (default 640)")
    parser.add_argument("--keypoints", type=int, default=1024, help="keypoints per image")
    parser.add_argument("--keyframes", default="1,4", help="keyframe counts (default 1,4)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--forms", default="adaptive,fixed", help="LightGlue ONNX forms to time")
    parser.add_argument("--repeats", type=int, default=5, help="timed frames per row (median)")
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU threads of each runtime (0: their defaults)"
    )
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write JSON")


def _keyframe_counts(text: str) -> list[int]:
    try:
        counts = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as error:
        raise CliError(f"--keyframes: {error}") from error
    if not counts or min(counts) < 1:
        raise CliError("--keyframes: give positive counts, e.g. 1,4")
    return counts


def run(args: argparse.Namespace) -> int:
    from superglue_ros.evaluation.pair_parity import export_for
    from superglue_ros.pipeline.registry import choose_networks
    from superglue_ros.tools.common import load_configs

    counts = _keyframe_counts(args.keyframes)
    if args.threads > 0:
        # Equal thread counts: on a loaded machine torch's default two spinning threads
        # lose far more time to each other than onnxruntime's sleeping ones.
        import torch

        from superglue_ros.pipeline import onnx_runtime

        torch.set_num_threads(args.threads)
        onnx_runtime.DEFAULT_THREADS = args.threads
    _, params = load_configs([args.params] if args.params else [], "bench-onnx")[0]
    base = {"frontend": "aliked", "matcher": "lightglue"} if args.params is None else {}
    config, _ = choose_networks({**params, **base, "device": args.device, "precision": "fp32"})
    limit = {f"{config.text('frontend')}.max_keypoints": args.keypoints}
    images = scene(args.height, args.width, max(counts) + 1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="superglue-ros-bench-onnx-") as folder:
        export_for(config, Path(folder))
        forms = [f.strip() for f in args.forms.split(",")]
        if config.text("matcher") != "lightglue":
            forms = ["-"]
        for form in forms:
            onnx = {"runtime": "onnxruntime", "onnx_dir": folder, "lightglue.onnx_form": form}
            runs = {
                "torch": components({**config, **limit, "runtime": "torch"}),
                "onnxruntime": components({**config, **limit, **onnx}),
            }
            for count in counts:
                rows.append(row(runs, images, count, args.repeats, form))
    print_table(rows, config, args)
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    return 0
