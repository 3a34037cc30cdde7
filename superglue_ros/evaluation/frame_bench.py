"""End-to-end frame time of the pipeline: image in, FrameResult out.

Part ``frames`` of ``superglue-ros bench`` (tools/bench.py prints the rows). A
Pipeline (SuperPoint + SuperGlue, the bench's weights, ``--keypoints`` points per
image) processes a stream of H x W frames (the bench's texture, shifted a few pixels
per frame) with K keyframes buffered: every frame is made a keyframe (min_matches
above any count), so once K frames have passed, each frame is matched against K
keyframes in one batch, as a full buffer is in use. The first K + ``--warmup`` frames
are not timed (the buffer fills and every model shape has run once), then
``--repeats`` frames are: the median frame time, frames/s, and the pipeline's own
frontend / matcher medians.

For each K, fp32 on torch and on onnxruntime are timed alternately, frame by frame,
so that machine load hits both alike, and reported as a ratio (onnxruntime / torch).
Other precisions run on torch alone; each row says which share of the fp32 torch
matches (frame index, keyframe, keyframe index) it found on the same frames.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RUNTIMES = ("torch", "onnxruntime")
EVERY_FRAME_A_KEYFRAME = 100000  # keyframes.min_matches above any match count


class FrameDriver:
    """One pipeline fed the same frame stream as every other driver; keeps its matches."""

    def __init__(self, pipeline: Any, images: list[Any], sync: Callable[[], None]) -> None:
        self.pipeline, self.images, self.sync = pipeline, images, sync
        self.count = 0
        self.times_ms: list[float] = []
        self.stages: dict[str, list[float]] = {"frontend": [], "matcher": []}
        self.matches: list[set[tuple[int, int, int]]] = []

    def step(self, timed: bool) -> None:
        image = self.images[self.count % len(self.images)]
        start = time.perf_counter()
        result = self.pipeline.process(image, 1_000_000 * (self.count + 1))
        self.sync()
        elapsed = 1e3 * (time.perf_counter() - start)
        self.count += 1
        if not timed:
            return
        self.times_ms.append(elapsed)
        for stage, values in self.stages.items():
            values.append(result.timings_ms[stage])
        self.matches.append(
            {
                (match.keyframe_id, int(i), int(j))
                for match in result.matches
                for i, j in zip(match.frame_indices, match.keyframe_indices, strict=True)
            }
        )

    def row(self, runtime: str, precision: str, keyframes: int) -> dict[str, Any]:
        frame_ms = statistics.median(self.times_ms)
        return {
            "runtime": runtime,
            "precision": precision,
            "keyframes": keyframes,
            "frame_ms": round(frame_ms, 2),
            "fps": round(1e3 / frame_ms, 2),
            "frontend_ms": round(statistics.median(self.stages["frontend"]), 2),
            "matcher_ms": round(statistics.median(self.stages["matcher"]), 2),
            "matches_per_frame": round(statistics.mean(len(m) for m in self.matches), 1),
        }


def kept_share(ours: list[set], reference: list[set]) -> float:
    """Share of the reference's matches that ours also found, frame by frame."""
    total = sum(len(r) for r in reference)
    found = sum(len(o & r) for o, r in zip(ours, reference, strict=True))
    return round(found / total, 4) if total else 1.0


