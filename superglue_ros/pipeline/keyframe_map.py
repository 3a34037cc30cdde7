"""The keyframe map: keyframes that left the sliding buffer, kept compact for loop closure.

Each map keyframe keeps what verification needs: keypoints (float32), detector
scores (float16), descriptors (float16 for float descriptors, the raw bytes for
binary ones such as ORB), its track ids (int64), depths when the input had them
(float16) and its place-recognition vector (a sparse bag of words: word ids and
weights, see pipeline.place_recognition).

Memory per keyframe (``MapKeyframe.nbytes``), for N keypoints of D-dimensional
float descriptors and W distinct visual words:
``N * (8 + 2 + 2 * D + 8) + W * (4 + 4)`` bytes, plus 2 N with depths. ALIKED
(N = 1024, D = 128, W <= 1024): about 280 KB, so the default
``map.max_keyframes`` of 500 keeps at most about 140 MB; ORB (N = 1000, 32 bytes):
about 58 KB.

Eviction rule: when a keyframe arrives at a full map, the oldest keyframe whose
bag of words is closest to its next-newer neighbour's goes (the most redundant
one: a robot standing still adds near copies), except that the newest
``map.keep_newest`` keyframes are never chosen; with no bag of words the oldest
goes. The map never holds more than ``map.max_keyframes``.

Saved maps are ``.npz`` files (``save`` / ``load``) with a format version; a
damaged or foreign file is refused with a MapFileError naming the file and the
problem.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .place_recognition import read_npz
from .types import DESCRIPTOR_BINARY, Features

MAP_FORMAT = "superglue_ros.keyframe_map"
MAP_VERSION = 1


class MapFileError(ValueError):
    """A map file that cannot be read back (damaged, another format or version)."""


@dataclass
class MapKeyframe:
    """One keyframe of the map (compact; see the module docstring for the sizes).

    keypoints: [N, 2] float32, scores: [N] float16, descriptors: [N, D] float16
    (uint8 bytes for binary descriptors), track_ids: [N] int64, depths: [N]
    float16 metres or None, words / weights: the sparse bag of words (int32 word
    ids, float32 weights) or empty when no vocabulary is loaded.
    """

    keyframe_id: int
    stamp_ns: int
    image_size: tuple[int, int]
    descriptor_kind: str
    keypoints: np.ndarray
    scores: np.ndarray
    descriptors: np.ndarray
    track_ids: np.ndarray
    depths: np.ndarray | None = None
    words: np.ndarray | None = None
    weights: np.ndarray | None = None

    @classmethod
    def compact(
        cls,
        keyframe_id: int,
        stamp_ns: int,
        features: Features,
        track_ids: np.ndarray,
        depths: np.ndarray | None = None,
        bow: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> MapKeyframe:
        """A map keyframe from full-precision features (descriptors become float16)."""
        binary = features.descriptor_kind == DESCRIPTOR_BINARY
        words, weights = bow if bow is not None else (None, None)
        return cls(
            keyframe_id=int(keyframe_id),
            stamp_ns=int(stamp_ns),
            image_size=(int(features.image_size[0]), int(features.image_size[1])),
            descriptor_kind=features.descriptor_kind,
            keypoints=np.asarray(features.keypoints, np.float32),
            scores=np.asarray(features.scores, np.float16),
            descriptors=np.asarray(features.descriptors, np.uint8 if binary else np.float16),
            track_ids=np.asarray(track_ids, np.int64),
            depths=None if depths is None else np.asarray(depths, np.float16),
            words=None if words is None else np.asarray(words, np.int32),
            weights=None if weights is None else np.asarray(weights, np.float32),
        )

    def features(self) -> Features:
        """The keyframe as matcher input (float32 descriptors again)."""
        binary = self.descriptor_kind == DESCRIPTOR_BINARY
        return Features(
            keypoints=self.keypoints,
            scores=self.scores.astype(np.float32),
            descriptors=self.descriptors if binary else self.descriptors.astype(np.float32),
            image_size=self.image_size,
            descriptor_kind=self.descriptor_kind,
        )

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays of this keyframe."""
        arrays = (self.keypoints, self.scores, self.descriptors, self.track_ids)
        optional = (self.depths, self.words, self.weights)
        return sum(a.nbytes for a in arrays) + sum(a.nbytes for a in optional if a is not None)


