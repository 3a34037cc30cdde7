"""The bench command's measurements and tables: SuperPoint and SuperGlue per stage against
the reference implementation, per precision, and the tables of its parts (tools/bench.py
documents what is timed and how).
"""

from __future__ import annotations

import platform
import textwrap
from collections.abc import Callable
from typing import Any

from superglue_ros.evaluation.timing import median_ms, paired_median_ms
from superglue_ros.models.reference import (
    BASELINE,
    check_superglue_baseline,
    check_superpoint_baseline,
    contiguous_superpoint,
    reference_superglue,
    reference_superpoint,
)


class Bench:
    """Models and synthetic inputs for one device; each method times one stage."""

    def __init__(self, args: Any, device: Any) -> None:
        import torch

        from superglue_ros.models import weights as w

        self.args, self.device, self.torch = args, device, torch
        self.weights_source = "released"
        try:
            sp_state = w.load_checkpoint(w.find_weights(w.SUPERPOINT_FILE, args.weights_dir))
            sg_state = w.load_checkpoint(
                w.find_weights(w.SUPERGLUE_FILES["indoor"], args.weights_dir)
            )
        except w.WeightsNotFoundError:
            self.weights_source = "random (released weights not found)"
            generator = torch.Generator().manual_seed(0)
            sp_state = {
                k: torch.randn(v.shape, generator=generator) * 0.05
                for k, v in w.SuperPoint().state_dict().items()
            }
            sg_state = w.synthetic_superglue_state(0)
        self.sp_state, self.sg_state = sp_state, sg_state
        self.image = self._image()
        self.frame, self.keyframes = self._points(8)

    def sync(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def superpoint(self, precision: str) -> Any:
        from superglue_ros.models.weights import build_superpoint

        conf = {
            "max_keypoints": self.args.keypoints,
            "keypoint_threshold": 0.0,
            "precision": precision,
        }
        return build_superpoint(self.sp_state, conf).to(self.device)

    def superglue(self, precision: str = "fp32", strategy: str = "auto") -> Any:
        from superglue_ros.models.weights import build_superglue

        conf = {
            "sinkhorn_iterations": self.args.sinkhorn_iterations,
            "precision": precision,
            "batch_strategy": strategy,
        }
        return build_superglue(self.sg_state, conf).to(self.device)

    def _image(self) -> Any:
        """A smooth random texture with edges and blobs (many keypoint candidates)."""
        torch = self.torch
        generator = torch.Generator().manual_seed(1)
        h, w = self.args.height, self.args.width
        noise = torch.rand(1, 1, (h + 15) // 16, (w + 15) // 16, generator=generator)
        image = torch.nn.functional.interpolate(noise, size=(h, w), mode="bicubic")
        image = image + 0.1 * torch.rand(1, 1, h, w, generator=generator)
        return (image.clamp(0, 1) * 255).to(torch.uint8).to(self.device)

    def _points(self, count: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        torch = self.torch
        generator = torch.Generator().manual_seed(2)
        n, h, w = self.args.keypoints, self.args.height, self.args.width
        size = torch.tensor([w, h], dtype=torch.float32)
        kpts = torch.rand(n, 2, generator=generator) * size
        desc = torch.nn.functional.normalize(torch.randn(256, n, generator=generator), dim=0)
        frame = {"kpts": kpts, "scores": torch.rand(n, generator=generator), "desc": desc}
        keyframes = []
        for i in range(count):
            m = max(1, round(n * (1.0, 0.9, 0.8, 0.95)[i % 4]))
            pick = torch.randperm(n, generator=generator)[:m]
            moved = kpts[pick] + 3 * i + torch.randn(m, 2, generator=generator)
            noisy = desc[:, pick] + 0.1 * torch.randn(256, m, generator=generator)
            fresh = torch.rand(m, generator=generator) < 0.2  # replaced by unrelated points
            moved[fresh] = torch.rand(int(fresh.sum()), 2, generator=generator) * size
            noisy[:, fresh] = torch.randn(256, int(fresh.sum()), generator=generator)
            keyframes.append(
                {
                    "kpts": moved.clamp(min=0),
                    "scores": torch.rand(m, generator=generator),
                    "desc": torch.nn.functional.normalize(noisy, dim=0),
                }
            )
        return frame, keyframes

    def batch(self, count: int) -> dict[str, Any]:
        """Frame (side 0, repeated) against the first count keyframes (side 1, padded)."""
        from superglue_ros.models.superglue import pad_batch

        data: dict[str, Any] = {
            k: v.to(self.device) for k, v in pad_batch(self.frame, self.keyframes[:count]).items()
        }
        data["image_size0"] = data["image_size1"] = (self.args.height, self.args.width)
        return data

    def counts(self, count: int) -> tuple[list[int], list[int]]:
        """Real point counts of both sides of the first count pairs."""
        frame = len(self.frame["scores"])
        return [frame] * count, [len(k["scores"]) for k in self.keyframes[:count]]

    def time(self, fn: Callable[[], Any]) -> float:
        return round(median_ms(fn, self.args.repeats, self.args.warmup, self.sync), 2)

    def time_against(
        self, ours: Callable[[], Any], baseline: Callable[[], Any]
    ) -> tuple[float, float, float]:
        """(ours ms, baseline ms, ours / baseline): medians of alternating runs."""
        mine, theirs = paired_median_ms(
            ours, baseline, self.args.repeats, self.args.warmup, self.sync
        )
        return round(mine, 2), round(theirs, 2), round(mine / theirs, 3)

    def summary(self) -> dict[str, Any]:
        """What was measured where: command, device, versions, weights, sizes."""
        torch = self.torch
        args = self.args
        return {
            "command": "superglue-ros bench " + " ".join(_argv(args)),
            "device": str(self.device),
            "device_name": _device_name(self.device),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "weights": self.weights_source,
            "image": [args.height, args.width],
            "keypoints": args.keypoints,
            "sinkhorn_iterations": args.sinkhorn_iterations,
            "repeats": args.repeats,
            "onnxruntime": _version("onnxruntime"),
        }

    def run_all(self, keyframe_counts: list[int], precisions: list[str]) -> dict[str, Any]:
        results = self.summary()
        results["baseline"] = BASELINE
        superpoint = self.superpoint("fp32")
        baseline_sp = contiguous_superpoint(superpoint)
        check_superpoint_baseline(
            superpoint.extract(self.image), reference_superpoint(baseline_sp, self.image)
        )
        (
            results["superpoint_ms"],
            results["superpoint_baseline_ms"],
            results["superpoint_ratio"],
        ) = self.time_against(
            lambda: superpoint.extract(self.image),
            lambda: reference_superpoint(baseline_sp, self.image),
        )
        pair = self.batch(1)
        superglue = self.superglue()
        check_superglue_baseline(
            superglue.match(pair)["log_assignment"],
            reference_superglue(superglue, pair)["log_assignment"],
        )
        (
            results["superglue_pair_ms"],
            results["superglue_pair_baseline_ms"],
            results["superglue_pair_ratio"],
        ) = self.time_against(
            lambda: superglue.match(pair), lambda: reference_superglue(superglue, pair)
        )

        if max(keyframe_counts) > len(self.keyframes):
            self.frame, self.keyframes = self._points(max(keyframe_counts))
        batched, loop = self.superglue(strategy="batched"), self.superglue(strategy="loop")
        rows = []
        for count in keyframe_counts:
            data = self.batch(count)
            row = {
                "keyframes": count,
                "batched_ms": self.time(lambda d=data: batched.match(d)),
                "loop_ms": self.time(lambda d=data: loop.match(d)),
                "auto_picks": superglue.strategy_for(self.device, *self.counts(count)),
            }
            row["auto_ms"] = row[f"{row['auto_picks']}_ms"]
            rows.append(row)
        results["matching"] = rows

        fp32 = self.precision_row("fp32", None)  # agreement is measured against fp32
        reference = fp32.pop("_outputs", None)
        variants = [fp32 if p == "fp32" else self.precision_row(p, reference) for p in precisions]
        results["precisions"] = variants
        return results

    def precision_row(self, precision: str, reference: Any) -> dict[str, Any]:
        row: dict[str, Any] = {"precision": precision}
        try:
            superpoint = self.superpoint(precision)
            superglue = self.superglue(precision)
            pair = self.batch(1)
            keypoints = superpoint.extract(self.image)["keypoints"][0].cpu()
            matches = superglue.match(pair)["matches0"][0].cpu()
            row["superpoint_ms"] = self.time(lambda: superpoint.extract(self.image))
            row["superglue_pair_ms"] = self.time(lambda: superglue.match(pair))
        except (RuntimeError, NotImplementedError, TypeError) as error:
            row["unsupported"] = str(error).splitlines()[0][:160]
            return row
        if reference is None:
            row["_outputs"] = (keypoints, matches)
            row["keypoint_agreement"] = 1.0
            row["match_agreement"] = 1.0
            return row
        ref_kpts, ref_matches = reference
        ours = {tuple(p) for p in keypoints.round().int().tolist()}
        theirs = {tuple(p) for p in ref_kpts.round().int().tolist()}
        row["keypoint_agreement"] = round(len(ours & theirs) / max(len(theirs), 1), 4)
        agree = (matches == ref_matches) & (ref_matches >= 0)
        row["match_agreement"] = round(
            float(agree.sum()) / max(int((ref_matches >= 0).sum()), 1), 4
        )
        return row


def _argv(args: Any) -> list[str]:
    out = []
    for key in ("height", "width", "keypoints", "device", "repeats", "sinkhorn_iterations"):
        out += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    out += ["--keyframes", args.keyframes, "--precisions", args.precisions]
    return out + ["--parts", args.parts, "--runtime", args.runtime]


def importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a broken or blocked package
        return False


def _version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for name in (module, f"{module}-gpu"):
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return None


def _device_name(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def print_table(results: dict[str, Any]) -> None:
    print(
        f"device {results['device']} ({results['device_name']}), torch {results['torch']}, "
        f"{results['threads']} threads, weights: {results['weights']}"
    )
    height, width = results["image"]
    print(
        f"image {width}x{height}, {results['keypoints']} keypoints, "
        f"{results['sinkhorn_iterations']} Sinkhorn iterations, median of {results['repeats']}"
    )
    print()
    print(f"{'stage':<26}{'ours ms':>10}{'baseline ms':>13}{'ratio (ours / baseline)':>25}")
    for name, key in (
        ("SuperPoint (one image)", "superpoint"),
        ("SuperGlue (one pair)", "superglue_pair"),
    ):
        print(
            f"{name:<26}{results[f'{key}_ms']:>10.1f}{results[f'{key}_baseline_ms']:>13.1f}"
            f"{results[f'{key}_ratio']:>25.3f}"
        )
    print(textwrap.fill(f"baseline: {results['baseline']}", width=92))
    print()
    print(f"{'keyframes':>9}{'batched ms':>12}{'loop ms':>10}{'auto picks':>12}{'auto ms':>10}")
    for row in results["matching"]:
        print(
            f"{row['keyframes']:>9}{row['batched_ms']:>12.1f}{row['loop_ms']:>10.1f}"
            f"{row['auto_picks']:>12}{row['auto_ms']:>10.1f}"
        )
    print()
    print(
        f"{'precision':<10}{'SuperPoint ms':>14}{'SuperGlue ms':>14}"
        f"{'keypoints = fp32':>18}{'matches = fp32':>16}"
    )
    for row in results["precisions"]:
        if "unsupported" in row:
            print(f"{row['precision']:<10}unsupported on this device: {row['unsupported']}")
            continue
        print(
            f"{row['precision']:<10}{row['superpoint_ms']:>14.1f}{row['superglue_pair_ms']:>14.1f}"
            f"{row['keypoint_agreement'] * 100:>17.1f}%{row['match_agreement'] * 100:>15.1f}%"
        )


def print_frame_rows(rows: list[dict[str, Any]], header: str) -> None:
    print(header)
    print(
        f"{'K':>3} {'runtime':<12}{'precision':<10}{'frame ms':>10}{'frames/s':>10}"
        f"{'frontend ms':>13}{'matcher ms':>12}{'matches':>9}{'kept':>8}{'ratio':>7}"
    )
    for row in rows:
        kept = row.get("fp32_torch_matches_kept")
        ratio = row.get("ratio_to_torch")
        print(
            f"{row['keyframes']:>3} {row['runtime']:<12}{row['precision']:<10}"
            f"{row['frame_ms']:>10.1f}{row['fps']:>10.2f}{row['frontend_ms']:>13.1f}"
            f"{row['matcher_ms']:>12.1f}{row['matches_per_frame']:>9.1f}"
            f"{'' if kept is None else f'{kept * 100:.1f}%':>8}"
            f"{'' if ratio is None else f'{ratio:.3f}':>7}"
        )
    print(
        "kept: share of the fp32 torch matches found on the same frames; ratio: frame time / "
        "fp32 torch frame time, timed alternately in this run"
    )


def print_ros(overhead: dict[str, Any]) -> None:
    print()
    if "skipped" in overhead:
        print(f"ROS overhead: skipped, {overhead['skipped']}")
        return
    print(
        f"ROS overhead per frame (median of {overhead['frames']}; {overhead['image']} image, "
        f"{overhead['keypoints']} keypoints with descriptors, {overhead['keyframes']} keyframes, "
        f"Correspondences {overhead['message_bytes'] / 1e6:.2f} MB)"
    )
    for step in ("image_conversion", "message_building", "publish", "features_vins"):
        print(f"  {step:<44}{overhead[f'{step}_ms']:>8.3f} ms")
    print(f"  {'total':<44}{overhead['total_ms']:>8.3f} ms")
    print(f"  {'total without features_vins (no camera_info)':<44}", end="")
    print(f"{overhead['total_without_vins_ms']:>8.3f} ms")
    print(f"  {'building + publish, publish_descriptors false':<44}", end="")
    print(f"{overhead['building_and_publish_without_descriptors_ms']:>8.3f} ms")
