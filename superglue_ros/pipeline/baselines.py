"""Classical baselines: ORB and SIFT frontends and a mutual nearest neighbour matcher.

They need no weights and no GPU, which makes them the reference the learned
pipeline is compared against and the fast path for tests. OpenCV is imported when
one is built, so the learned pipeline also runs where OpenCV is not installed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .params import PIPELINE_SPECS, check_runtime_changes
from .types import DESCRIPTOR_BINARY, DESCRIPTOR_FLOAT_SIFT, Features, PairMatches

if TYPE_CHECKING:
    import cv2

ORB_DESCRIPTOR_BYTES = 32
SIFT_DESCRIPTOR_DIM = 128
# Constructor defaults are the parameter table's (defaults live there only).
DEFAULT_MAX_KEYPOINTS = int(PIPELINE_SPECS["classical.max_keypoints"].default)
DEFAULT_RATIO_TEST = float(PIPELINE_SPECS["mnn.ratio_test"].default)


def features_from_opencv(
    keypoints: Sequence[cv2.KeyPoint],
    descriptors: np.ndarray | None,
    image_size: tuple[int, int],
    empty_descriptors: np.ndarray,
    descriptor_kind: str,
) -> Features:
    """Features from OpenCV's detectAndCompute output; scores are keypoint responses.

    empty_descriptors: [0, D] array of the right dtype, used when nothing was found
    (OpenCV then returns None instead of an empty array).
    """
    if descriptors is None or len(keypoints) == 0:
        return Features(
            keypoints=np.zeros((0, 2), np.float32),
            scores=np.zeros(0, np.float32),
            descriptors=empty_descriptors,
            image_size=image_size,
            descriptor_kind=descriptor_kind,
        )
    return Features(
        keypoints=np.array([kp.pt for kp in keypoints], dtype=np.float32).reshape(-1, 2),
        scores=np.array([kp.response for kp in keypoints], dtype=np.float32),
        descriptors=descriptors,
        image_size=image_size,
        descriptor_kind=descriptor_kind,
    )


def keep_strongest(features: Features, max_keypoints: int) -> Features:
    """At most max_keypoints keypoints, highest score first."""
    if len(features) <= max_keypoints:
        return features
    keep = np.argsort(-features.scores, kind="stable")[:max_keypoints]
    return dataclasses.replace(
        features,
        keypoints=features.keypoints[keep],
        scores=features.scores[keep],
        descriptors=features.descriptors[keep],
    )


class OpenCVFrontend:
    """An OpenCV Feature2D detector-descriptor as a Frontend, keeping the strongest keypoints.

    The cut is needed: ORB keeps ties at each pyramid level's cut-off and SIFT
    duplicates keypoints with several orientations, so both can exceed nfeatures.
    """

    description = "opencv"

    def __init__(
        self, detector: cv2.Feature2D, max_keypoints: int, empty: np.ndarray, descriptor_kind: str
    ) -> None:
        """empty: the [0, D] descriptors of the right dtype for an image without keypoints."""
        self.max_keypoints = max_keypoints
        self._detector = detector
        self._empty = empty
        self._descriptor_kind = descriptor_kind

    def extract(self, image: np.ndarray) -> Features:
        """image: [H, W] uint8 grayscale."""
        keypoints, descriptors = self._detector.detectAndCompute(image, None)
        features = features_from_opencv(
            keypoints, descriptors, image.shape[:2], self._empty, self._descriptor_kind
        )
        return keep_strongest(features, self.max_keypoints)


class OrbFrontend(OpenCVFrontend):
    """ORB keypoints with 256-bit binary descriptors: uint8 [N, 32]."""

    description = "orb"

    def __init__(self, max_keypoints: int = DEFAULT_MAX_KEYPOINTS) -> None:
        import cv2

        empty = np.zeros((0, ORB_DESCRIPTOR_BYTES), np.uint8)
        orb = cv2.ORB_create(nfeatures=max_keypoints)
        super().__init__(orb, max_keypoints, empty, DESCRIPTOR_BINARY)


class SiftFrontend(OpenCVFrontend):
    """SIFT keypoints with float32 [N, 128] descriptors (OpenCV's scaling, norm ~512)."""

    description = "sift"

    def __init__(self, max_keypoints: int = DEFAULT_MAX_KEYPOINTS) -> None:
        import cv2

        empty = np.zeros((0, SIFT_DESCRIPTOR_DIM), np.float32)
        sift = cv2.SIFT_create(nfeatures=max_keypoints)
        super().__init__(sift, max_keypoints, empty, DESCRIPTOR_FLOAT_SIFT)


def unpack_bits(descriptors: np.ndarray) -> np.ndarray:
    """uint8 [N, B] -> float32 [N, 8B] of 0/1, so Hamming distances become a matmul."""
    return np.unpackbits(descriptors, axis=1).astype(np.float32)


def hamming_distances(descriptors0: np.ndarray, descriptors1: np.ndarray) -> np.ndarray:
    """uint8 [N, B], [M, B] -> float32 [N, M] number of differing bits."""
    bits0, bits1 = unpack_bits(descriptors0), unpack_bits(descriptors1)
    # |a xor b| = |a| + |b| - 2 a.b for 0/1 vectors.
    common = bits0 @ bits1.T
    return bits0.sum(1, keepdims=True) + bits1.sum(1)[None] - 2.0 * common


def l2_distances(descriptors0: np.ndarray, descriptors1: np.ndarray) -> np.ndarray:
    """float [N, D], [M, D] -> float32 [N, M] Euclidean distances."""
    d0 = descriptors0.astype(np.float32, copy=False)
    d1 = descriptors1.astype(np.float32, copy=False)
    squared = (d0**2).sum(1, keepdims=True) + (d1**2).sum(1)[None] - 2.0 * (d0 @ d1.T)
    return np.sqrt(np.maximum(squared, 0.0))


def match_scores(descriptors0: np.ndarray, descriptors1: np.ndarray) -> np.ndarray:
    """Confidence in [0, 1] of matched descriptor pairs [L, D], [L, D] -> [L] float32.

    Binary: fraction of equal bits. Float: cosine similarity clipped at 0, which
    does not depend on how a descriptor family scales its vectors.
    """
    if descriptors0.dtype == np.uint8:
        differing = np.unpackbits(descriptors0 ^ descriptors1, axis=1).sum(1)
        return (1.0 - differing / (8 * descriptors0.shape[1])).astype(np.float32)
    d0 = descriptors0.astype(np.float32, copy=False)
    d1 = descriptors1.astype(np.float32, copy=False)
    norms = np.linalg.norm(d0, axis=1) * np.linalg.norm(d1, axis=1)
    cosine = (d0 * d1).sum(1) / np.maximum(norms, 1e-12)
    return np.clip(cosine, 0.0, 1.0).astype(np.float32)


def mutual_nearest_neighbours(distances: np.ndarray, ratio: float) -> np.ndarray:
    """[N, M] distances -> [N] int64 index of the mutual nearest neighbour, -1 if none.

    ratio > 0 also requires best < ratio * second best (Lowe), checked from side 0.
    """
    num0, num1 = distances.shape
    matches0 = np.full(num0, -1, dtype=np.int64)
    if num0 == 0 or num1 == 0:
        return matches0
    nearest0 = distances.argmin(1)
    nearest1 = distances.argmin(0)
    mutual = nearest1[nearest0] == np.arange(num0)
    if ratio > 0 and num1 >= 2:
        two_best = np.partition(distances, 1, axis=1)[:, :2]
        mutual &= two_best[:, 0] < ratio * two_best[:, 1]
    matches0[mutual] = nearest0[mutual]
    return matches0


class MutualNearestNeighbourMatcher:
    """Mutual nearest neighbours: Hamming for uint8 descriptors, L2 for float ones."""

    def __init__(self, ratio_test: float = DEFAULT_RATIO_TEST) -> None:
        self.ratio_test = float(ratio_test)

    @property
    def description(self) -> str:
        return f"mnn(ratio {self.ratio_test:g})" if self.ratio_test > 0 else "mnn"

    def update_params(self, changes: Mapping[str, Any]) -> None:
        """Apply run-time changes; names this matcher does not use are ignored.

        ValueError (nothing applied) for a bad change, see check_runtime_changes.
        """
        checked = check_runtime_changes(changes)
        if "mnn.ratio_test" in checked:
            self.ratio_test = float(checked["mnn.ratio_test"])

    def match(self, frame: Features, keyframes: Sequence[Features]) -> list[PairMatches]:
        """One PairMatches per keyframe, in the order given.

        The distances to all keyframes come from one matrix product; the mutual
        check then runs per pair, so a keyframe never competes with another one.
        """
        if not keyframes:
            return []
        for keyframe in keyframes:
            check_compatible_descriptors(frame.descriptors, keyframe.descriptors)
        stacked = np.concatenate([k.descriptors for k in keyframes], axis=0)
        if frame.descriptors.dtype == np.uint8:
            all_distances = hamming_distances(frame.descriptors, stacked)
        else:
            all_distances = l2_distances(frame.descriptors, stacked)
        bounds = np.cumsum([0] + [len(k) for k in keyframes])
        return [
            self._pair(frame, keyframe, all_distances[:, start:end])
            for keyframe, start, end in zip(keyframes, bounds[:-1], bounds[1:], strict=True)
        ]

    def _pair(self, frame: Features, keyframe: Features, distances: np.ndarray) -> PairMatches:
        matches0 = mutual_nearest_neighbours(distances, self.ratio_test)
        scores0 = np.zeros(len(matches0), dtype=np.float32)
        matched = np.flatnonzero(matches0 >= 0)
        if matched.size:
            scores0[matched] = match_scores(
                frame.descriptors[matched], keyframe.descriptors[matches0[matched]]
            )
        return PairMatches(matches0=matches0, scores0=scores0)


def check_compatible_descriptors(descriptors0: np.ndarray, descriptors1: np.ndarray) -> None:
    """Raise ValueError unless both sides are binary, or both float, of one length."""
    binary0, binary1 = descriptors0.dtype == np.uint8, descriptors1.dtype == np.uint8
    if binary0 != binary1 or descriptors0.shape[1] != descriptors1.shape[1]:
        raise ValueError(
            "cannot match descriptors of different kinds: "
            f"{descriptors0.dtype} [*, {descriptors0.shape[1]}] vs "
            f"{descriptors1.dtype} [*, {descriptors1.shape[1]}]"
        )
