"""ALIKED and DISK on their exported ONNX graphs (``runtime: onnxruntime``).

The graphs (``models/onnx_extractors.py``) compute the dense maps; this module
pads the image for them, and does in numpy what kornia does after the dense
maps, with the same rules: strict local maxima of the score map, the border,
top-k, ALIKED's soft-argmax refinement and score lookup, DISK's descriptors at
the integer maxima. Needs numpy and onnxruntime only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .types import Features

MIN_SIDE = 16  # as the torch frontends: smaller images cannot hold a keypoint
ALIKED_PAD = 32
DISK_PAD = 16
SOFTMAX_TEMPERATURE = 0.1  # kornia's DKD


def rgb_input(image: np.ndarray, what: str) -> np.ndarray:
    """[H, W, 3] uint8 RGB -> [1, 3, H, W] float32 in [0, 1] (ValueError otherwise)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape[2:] != (3,):
        described = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image)
        raise ValueError(f"{what} frontend needs an [H, W, 3] uint8 RGB image, got {described}")
    if image.shape[0] < MIN_SIDE or image.shape[1] < MIN_SIDE:
        raise ValueError(f"image must be at least {MIN_SIDE} px on each side, got {image.shape}")
    return (image.astype(np.float32) / np.float32(255.0)).transpose(2, 0, 1)[None]


def centred_padding(size: int, multiple: int) -> tuple[int, int]:
    """kornia's InputPadder along one axis: (before, after) to the next multiple."""
    total = (-size) % multiple
    return total // 2, total - total // 2


def strict_maxima(scores: np.ndarray, before: int, after: int) -> np.ndarray:
    """[H, W] bool: positions greater than every other score of their window (before
    rows/columns above and left, after below and right), as kornia's nms2d; the
    first `before` and last `after` rows and columns are never maxima."""
    height, width = scores.shape
    keep = np.zeros((height, width), bool)
    if height <= before + after or width <= before + after:
        return keep
    core = scores[before : height - after, before : width - after]
    inner = np.ones_like(core, bool)
    for dy in range(-before, after + 1):
        for dx in range(-before, after + 1):
            if dy or dx:
                other = scores[before + dy : height - after + dy, before + dx : width - after + dx]
                inner &= core > other
    keep[before : height - after, before : width - after] = inner
    return keep


def clear_border(mask: np.ndarray, border: int) -> np.ndarray:
    """mask [H, W] with its first and last `border` rows and columns set False (in place)."""
    if border > 0:
        mask[:border], mask[:, :border] = False, False
        mask[-border:], mask[:, -border:] = False, False
    return mask


def top_k(candidates: np.ndarray, scores: np.ndarray, limit: int) -> np.ndarray:
    """Flat indices of the candidates, best first; at most limit of them (limit <= 0: all)."""
    flat = np.flatnonzero(candidates)
    values = scores.reshape(-1)[flat]
    order = np.argsort(-values, kind="stable")
    if limit > 0:
        order = order[:limit]
    return flat[order]


def bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """image [H, W] read at pixel positions (x, y) inside it, bilinearly."""
    height, width = image.shape
    x0 = np.clip(np.floor(x).astype(np.int64), 0, width - 1)
    y0 = np.clip(np.floor(y).astype(np.int64), 0, height - 1)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    fx, fy = x - x0, y - y0
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def aliked_keypoints(
    scores: np.ndarray, radius: int, limit: int, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """kornia's DKD on one [H, W] score map -> keypoints [N, 2] pixels (x, y), scores [N].

    threshold > 0: maxima above it (or above the mean where none is), at most
    limit (20000 when limit <= 0); else the limit best maxima.
    """
    width = scores.shape[1]
    maxima = clear_border(strict_maxima(scores, radius, radius), radius)
    if threshold > 0:
        above = maxima & (scores > threshold)
        maxima = above if above.any() else maxima & (scores > scores.mean())
        flat = np.flatnonzero(maxima)  # raster order, unless the limit cuts
        if len(flat) > (limit if limit > 0 else 20000):
            flat = top_k(maxima, scores, limit if limit > 0 else 20000)
    else:
        flat = top_k(maxima, scores, limit)
    rows, cols = np.divmod(flat, width)
    window = np.arange(-radius, radius + 1)
    patches = scores[rows[:, None, None] + window[None, :, None], cols[:, None, None] + window]
    patches = patches.reshape(len(flat), -1).astype(np.float32)
    weights = np.exp((patches - patches.max(1, keepdims=True)) / np.float32(SOFTMAX_TEMPERATURE))
    weights /= weights.sum(1, keepdims=True)
    grid_y, grid_x = np.meshgrid(window, window, indexing="ij")
    x = cols + weights @ grid_x.reshape(-1).astype(np.float32)
    y = rows + weights @ grid_y.reshape(-1).astype(np.float32)
    keypoints = np.stack([x, y], 1).astype(np.float32)
    return keypoints, bilinear(scores, keypoints[:, 0], keypoints[:, 1])


class OnnxAlikedFrontend:
    """Frontend: [H, W, 3] uint8 RGB -> ALIKED keypoints, scores, [N, D] descriptors (ONNX)."""

    color = True

    def __init__(self, dense: Any, head: Any, conf: Mapping[str, Any]) -> None:
        self.dense, self.head = dense, head
        self.conf = dict(conf)

    @property
    def description(self) -> str:
        limit = self.conf["max_keypoints"]
        provider = self.dense.get_providers()[0]
        return (
            f"aliked-{self.conf['model']}(max {limit if limit > 0 else 'all'}) "
            f"on onnxruntime {provider} fp32"
        )

    def maps(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The dense graph's features [D, H, W] and scores [H, W], padding cropped."""
        tensor = rgb_input(image, "aliked")
        height, width = image.shape[:2]
        top, bottom = centred_padding(height, ALIKED_PAD)
        left, right = centred_padding(width, ALIKED_PAD)
        padded = np.pad(tensor, ((0, 0), (0, 0), (top, bottom), (left, right)), mode="edge")
        features, scores = self.dense.run(None, {"image": padded})
        crop = (slice(top, top + height), slice(left, left + width))
        return features[0][(slice(None), *crop)], scores[0, 0][crop]

    def extract(self, image: np.ndarray) -> Features:
        """image: [H, W, 3] uint8 RGB."""
        features, scores = self.maps(image)
        keypoints, kept = aliked_keypoints(
            scores,
            int(self.conf["nms_radius"]),
            int(self.conf["max_keypoints"]),
            float(self.conf["detection_threshold"]),
        )
        height, width = scores.shape
        scale = np.array([width - 1, height - 1], np.float32)
        normalised = (keypoints / scale * 2 - 1).astype(np.float32)
        if len(keypoints):
            feeds = {"features": np.ascontiguousarray(features[None]), "keypoints": normalised}
            descriptors = self.head.run(None, feeds)[0]
        else:
            descriptors = np.zeros((0, features.shape[0]), np.float32)
        return Features(
            keypoints=keypoints,
            scores=kept,
            descriptors=np.ascontiguousarray(descriptors, np.float32),
            image_size=(int(height), int(width)),
        )

    def warmup(self, height: int = 480, width: int = 640) -> None:
        """Run the graphs once at this size (TensorRT builds its engines here)."""
        self.extract(np.full((height, width, 3), 127, np.uint8))


def disk_keypoints(
    heatmap: np.ndarray, window: int, threshold: float, limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """kornia's heatmap_to_keypoints on one [H, W] map -> flat indices in raster order
    and their scores; at most limit (the strongest, raster order among ties)."""
    maxima = strict_maxima(heatmap, (window - 1) // 2, window // 2) & (heatmap > threshold)
    flat = np.flatnonzero(maxima)
    values = heatmap.reshape(-1)[flat]
    if limit > 0 and len(flat) > limit:
        chosen = np.sort(np.argsort(-values, kind="stable")[:limit])
        flat, values = flat[chosen], values[chosen]
    return flat, values.astype(np.float32)


class OnnxDiskFrontend:
    """Frontend: [H, W, 3] uint8 RGB -> DISK keypoints, logits, [N, 128] descriptors (ONNX)."""

    color = True

    def __init__(self, dense: Any, conf: Mapping[str, Any]) -> None:
        self.dense = dense
        self.conf = dict(conf)

    @property
    def description(self) -> str:
        limit = self.conf["max_keypoints"]
        provider = self.dense.get_providers()[0]
        return f"disk(max {limit if limit > 0 else 'all'}) on onnxruntime {provider} fp32"

    def extract(self, image: np.ndarray) -> Features:
        """image: [H, W, 3] uint8 RGB."""
        tensor = rgb_input(image, "disk")
        height, width = image.shape[:2]
        padding = ((0, 0), (0, 0), (0, (-height) % DISK_PAD), (0, (-width) % DISK_PAD))
        heatmap, dense = self.dense.run(None, {"image": np.pad(tensor, padding)})
        flat, kept = disk_keypoints(
            heatmap[0, 0, :height, :width],
            int(self.conf["nms_window"]),
            float(self.conf["score_threshold"]),
            int(self.conf["max_keypoints"]),
        )
        rows, cols = np.divmod(flat, width)
        descriptors = dense[0][:, rows, cols].T.astype(np.float32)
        norms = np.maximum(np.linalg.norm(descriptors, axis=1, keepdims=True), 1e-12)
        return Features(
            keypoints=np.stack([cols, rows], 1).astype(np.float32),
            scores=kept,
            descriptors=np.ascontiguousarray(descriptors / norms, np.float32),
            image_size=(int(height), int(width)),
        )

    def warmup(self, height: int = 480, width: int = 640) -> None:
        """Run the graph once at this size (TensorRT builds its engine here)."""
        self.extract(np.full((height, width, 3), 127, np.uint8))
