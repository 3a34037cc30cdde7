"""Place recognition from the frontend's own descriptors: a bag of visual words.

No network is downloaded: a vocabulary is k-means over local descriptors of
training images (``superglue-ros vocabulary build IMAGES OUT``). A keyframe's
global descriptor is its tf-idf weighted word histogram, L2-normalised and kept
sparse (word ids and weights); two keyframes score the dot product of theirs
(cosine similarity, 1 for the same words in the same proportions).

Descriptors are compared as float vectors: float ones as they are, SIFT's
divided by its norm, binary ones (ORB) unpacked to 0/1 bits, for which squared
L2 distance equals the Hamming distance.

Vocabulary files are ``.npz`` with a format version, the descriptor kind and
dimension they were trained for, and a line saying what they were trained on.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .types import DESCRIPTOR_BINARY, DESCRIPTOR_FLOAT_SIFT, Frontend

VOCABULARY_FORMAT = "superglue_ros.vocabulary"
VOCABULARY_VERSION = 1
SHIPPED_DIR = Path(__file__).parent / "vocabularies"


class VocabularyError(ValueError):
    """A vocabulary that cannot be used: damaged file, or made for other descriptors."""


def as_vectors(descriptors: np.ndarray, kind: str) -> np.ndarray:
    """[N, D'] float32 vectors in which L2 distance compares descriptors of that kind."""
    if kind == DESCRIPTOR_BINARY:
        return np.unpackbits(np.asarray(descriptors, np.uint8), axis=1).astype(np.float32)
    vectors = np.asarray(descriptors, np.float32)
    if kind == DESCRIPTOR_FLOAT_SIFT:
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)
    return vectors


