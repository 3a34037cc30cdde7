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
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

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


def scene(height: int, width: int, views: int, seed: int = 0) -> list[np.ndarray]:
    """A smooth random texture and `views` shifted, rotated views of it (RGB uint8)."""
    import cv2

    rng = np.random.default_rng(seed)
    big = (rng.random((height // 8 + 40, width // 8 + 40)) * 255).astype(np.uint8)
    big = cv2.resize(big, (width + 320, height + 320), interpolation=cv2.INTER_CUBIC)
    big = cv2.add(big, (rng.random(big.shape) * 40).astype(np.uint8))
    images = []
    for view in range(views):
        angle, shift = 2.0 * view, 12.0 * view
        matrix = cv2.getRotationMatrix2D(((width + 320) / 2, (height + 320) / 2), angle, 1.0)
        matrix[:, 2] += shift
        warped = cv2.warpAffine(big, matrix, big.shape[::-1])[160 : 160 + height, 160 : 160 + width]
        images.append(cv2.cvtColor(warped, cv2.COLOR_GRAY2RGB))
    return images


def _keyframe_counts(text: str) -> list[int]:
    try:
        counts = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as error:
        raise CliError(f"--keyframes: {error}") from error
    if not counts or min(counts) < 1:
        raise CliError("--keyframes: give positive counts, e.g. 1,4")
    return counts


def run(args: argparse.Namespace) -> int:
    from superglue_ros.pipeline.registry import choose_networks
    from superglue_ros.tools.common import load_configs
    from superglue_ros.tools.parity_pair import export_for

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
                "torch": _components({**config, **limit, "runtime": "torch"}),
                "onnxruntime": _components({**config, **limit, **onnx}),
            }
            for count in counts:
                rows.append(_row(runs, images, count, args.repeats, form))
    print_table(rows, config, args)
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    return 0


def _components(params: dict[str, Any]) -> tuple[Any, Any]:
    from superglue_ros.pipeline.frontend import to_grayscale, to_rgb
    from superglue_ros.pipeline.registry import build_frontend, build_matcher

    frontend, matcher = build_frontend(params), build_matcher(params)
    color = bool(getattr(frontend, "color", False))
    return frontend, matcher, (to_rgb if color else to_grayscale)


def _row(runs: dict, images: list[np.ndarray], count: int, repeats: int, form: str) -> dict:
    from superglue_ros.tools.parity_pair import nearest_keypoints, same_matches

    keyframes = {
        name: [f.extract(p(i)) for i in images[1 : count + 1]] for name, (f, _, p) in runs.items()
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    results: dict[str, Any] = {}
    for _ in range(repeats + 1):  # the first frame of each is not timed
        for name, (frontend, matcher, pixels) in runs.items():
            image = pixels(images[0])
            start = time.perf_counter()
            features = frontend.extract(image)
            middle = time.perf_counter()
            out = matcher.match(features, keyframes[name])
            times[name].append((middle - start, time.perf_counter() - middle))
            results[name] = (features, out)
    medians = {name: statistics.median(a + b for a, b in t[1:]) * 1e3 for name, t in times.items()}
    stages = {
        f"{name}_{stage}_ms": round(statistics.median(t[i] for t in runs_t[1:]) * 1e3, 1)
        for name, runs_t in times.items()
        for i, stage in enumerate(("frontend", "matcher"))
    }
    ours, theirs = results["torch"], results["onnxruntime"]
    nearest0, _ = nearest_keypoints(ours[0].keypoints, theirs[0].keypoints)
    kept, total = 0.0, 0
    for i, (a, b) in enumerate(zip(ours[1], theirs[1], strict=True)):
        nearest1, _ = nearest_keypoints(
            keyframes["torch"][i].keypoints, keyframes["onnxruntime"][i].keypoints
        )
        share, (n_ref, _) = same_matches(a.matches0, b.matches0, [nearest0, nearest1])
        kept += share * n_ref
        total += n_ref
    return {
        "form": form,
        "keyframes": count,
        "torch_ms": round(medians["torch"], 1),
        "onnxruntime_ms": round(medians["onnxruntime"], 1),
        "ratio": round(medians["onnxruntime"] / medians["torch"], 3),
        **stages,
        "torch_matches": total,
        "onnx_matches": int(sum((m.matches0 >= 0).sum() for m in theirs[1])),
        "kept": round(kept / total, 4) if total else 1.0,
    }


def print_table(rows: list[dict], config: Any, args: argparse.Namespace) -> None:
    frontend, matcher = config.text("frontend"), config.text("matcher")
    threads = args.threads or "default"
    print(
        f"{frontend} + {matcher}, {args.width}x{args.height}, {args.keypoints} keypoints, "
        f"device {args.device}, threads {threads}, median of {args.repeats} frames (alternating)"
    )
    print(
        f"{'form':<10}{'K':>3}{'torch ms':>10}{'onnx ms':>10}{'onnx/torch':>12}"
        f"{'frontend':>10}{'matcher':>9}{'matches':>9}{'onnx':>7}{'kept':>8}"
    )
    for row in rows:
        print(
            f"{row['form']:<10}{row['keyframes']:>3}{row['torch_ms']:>10.1f}"
            f"{row['onnxruntime_ms']:>10.1f}{row['ratio']:>12.3f}"
            f"{row['onnxruntime_frontend_ms'] / row['torch_frontend_ms']:>10.3f}"
            f"{row['onnxruntime_matcher_ms'] / row['torch_matcher_ms']:>9.3f}"
            f"{row['torch_matches']:>9}"
            f"{row['onnx_matches']:>7}{row['kept'] * 100:>7.1f}%"
        )