def bow_similarity(a: MapKeyframe, b: MapKeyframe) -> float:
    """Dot product of two sparse L2-normalised bags of words (0 when either has none)."""
    if a.words is None or b.words is None or a.weights is None or b.weights is None:
        return 0.0
    _, ia, ib = np.intersect1d(a.words, b.words, assume_unique=True, return_indices=True)
    return float(np.dot(a.weights[ia], b.weights[ib]))


class KeyframeMap:
    """At most max_keyframes keyframes, oldest first; see the module docstring for eviction."""

    def __init__(self, max_keyframes: int, keep_newest: int = 0) -> None:
        if max_keyframes < 1:
            raise ValueError(f"map.max_keyframes must be at least 1, got {max_keyframes}")
        self.max_keyframes = int(max_keyframes)
        self.keep_newest = int(keep_newest)
        self._keyframes: list[MapKeyframe] = []
        self.evicted = 0  # how many keyframes the bound has dropped so far

    def __len__(self) -> int:
        return len(self._keyframes)

    def __iter__(self) -> Iterator[MapKeyframe]:
        return iter(list(self._keyframes))

    def __contains__(self, keyframe_id: object) -> bool:
        return any(k.keyframe_id == keyframe_id for k in self._keyframes)

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes for k in self._keyframes)

    def get(self, keyframe_id: int) -> MapKeyframe:
        """The keyframe of that id; KeyError saying which ids the map holds."""
        for keyframe in self._keyframes:
            if keyframe.keyframe_id == keyframe_id:
                return keyframe
        span = (
            f"{self._keyframes[0].keyframe_id}..{self._keyframes[-1].keyframe_id}"
            if self._keyframes
            else "none"
        )
        raise KeyError(f"keyframe {keyframe_id} is not in the map (ids held: {span})")

    def add(self, keyframe: MapKeyframe) -> list[int]:
        """Append the newest keyframe; return the ids evicted to stay within the bound."""
        self._keyframes.append(keyframe)
        evicted = []
        while len(self._keyframes) > self.max_keyframes:
            evicted.append(self._keyframes.pop(self._eviction_index()).keyframe_id)
        self.evicted += len(evicted)
        return evicted

    def _eviction_index(self) -> int:
        """The oldest most redundant keyframe outside the protected newest ones."""
        candidates = len(self._keyframes) - max(self.keep_newest, 1)
        if candidates <= 0:
            return 0
        similarity = [
            bow_similarity(self._keyframes[i], self._keyframes[i + 1]) for i in range(candidates)
        ]
        # argmax returns the first (oldest) of equal scores; all 0 without words: the oldest.
        return int(np.argmax(similarity))

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write the map as one .npz file (arrays concatenated, offsets per keyframe)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        keyframes = self._keyframes
        counts = np.array([len(k.keypoints) for k in keyframes], np.int64)
        word_counts = np.array(
            [0 if k.words is None else len(k.words) for k in keyframes], np.int64
        )
        kinds = sorted({k.descriptor_kind for k in keyframes}) or [""]
        if len(kinds) > 1:
            raise ValueError(f"a map holds one descriptor kind, got {kinds}")
        dim = keyframes[0].descriptors.shape[1] if keyframes else 0
        binary = kinds[0] == DESCRIPTOR_BINARY

        def cat(name: str, dtype: type, shape: tuple[int, ...] = ()) -> np.ndarray:
            parts = [getattr(k, name) for k in keyframes if getattr(k, name) is not None]
            return np.concatenate(parts).astype(dtype) if parts else np.zeros((0, *shape), dtype)

        arrays = {
            "format": np.array(MAP_FORMAT),
            "version": np.array(MAP_VERSION),
            "descriptor_kind": np.array(kinds[0]),
            "max_keyframes": np.array(self.max_keyframes),
            "keyframe_ids": np.array([k.keyframe_id for k in keyframes], np.int64),
            "stamps_ns": np.array([k.stamp_ns for k in keyframes], np.int64),
            "image_sizes": np.array([k.image_size for k in keyframes], np.int64).reshape(-1, 2),
            "counts": counts,
            "word_counts": word_counts,
            "has_depths": np.array([k.depths is not None for k in keyframes], bool),
            "keypoints": cat("keypoints", np.float32, (2,)),
            "scores": cat("scores", np.float16),
            "descriptors": cat("descriptors", np.uint8 if binary else np.float16, (dim,)),
            "track_ids": cat("track_ids", np.int64),
            "depths": cat("depths", np.float16),
            "words": cat("words", np.int32),
            "weights": cat("weights", np.float32),
        }
        with path.open("wb") as file:
            np.savez_compressed(file, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path, max_keyframes: int | None = None) -> KeyframeMap:
        """Read a map written by save; MapFileError when it is missing, damaged or foreign.

        max_keyframes: the bound from now on (default: the saved one); a smaller
        bound than the saved map's size evicts by the usual rule.
        """
        path = Path(path)
        arrays = read_npz(path, MapFileError, "keyframe map", "is damaged or not a map")
        if str(arrays.get("format", "")) != MAP_FORMAT:
            raise MapFileError(f"{path} is not a superglue_ros keyframe map")
        version = int(arrays.get("version", -1))
        if version != MAP_VERSION:
            raise MapFileError(
                f"keyframe map {path} has format version {version}; this version reads "
                f"{MAP_VERSION} (build the map again)"
            )
        try:
            keyframes = list(_unpack(arrays))
        except (KeyError, ValueError, IndexError) as error:
            raise MapFileError(f"keyframe map {path} is inconsistent: {error}") from None
        bound = int(arrays["max_keyframes"]) if max_keyframes is None else max_keyframes
        result = cls(bound)
        for keyframe in keyframes:
            result.add(keyframe)
        return result