class FrameBench:
    """Builds each runtime's components from the bench's weights and times pipelines."""

    def __init__(self, bench: Any, workdir: Path) -> None:
        import numpy as np

        self.bench, self.workdir = bench, workdir
        base = bench.image[0, 0].cpu().numpy()
        self.images = [np.roll(base, 4 * i, axis=1) for i in range(8)]
        self._graphs: dict[str, Path] = {}

    def superglue(self, precision: str) -> Any:
        """The bench's SuperGlue; random weights sharpened so that nearby frames match
        (gain 64, as the tests' weights: the timings do not depend on it, the match
        counts and the share kept at other precisions need matches)."""
        if self.bench.weights_source == "released":
            return self.bench.superglue(precision)
        from superglue_ros.models.weights import build_superglue, synthetic_superglue_state

        conf = {
            "sinkhorn_iterations": self.bench.args.sinkhorn_iterations,
            "precision": precision,
        }
        state = synthetic_superglue_state(0, projection_gain=64.0)
        return build_superglue(state, conf).to(self.bench.device)

    def components(self, runtime: str, precision: str) -> tuple[Any, Any]:
        """(frontend, matcher) of runtime at precision (onnxruntime: fp32 only)."""
        superpoint = self.bench.superpoint(precision)  # --keypoints kept, threshold 0
        superglue = self.superglue(precision)
        if runtime == "torch":
            from superglue_ros.pipeline.frontends.superpoint import SuperPointFrontend
            from superglue_ros.pipeline.matchers.superglue import SuperGlueMatcher

            device = self.bench.device
            matcher = SuperGlueMatcher(superglue, device, "bench", cache_size=64)
            return SuperPointFrontend(superpoint, device), matcher
        from superglue_ros.models.onnx_export import export_superglue, export_superpoint
        from superglue_ros.pipeline.onnx_runtime import (
            OnnxSuperGlueMatcher,
            OnnxSuperPointFrontend,
            open_session,
        )

        superpoint, superglue = superpoint.cpu(), superglue.cpu()  # exported from the CPU
        if not self._graphs:
            self._graphs = {
                "superpoint": export_superpoint(superpoint, self.workdir / "superpoint.onnx"),
                "superglue": export_superglue(superglue, self.workdir / "superglue.onnx"),
            }
        device, threads = str(self.bench.device), self.bench.args.threads
        sp_session, _ = open_session(self._graphs["superpoint"], "superpoint", {}, device, threads)
        sg_session, _ = open_session(self._graphs["superglue"], "superglue", {}, device, threads)
        return (
            OnnxSuperPointFrontend(sp_session, superpoint.conf),
            OnnxSuperGlueMatcher(
                sg_session,
                int(superglue.conf["descriptor_dim"]),
                float(superglue.conf["match_threshold"]),
            ),
        )

    def driver(self, components: tuple[Any, Any], keyframes: int) -> FrameDriver:
        """A warmed-up driver: K keyframes buffered, every shape run once."""
        from superglue_ros.pipeline import Pipeline

        params = {
            "keyframes.buffer_size": keyframes,
            "keyframes.min_matches": EVERY_FRAME_A_KEYFRAME,
        }
        driver = FrameDriver(Pipeline(*components, params), self.images, self.bench.sync)
        for _ in range(keyframes + max(self.bench.args.warmup, 1)):
            driver.step(timed=False)
        return driver

    def run(self, keyframe_counts: list[int], precisions: list[str], runtimes: list[str]) -> list:
        repeats = self.bench.args.repeats
        rows: list[dict[str, Any]] = []
        built = {
            (runtime, precision): self.components(runtime, precision)
            for precision in precisions
            for runtime in runtimes
            if runtime == "torch" or precision == "fp32"
        }
        for count in keyframe_counts:
            drivers = {key: self.driver(parts, count) for key, parts in built.items()}
            fp32 = [drivers[(r, "fp32")] for r in runtimes if (r, "fp32") in drivers]
            for repeat in range(repeats):  # fp32 runtimes alternate frame by frame
                for driver in fp32 if repeat % 2 == 0 else fp32[::-1]:
                    driver.step(timed=True)
            for (_, precision), driver in drivers.items():
                if precision != "fp32":
                    for _ in range(repeats):
                        driver.step(timed=True)
            reference = drivers.get(("torch", "fp32"))
            for (runtime, precision), driver in drivers.items():
                row = driver.row(runtime, precision, count)
                if reference is not None and driver is not reference:
                    row["fp32_torch_matches_kept"] = kept_share(driver.matches, reference.matches)
                    if precision == "fp32":
                        row["ratio_to_torch"] = round(
                            statistics.median(driver.times_ms)
                            / statistics.median(reference.times_ms),
                            3,
                        )
                rows.append(row)
        return rows
