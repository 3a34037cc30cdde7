"""The bench-onnx command's frames: a generated scene, the frame time of torch and
onnxruntime run alternately per keyframe count, the matches onnxruntime keeps, and the
table (tools/bench_onnx.py documents what is timed).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np


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


def components(params: dict[str, Any]) -> tuple[Any, Any]:
    from superglue_ros.pipeline.frontend import to_grayscale, to_rgb
    from superglue_ros.pipeline.registry import build_frontend, build_matcher

    frontend, matcher = build_frontend(params), build_matcher(params)
    color = bool(getattr(frontend, "color", False))
    return frontend, matcher, (to_rgb if color else to_grayscale)


def row(runs: dict, images: list[np.ndarray], count: int, repeats: int, form: str) -> dict:
    from superglue_ros.evaluation.pair_parity import nearest_keypoints, same_matches

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


def print_table(rows: list[dict], config: Any, args: Any) -> None:
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