@dataclass
class Vocabulary:
    """words: [K, D'] float32 centres; idf: [K] float32 inverse document frequencies."""

    words: np.ndarray
    idf: np.ndarray
    descriptor_kind: str
    descriptor_dim: int  # columns of the frontend's descriptors (bytes for binary ones)
    trained_on: str = ""

    @property
    def size(self) -> int:
        return int(len(self.words))

    def check(self, descriptors: np.ndarray, kind: str) -> None:
        """VocabularyError unless descriptors are of the kind this vocabulary was made for."""
        dim = int(descriptors.shape[1]) if descriptors.ndim == 2 else -1
        if kind != self.descriptor_kind or dim != self.descriptor_dim:
            raise VocabularyError(
                f"the vocabulary was made for {self.descriptor_kind} descriptors of "
                f"{self.descriptor_dim} columns, the frontend gives {kind} of {dim}: build one "
                "for this frontend (superglue-ros vocabulary build)"
            )

    def assign(self, descriptors: np.ndarray, kind: str) -> np.ndarray:
        """[N] int64: the nearest word of each descriptor."""
        self.check(descriptors, kind)
        vectors = as_vectors(descriptors, kind)
        if len(vectors) == 0:
            return np.zeros(0, np.int64)
        # |v - w|^2 = |v|^2 - 2 v.w + |w|^2; |v|^2 does not change the argmin.
        distance = (self.words**2).sum(axis=1)[None] - 2.0 * vectors @ self.words.T
        return np.argmin(distance, axis=1)

    def bow(self, descriptors: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """The sparse tf-idf bag of words: (word ids [W] int32, L2-normalised weights [W])."""
        words = self.assign(descriptors, kind)
        ids, counts = np.unique(words, return_counts=True)
        weights = counts.astype(np.float32) / max(len(words), 1) * self.idf[ids]
        norm = float(np.linalg.norm(weights))
        if norm > 0:
            weights /= norm
        return ids.astype(np.int32), weights.astype(np.float32)

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as file:
            np.savez_compressed(
                file,
                format=np.array(VOCABULARY_FORMAT),
                version=np.array(VOCABULARY_VERSION),
                words=self.words.astype(np.float16),
                idf=self.idf.astype(np.float32),
                descriptor_kind=np.array(self.descriptor_kind),
                descriptor_dim=np.array(self.descriptor_dim),
                trained_on=np.array(self.trained_on),
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        """Read a vocabulary file; VocabularyError naming the file when it cannot be used."""
        path = Path(path)
        arrays = read_npz(path, VocabularyError, "vocabulary file")
        if str(arrays.get("format", "")) != VOCABULARY_FORMAT:
            raise VocabularyError(f"{path} is not a superglue_ros vocabulary")
        if int(arrays.get("version", -1)) != VOCABULARY_VERSION:
            raise VocabularyError(
                f"vocabulary {path} has version {int(arrays.get('version', -1))}, "
                f"this version reads {VOCABULARY_VERSION}"
            )
        words, idf = arrays["words"].astype(np.float32), arrays["idf"].astype(np.float32)
        if words.ndim != 2 or idf.shape != (len(words),):
            raise VocabularyError(f"vocabulary {path} is inconsistent: {words.shape}, {idf.shape}")
        return cls(
            words=words,
            idf=idf,
            descriptor_kind=str(arrays["descriptor_kind"]),
            descriptor_dim=int(arrays["descriptor_dim"]),
            trained_on=str(arrays["trained_on"]),
        )


def read_npz(
    path: Path, error: type[Exception], what: str, damaged: str = "is damaged"
) -> dict[str, np.ndarray]:
    """All arrays of an .npz file (no pickles); error naming what and the file when it is
    missing or cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as caught:
        raise error(f"{what} {path} {damaged}: {caught}") from None


def shipped_vocabulary_path(frontend: str, model: str = "") -> Path | None:
    """The vocabulary shipped with the package for a frontend, or None."""
    name = f"{frontend}_{model}.npz" if model else f"{frontend}.npz"
    path = SHIPPED_DIR / name
    return path if path.is_file() else None


def top_k(
    query: tuple[np.ndarray, np.ndarray],
    database: Iterable[tuple[int, np.ndarray, np.ndarray]],
    k: int,
    vocabulary_size: int,
    min_score: float = 0.0,
) -> list[tuple[int, float]]:
    """The k best (id, score) of database entries (id, word ids, weights), best first."""
    words, weights = query
    dense = np.zeros(vocabulary_size, np.float32)
    dense[words] = weights
    scored = []
    for entry_id, entry_words, entry_weights in database:
        score = float(dense[entry_words] @ entry_weights)
        if score >= min_score:
            scored.append((entry_id, score))
    scored.sort(key=lambda item: (-item[1], item[0]))
    return scored[:k]


def _image_descriptors(
    images: Iterable[np.ndarray], frontend: Frontend
) -> tuple[list[np.ndarray], str]:
    """The [N_i, D] descriptors of each image that has keypoints, and their kind."""
    descriptors, kind = [], None
    for image in images:
        features = frontend.extract(image)
        kind = features.descriptor_kind
        if len(features):
            descriptors.append(np.asarray(features.descriptors))
    if kind is None:
        raise ValueError("no training images")
    return descriptors, kind


def vocabulary_from_images(
    images: Iterable[np.ndarray],
    frontend: Frontend,
    size: int = 256,
    seed: int = 0,
    trained_on: str = "",
    max_samples: int = 100000,
) -> Vocabulary:
    """k-means (k-means++ start, seeded) over the descriptors frontend extracts from the
    training images (at most max_samples of them); idf counts images."""
    images_descriptors, kind = _image_descriptors(images, frontend)
    if not images_descriptors:
        raise ValueError("no training images")
    dims = {int(d.shape[1]) for d in images_descriptors if d.ndim == 2}
    if len(dims) != 1:
        raise ValueError(f"training descriptors disagree on their dimension: {sorted(dims)}")
    vectors = np.concatenate([as_vectors(d, kind) for d in images_descriptors])
    if len(vectors) < size:
        raise ValueError(
            f"{len(vectors)} training descriptors for a vocabulary of {size} words: "
            "give more images or ask for fewer words"
        )
    rng = np.random.default_rng(seed)
    if len(vectors) > max_samples:
        vectors = vectors[rng.choice(len(vectors), max_samples, replace=False)]
    import cv2  # here, so that a pipeline without loop closure runs where OpenCV is absent

    cv2.setRNGSeed(seed)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 1e-4)
    _, _, centres = cv2.kmeans(vectors, size, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    vocabulary = Vocabulary(
        words=centres.astype(np.float32),
        idf=np.ones(size, np.float32),
        descriptor_kind=kind,
        descriptor_dim=dims.pop(),
        trained_on=trained_on,
    )
    # idf = log(images / images containing the word): words seen everywhere weigh nothing.
    seen = np.zeros(size, np.float64)
    for descriptors in images_descriptors:
        seen[np.unique(vocabulary.assign(descriptors, kind))] += 1
    vocabulary.idf = np.log(len(images_descriptors) / np.maximum(seen, 1)).astype(np.float32)
    return vocabulary
