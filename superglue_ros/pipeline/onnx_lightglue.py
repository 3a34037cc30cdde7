"""LightGlue on its exported ONNX graphs: one frame against K keyframes (``runtime: onnxruntime``).

Two forms (``models/onnx_lightglue.py``):

* fixed: one graph, every layer, no early exit or pruning (what TensorRT runs);
* adaptive: per-stage graphs, and this module takes LightGlue's data-dependent
  decisions between them exactly as ``models/lightglue.py``'s batched forward
  does: after each layer every pair checks its own early-exit criterion and
  leaves the batch when it may stop (its assignment is computed at that layer),
  every pair prunes its confidently unmatchable points, and the batch is
  repacked to the longest remaining pair. So a pair uses the layers it uses in
  torch (``last_layers``), and easy pairs cost fewer layers.

Keyframes are zero-padded to the longest, ``mask1`` marking real points. Needs
numpy and onnxruntime only: the confidence thresholds and pruning point counts
are read from the graphs' metadata.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from .params import check_runtime_changes
from .types import Features, PairMatches


@dataclass
class PairBatch:
    """The pairs still running, padded (numpy): as models.lightglue._Batch."""

    pairs: np.ndarray  # [b] original pair index
    desc0: np.ndarray  # [b, n, C]
    desc1: np.ndarray
    enc0: np.ndarray  # [2, b, 1, n, c]
    enc1: np.ndarray
    valid0: np.ndarray  # [b, n] bool
    valid1: np.ndarray
    index0: np.ndarray  # [b, n] original point index (-1 on padding)
    index1: np.ndarray
    total: np.ndarray  # [b] real points of both sides before pruning

    @classmethod
    def start(
        cls, data: Mapping[str, np.ndarray], encoded: Sequence[tuple[np.ndarray, np.ndarray]]
    ) -> PairBatch:
        """Every pair of a padded batch, its real points (``mask<side>``) valid; encoded:
        (descriptors, encodings) of side 0, then 1."""
        sides: dict[str, np.ndarray] = {}
        for side, (desc, enc) in zip("01", encoded, strict=True):
            valid = data[f"mask{side}"]
            sides[f"desc{side}"], sides[f"enc{side}"], sides[f"valid{side}"] = desc, enc, valid
            sides[f"index{side}"] = np.where(valid, np.arange(valid.shape[1])[None], -1)
        total = sides["valid0"].sum(1) + sides["valid1"].sum(1)
        return cls(pairs=np.arange(len(total)), total=total, **sides)

    def select(self, keep: np.ndarray) -> PairBatch:
        """The pairs where keep ([b] bool) is True."""
        values = {}
        for field in fields(self):
            value = getattr(self, field.name)
            values[field.name] = value[:, keep] if field.name.startswith("enc") else value[keep]
        return PairBatch(**values)


def repack(
    keep: np.ndarray, desc: np.ndarray, enc: np.ndarray, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each pair's kept points moved to the front (order kept), trimmed to the longest."""
    counts = keep.sum(1)
    width = int(counts.max()) if counts.size else 0
    order = np.argsort(~keep, axis=1, kind="stable")[:, :width]
    valid = np.arange(width)[None] < counts[:, None]
    desc = np.take_along_axis(desc, order[..., None], 1)
    enc = np.take_along_axis(enc, order[None, :, None, :, None], 3)
    index = np.where(valid, np.take_along_axis(index, order, 1), -1)
    return desc, enc, valid, index


def pad_sides(frame: Features, keyframes: Sequence[Features], dim: int) -> dict[str, np.ndarray]:
    """The frame repeated as side 0 and the keyframes zero-padded as side 1 (masks)."""
    count = len(keyframes)
    width = max(len(k) for k in keyframes)
    kpts1 = np.zeros((count, width, 2), np.float32)
    desc1 = np.zeros((count, width, dim), np.float32)
    mask1 = np.zeros((count, width), bool)
    for i, keyframe in enumerate(keyframes):
        size = len(keyframe)
        kpts1[i, :size] = np.asarray(keyframe.keypoints, np.float32).reshape(-1, 2)
        desc1[i, :size] = keyframe.descriptors
        mask1[i, :size] = True
    num0 = len(frame)
    return {
        "keypoints0": np.broadcast_to(
            np.asarray(frame.keypoints, np.float32).reshape(-1, 2), (count, num0, 2)
        ).copy(),
        "descriptors0": np.broadcast_to(frame.descriptors, (count, num0, dim)).astype(np.float32),
        "image_size0": np.tile(np.float32(frame.image_size[::-1]), (count, 1)),
        "mask0": np.ones((count, num0), bool),
        "keypoints1": kpts1,
        "descriptors1": desc1,
        "image_size1": np.array([k.image_size[::-1] for k in keyframes], np.float32),
        "mask1": mask1,
    }