def _unpack(arrays: dict[str, np.ndarray]) -> Iterator[MapKeyframe]:
    counts, word_counts = arrays["counts"], arrays["word_counts"]
    ends, word_ends = np.cumsum(counts), np.cumsum(word_counts)
    depth_counts = np.where(arrays["has_depths"], counts, 0)
    depth_ends = np.cumsum(depth_counts)
    total = int(ends[-1]) if len(ends) else 0
    for name in ("keypoints", "scores", "descriptors", "track_ids"):
        if len(arrays[name]) != total:
            raise ValueError(f"{name} holds {len(arrays[name])} rows, the counts say {total}")
    if len(arrays["words"]) != (int(word_ends[-1]) if len(word_ends) else 0):
        raise ValueError("words and word_counts disagree")
    kind = str(arrays["descriptor_kind"])
    for i, keyframe_id in enumerate(arrays["keyframe_ids"]):
        rows = slice(int(ends[i] - counts[i]), int(ends[i]))
        words = slice(int(word_ends[i] - word_counts[i]), int(word_ends[i]))
        depths = slice(int(depth_ends[i] - depth_counts[i]), int(depth_ends[i]))
        height, width = (int(v) for v in arrays["image_sizes"][i])
        yield MapKeyframe(
            keyframe_id=int(keyframe_id),
            stamp_ns=int(arrays["stamps_ns"][i]),
            image_size=(height, width),
            descriptor_kind=kind,
            keypoints=arrays["keypoints"][rows],
            scores=arrays["scores"][rows],
            descriptors=arrays["descriptors"][rows],
            track_ids=arrays["track_ids"][rows],
            depths=arrays["depths"][depths] if arrays["has_depths"][i] else None,
            words=arrays["words"][words] if word_counts[i] else None,
            weights=arrays["weights"][words] if word_counts[i] else None,
        )
