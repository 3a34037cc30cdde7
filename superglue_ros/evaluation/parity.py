"""Parity of SuperPoint / SuperGlue with reference fixtures: the models built from a
fixture's configuration and weights, run with torch or exported to onnxruntime, compared
with the reference outputs within the tolerances below (tools/parity.py lists them).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

KEYPOINT_DIFF_FRACTION = 0.005
SCORE_TIE = 1e-6
SCORE_TOL = 1e-5
COSINE_MIN = 0.9999
LOG_ASSIGNMENT_TOL = 1e-3
MATCH_SCORE_MARGIN = 1e-4


class Runtime:
    """Runs a fixture's model with torch on a device, or exported with onnxruntime."""

    def __init__(self, name: str, device: Any, workdir: Path) -> None:
        self.name, self.device, self.workdir = name, device, workdir

    def superpoint(self, model: Any) -> Callable[[Any], dict[str, Any]]:
        """image [H, W] uint8 -> keypoints [N, 2], scores [N], descriptors [D, N] (numpy)."""
        if self.name == "torch":
            import torch

            model = model.to(self.device)

            def run_torch(image: Any) -> dict[str, Any]:
                tensor = torch.from_numpy(image)[None, None].to(self.device).float() / 255.0
                return {k: v[0].cpu().numpy() for k, v in model.extract(tensor).items()}

            return run_torch
        from superglue_ros.models.onnx_export import export_superpoint
        from superglue_ros.pipeline.onnx_runtime import OnnxSuperPointFrontend, open_session

        path = export_superpoint(model, self.workdir / "superpoint.onnx")
        session, _ = open_session(path, "superpoint", {}, str(self.device))
        frontend = OnnxSuperPointFrontend(session, model.conf)

        def run_onnx(image: Any) -> dict[str, Any]:
            features = frontend.extract(image)
            return {
                "keypoints": features.keypoints,
                "scores": features.scores,
                "descriptors": features.descriptors.T,
            }

        return run_onnx

    def superglue(self, model: Any, data: dict[str, Any]) -> dict[str, Any]:
        """One pair (B = 1, numpy inputs) -> SuperGlue.match's outputs for it (numpy)."""
        import numpy as np
        import torch

        if self.name == "torch":
            model = model.to(self.device)
            tensors = {
                k: torch.from_numpy(v)[None].to(self.device)
                if k.startswith(("key", "sco", "des"))
                else v
                for k, v in data.items()
            }
            return {k: v[0].cpu().numpy() for k, v in model.match(tensors).items()}
        from superglue_ros.models.onnx_export import export_superglue
        from superglue_ros.models.onnx_format import SUPERGLUE_OUTPUTS
        from superglue_ros.pipeline.onnx_runtime import open_session

        path = export_superglue(model, self.workdir / "superglue.onnx")
        session, _ = open_session(path, "superglue", {}, str(self.device))
        feeds = {}
        for i in (0, 1):
            count = len(data[f"scores{i}"])
            feeds[f"keypoints{i}"] = data[f"keypoints{i}"][None]
            feeds[f"scores{i}"] = data[f"scores{i}"][None]
            feeds[f"descriptors{i}"] = data[f"descriptors{i}"][None]
            feeds[f"image_size{i}"] = np.array([data[f"image_size{i}"]], np.float32)
            feeds[f"mask{i}"] = np.ones((1, count), bool)
        feeds["match_threshold"] = np.array(model.conf["match_threshold"], np.float32)
        outputs = session.run(list(SUPERGLUE_OUTPUTS), feeds)
        return {name: value[0] for name, value in zip(SUPERGLUE_OUTPUTS, outputs, strict=True)}