class OnnxLightGlueMatcher:
    """Matcher on the fixed graph (sessions = {"fixed": s}) or the adaptive stages
    (sessions = {"encode": s, "layer_<i>": s, "assign_<i>": s})."""

    def __init__(
        self,
        sessions: Mapping[str, Any],
        config: Mapping[str, Any],
        conf: Mapping[str, Any],
        device_kind: str = "cpu",
    ) -> None:
        self.sessions = dict(sessions)
        self.form = "fixed" if "fixed" in self.sessions else "adaptive"
        self.graph_config = dict(config)
        self.conf = dict(conf)  # filter_threshold, depth_confidence, width_confidence
        self.prune_above = int(config["pruning_min_kpts"][device_kind])
        self.last_layers: list[int] = []

    @property
    def description(self) -> str:
        provider = next(iter(self.sessions.values())).get_providers()[0]
        features = self.graph_config["features"]
        return f"lightglue({features}, {self.form}) on onnxruntime {provider} fp32"

    def update_params(self, changes: Mapping[str, Any]) -> None:
        """Apply run-time changes (lightglue.filter_threshold); other names are ignored."""
        checked = check_runtime_changes(changes)
        if "lightglue.filter_threshold" in checked:
            self.conf["filter_threshold"] = float(checked["lightglue.filter_threshold"])

    def _check(self, features: Features) -> None:
        descriptors = np.asarray(features.descriptors)
        dim = int(self.graph_config["input_dim"])
        if descriptors.ndim != 2 or descriptors.shape[1] != dim or descriptors.dtype == np.uint8:
            raise ValueError(
                f"LightGlue ({self.graph_config['features']} weights) needs float descriptors "
                f"[N, {dim}], got {descriptors.dtype} {descriptors.shape}"
            )

    def match(self, frame: Features, keyframes: Sequence[Features]) -> list[PairMatches]:
        """One PairMatches per keyframe, in the order given (one padded batch)."""
        for features in (frame, *keyframes):
            self._check(features)
        if not keyframes:
            self.last_layers = []
            return []
        count, num0 = len(keyframes), len(frame)
        matches0 = np.full((count, num0), -1, np.int64)
        scores0 = np.zeros((count, num0), np.float32)
        layers = np.zeros(count, np.int64)
        real = [i for i, k in enumerate(keyframes) if len(k) and num0]
        if real:
            data = pad_sides(
                frame, [keyframes[i] for i in real], int(self.graph_config["input_dim"])
            )
            out = self._run(data)
            matches0[real], scores0[real], layers[real] = out
        self.last_layers = [int(v) for v in layers]
        return PairMatches.from_batch(matches0, scores0, self.last_layers)

    def _threshold(self) -> np.ndarray:
        return np.array(self.conf["filter_threshold"], np.float32)

    def _run(self, data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.form == "fixed":
            matches0, scores0 = self.sessions["fixed"].run(
                ["matches0", "matching_scores0"], {**data, "filter_threshold": self._threshold()}
            )
            layers = np.full(len(matches0), int(self.graph_config["n_layers"]), np.int64)
            return matches0, scores0, layers
        return self._run_adaptive(data)

    def _encode(self, data: dict[str, np.ndarray], side: str) -> tuple[np.ndarray, np.ndarray]:
        feeds = {name: data[f"{name}{side}"] for name in ("keypoints", "descriptors", "image_size")}
        desc, enc = self.sessions["encode"].run(["desc", "encoding"], feeds)
        return desc, enc

    def _run_adaptive(self, data: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        """models.lightglue.BatchedLightGlue._run over the stage graphs."""
        count, num0 = data["mask0"].shape
        out = (
            np.full((count, num0), -1, np.int64),
            np.zeros((count, num0), np.float32),
            np.zeros(count, np.int64),
        )
        batch = PairBatch.start(data, [self._encode(data, side) for side in "01"])
        last = int(self.graph_config["n_layers"]) - 1
        for i in range(last + 1):
            if batch.pairs.size == 0:
                break
            heads = self._layer(i, batch)
            if i == last:
                self._finish(i, batch, out)
                break
            batch = self._exit_and_prune(i, batch, heads, out)
        return out

    def _layer(self, i: int, batch: PairBatch) -> list[np.ndarray]:
        """Layer i in place on batch.desc0 / desc1; returns the heads (token0, token1,
        matchability0, matchability1), none after the last layer."""
        feeds = {
            "desc0": batch.desc0,
            "desc1": batch.desc1,
            "encoding0": batch.enc0,
            "encoding1": batch.enc1,
            "mask0": batch.valid0,
            "mask1": batch.valid1,
        }
        outputs = self.sessions[f"layer_{i}"].run(None, feeds)
        batch.desc0, batch.desc1 = outputs[0], outputs[1]
        return outputs[2:]

    def _exit_and_prune(
        self, i: int, batch: PairBatch, heads: list[np.ndarray], out: tuple[np.ndarray, ...]
    ) -> PairBatch:
        token0, token1, match0, match1 = heads
        threshold = np.float32(self.graph_config["confidence_thresholds"][i])
        depth = float(self.conf["depth_confidence"])
        if depth > 0:
            unsure = ((token0 < threshold) & batch.valid0).sum(1) + (
                (token1 < threshold) & batch.valid1
            ).sum(1)
            confident = np.float32(1.0) - unsure.astype(np.float32) / batch.total.astype(np.float32)
            stop = confident > np.float32(depth)
            if stop.any():
                self._finish(i, batch.select(stop), out)
                keep = ~stop
                batch = batch.select(keep)
                token0, token1 = token0[keep], token1[keep]
                match0, match1 = match0[keep], match1[keep]
                if batch.pairs.size == 0:
                    return batch
        else:
            token0 = token1 = None
        if float(self.conf["width_confidence"]) > 0:
            batch = self._prune(i, batch, (token0, token1), (match0, match1))
            emptied = ~batch.valid0.any(1) | ~batch.valid1.any(1)
            if emptied.any():
                self._finish(i, batch.select(emptied), out)
                batch = batch.select(~emptied)
        return batch

    def _prune(
        self,
        i: int,
        batch: PairBatch,
        tokens: tuple[np.ndarray | None, np.ndarray | None],
        matchability: tuple[np.ndarray, np.ndarray],
    ) -> PairBatch:
        """kornia's get_pruning_mask per side (a side prunes while it has more than
        prune_above points), then repack."""
        width = np.float32(1.0 - float(self.conf["width_confidence"]))
        threshold = np.float32(self.graph_config["confidence_thresholds"][i])
        sides = []
        for side, token, score in zip("01", tokens, matchability, strict=True):
            valid = getattr(batch, f"valid{side}")
            keep = score > width
            if token is not None:
                keep |= token <= threshold
            prunes = valid.sum(1) > self.prune_above
            keep = valid & (keep | ~prunes[:, None])
            sides.append(
                repack(
                    keep,
                    getattr(batch, f"desc{side}"),
                    getattr(batch, f"enc{side}"),
                    getattr(batch, f"index{side}"),
                )
            )
        batch.desc0, batch.enc0, batch.valid0, batch.index0 = sides[0]
        batch.desc1, batch.enc1, batch.valid1, batch.index1 = sides[1]
        return batch

    def _finish(self, i: int, batch: PairBatch, out: tuple[np.ndarray, ...]) -> None:
        """The assignment at layer i for every pair of batch, written into out."""
        matches_out, scores_out, layers_out = out
        layers_out[batch.pairs] = i + 1
        feeds = {
            "desc0": batch.desc0,
            "desc1": batch.desc1,
            "mask0": batch.valid0,
            "mask1": batch.valid1,
            "filter_threshold": self._threshold(),
        }
        matches0, scores0 = self.sessions[f"assign_{i}"].run(None, feeds)
        for row, pair in enumerate(batch.pairs):
            valid0 = batch.valid0[row]
            if not valid0.any() or not batch.valid1[row].any():
                continue
            index0 = batch.index0[row, valid0]
            found = matches0[row, valid0]
            matched = found >= 0
            matches_out[pair, index0[matched]] = batch.index1[row, found[matched]]
            scores_out[pair, index0] = np.where(matched, scores0[row, valid0], 0.0)

    def warmup(self, points: int = 1024, keyframes: int = 4) -> None:
        """Run every graph once on random points (TensorRT builds its engines here)."""
        rng = np.random.default_rng(0)
        dim = int(self.graph_config["input_dim"])

        def features() -> Features:
            desc = rng.standard_normal((points, dim)).astype(np.float32)
            desc /= np.linalg.norm(desc, axis=1, keepdims=True)
            kpts = (rng.random((points, 2)) * [639, 479]).astype(np.float32)
            return Features(kpts, np.ones(points, np.float32), desc, (480, 640))

        frame = features()
        self.match(frame, [features() for _ in range(keyframes)])
        if self.form == "adaptive":
            # Early exit may skip later layers on random points: touch each once.
            batch_data = pad_sides(frame, [frame], dim)
            desc0, enc0 = self._encode(batch_data, "0")
            mask = batch_data["mask0"]
            for i in range(int(self.graph_config["n_layers"])):
                feeds = {"desc0": desc0, "desc1": desc0, "encoding0": enc0, "encoding1": enc0}
                self.sessions[f"layer_{i}"].run(None, feeds | {"mask0": mask, "mask1": mask})
                self.sessions[f"assign_{i}"].run(
                    None,
                    {
                        "desc0": desc0,
                        "desc1": desc0,
                        "mask0": mask,
                        "mask1": mask,
                        "filter_threshold": self._threshold(),
                    },
                )