def load_fixture(path: Path) -> dict[str, Any]:
    """All arrays of an .npz fixture, with 'config' parsed from JSON."""
    import numpy as np

    if not path.is_file():
        raise FileNotFoundError(f"fixture {path} does not exist")
    try:
        with np.load(path) as npz:
            fixture = {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a readable .npz fixture: {error}") from error
    if "config" not in fixture:
        raise ValueError(f"{path} has no 'config' entry")
    fixture["config"] = json.loads(str(fixture["config"]))
    fixture["path"] = path
    return fixture


def fixture_weights(fixture: dict[str, Any]) -> dict[str, Any]:
    import torch

    state = {
        key[len("weights/") :]: torch.from_numpy(value)
        for key, value in fixture.items()
        if key.startswith("weights/")
    }
    if not state:
        raise ValueError(f"{fixture['path']} holds no weights/<name> entries")
    return state


def _known(config: dict[str, Any], defaults: dict[str, Any], what: str) -> dict[str, Any]:
    extra = sorted(set(config) - set(defaults))
    if extra:
        print(f"{what}: ignoring fixture config keys {', '.join(extra)}")
    return {key: value for key, value in config.items() if key in defaults}


# --------------------------------------------------------------------------- SuperPoint


def check_superpoint(fixture: dict[str, Any], runtime: Runtime) -> bool:
    import numpy as np

    from superglue_ros.models.superpoint import SuperPoint
    from superglue_ros.models.weights import build_superpoint

    conf = _known(fixture["config"], SuperPoint.default_conf, "superpoint")
    model = build_superpoint(fixture_weights(fixture), conf, str(fixture["path"]))
    extract = runtime.superpoint(model)
    images = sorted(
        (int(key[5:]), key) for key in fixture if key.startswith("image") and key[5:].isdigit()
    )
    if not images:
        raise ValueError(f"{fixture['path']} holds no image<i> entries")
    ok = True
    for index, key in images:
        ours = extract(np.ascontiguousarray(fixture[key], dtype=np.uint8))
        result = compare_keypoints(
            reference={
                "keypoints": fixture[f"out{index}/keypoints"],
                "scores": fixture[f"out{index}/scores"],
                "descriptors": fixture[f"out{index}/descriptors"],
            },
            ours=ours,
            threshold=float(model.conf["keypoint_threshold"]),
            limit=int(model.conf["max_keypoints"]),
        )
        ok &= result["pass"]
        print(
            f"superpoint {key}: keypoints ref {result['n_ref']} ours {result['n_ours']} "
            f"common {result['n_common']} ({result['agreement'] * 100:.3f}%), "
            f"differing {result['n_diff']} (at score ties {result['n_tie']}); "
            f"max score diff {result['max_score_diff']:.3e}; "
            f"min descriptor cosine {result['min_cosine']:.7f} "
            f"-> {'PASS' if result['pass'] else 'FAIL'}"
        )
    print(f"superpoint: {'PASS' if ok else 'FAIL'}")
    return ok


def compare_keypoints(
    reference: dict[str, Any], ours: dict[str, Any], threshold: float, limit: int
) -> dict[str, Any]:
    """Keypoint set agreement, score and descriptor differences on common keypoints.

    reference / ours: keypoints [N, 2], scores [N], descriptors [D, N] (numpy).
    """
    import numpy as np

    def index(kpts: Any) -> dict[tuple[int, int], int]:
        return {(int(round(x)), int(round(y))): i for i, (x, y) in enumerate(kpts)}

    ref_at, our_at = index(reference["keypoints"]), index(ours["keypoints"])
    common = sorted(set(ref_at) & set(our_at))
    ref_only = [(p, float(reference["scores"][ref_at[p]])) for p in set(ref_at) - set(our_at)]
    our_only = [(p, float(ours["scores"][our_at[p]])) for p in set(our_at) - set(ref_at)]
    n_ref = len(ref_at)
    cutoffs = [threshold]
    if 0 <= limit <= n_ref and n_ref:
        cutoffs.append(float(np.min(reference["scores"])))
    n_tie = sum(1 for _, s in ref_only + our_only if min(abs(s - c) for c in cutoffs) <= SCORE_TIE)
    n_diff = max(len(ref_only), len(our_only))
    rows_ref = [ref_at[p] for p in common]
    rows_our = [our_at[p] for p in common]
    if common:
        score_diff = float(np.max(np.abs(reference["scores"][rows_ref] - ours["scores"][rows_our])))
        d_ref = reference["descriptors"][:, rows_ref].astype(np.float64)
        d_our = ours["descriptors"][:, rows_our].astype(np.float64)
        cosine = np.sum(d_ref * d_our, axis=0) / (
            np.linalg.norm(d_ref, axis=0) * np.linalg.norm(d_our, axis=0) + 1e-12
        )
        min_cosine = float(np.min(cosine))
    else:
        score_diff, min_cosine = 0.0, 1.0
    set_ok = n_diff <= KEYPOINT_DIFF_FRACTION * max(n_ref, 1) and n_tie == len(ref_only) + len(
        our_only
    )
    passed = set_ok and score_diff <= SCORE_TOL and min_cosine >= COSINE_MIN
    return {
        "n_ref": n_ref,
        "n_ours": len(our_at),
        "n_common": len(common),
        "agreement": len(common) / n_ref if n_ref else float(not our_at),
        "n_diff": n_diff,
        "n_tie": n_tie,
        "max_score_diff": score_diff,
        "min_cosine": min_cosine,
        "pass": bool(passed),
    }


# --------------------------------------------------------------------------- SuperGlue


def check_superglue(fixture: dict[str, Any], runtime: Runtime) -> bool:
    import numpy as np

    from superglue_ros.models.superglue import SuperGlue
    from superglue_ros.models.weights import build_superglue

    conf = _known(fixture["config"], SuperGlue.default_conf, "superglue")
    model = build_superglue(fixture_weights(fixture), conf, str(fixture["path"]))

    def array(key: str) -> Any:
        return np.ascontiguousarray(fixture[key], dtype=np.float32)

    data = {}
    for i in (0, 1):
        data[f"keypoints{i}"] = array(f"in/keypoints{i}")
        data[f"scores{i}"] = array(f"in/scores{i}")
        data[f"descriptors{i}"] = array(f"in/descriptors{i}")
        data[f"image_size{i}"] = tuple(int(v) for v in fixture[f"image_size{i}"])
    out = runtime.superglue(model, data)
    threshold = float(model.conf["match_threshold"])

    la_diff = max_abs_diff(out["log_assignment"], fixture["log_assignment"])
    rows = []
    ok = la_diff <= LOG_ASSIGNMENT_TOL
    for side in ("0", "1"):
        ours, ref = out[f"matches{side}"], fixture[f"matches{side}"]
        ref_scores = fixture[f"matching_scores{side}"]
        differ = np.flatnonzero(ours != ref)
        near = np.abs(ref_scores[differ] - threshold) <= MATCH_SCORE_MARGIN
        ok &= bool(np.all(near))
        rows.append(
            f"matches{side} agree {len(ref) - len(differ)}/{len(ref)} "
            f"(differ {len(differ)}, of which near threshold {int(near.sum())})"
        )
    n_matches = int((fixture["matches0"] >= 0).sum())
    print(
        f"superglue: max log_assignment diff {la_diff:.3e}; " + "; ".join(rows) + f"; "
        f"reference matches {n_matches}, ours {int((out['matches0'] >= 0).sum())}"
    )
    print(f"superglue: {'PASS' if ok else 'FAIL'}")
    return bool(ok)


def max_abs_diff(a: Any, b: Any) -> float:
    """Max |a - b|, where equal infinities count as equal and a shape mismatch as inf."""
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    diff = np.where(same, 0.0, np.abs(a - b))
    diff = np.where(np.isnan(diff), np.inf, diff)
    return float(diff.max()) if diff.size else 0.0
