"""Plain data exchanged between the pipeline stages and its two shells.

Everything here is numpy: no torch, no ROS. Shapes use N for the frame's
keypoints, M for a keyframe's keypoints and D for the descriptor length.

A frame is one image and its stamp, with optional companions (:class:`Companions`):
the rectified right image of a stereo pair with the pair's calibration, or a
depth image registered to the image. The shells pair the topics first
(:mod:`superglue_ros.pipeline.synchroniser`), so the pipeline only ever sees
whole frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from .loop_closure import LoopCandidate

# What Features.descriptors hold (Features.msg's descriptor_kind says the same to consumers).
DESCRIPTOR_FLOAT_UNIT = "float_unit"  # floats of L2 norm 1 (SuperPoint and other learned ones)
DESCRIPTOR_BINARY = "binary"  # uint8 bytes of a binary descriptor (ORB: 32 bytes = 256 bits)
DESCRIPTOR_FLOAT_SIFT = "float_sift"  # OpenCV SIFT's scale: non-negative, L2 norm about 512


@dataclass(frozen=True)
class StereoCalibration:
    """A rectified stereo pair: the shared pinhole of both images and the baseline.

    Taken from the two camera_info P matrices (see pipeline.stereo.stereo_calibration):
    fx, fy, cx, cy of the left P, cx_right of the right P (equal to cx unless the
    rectification kept a disparity offset), baseline_m = (Tx_left - Tx_right) / fx.
    A point at depth Z is seen at x_right = x_left - fx * baseline_m / Z (+ cx_right - cx).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    baseline_m: float
    cx_right: float | None = None  # None: equal to cx

    @property
    def disparity_offset(self) -> float:
        """cx - cx_right: add to x_left - x_right to get the disparity of depth."""
        return 0.0 if self.cx_right is None else self.cx - self.cx_right


@dataclass
class RightImage:
    """The rectified right image of a stereo pair (same size and layout as the left)."""

    image: np.ndarray  # [H, W] uint8 gray or [H, W, 3] uint8 RGB
    calibration: StereoCalibration


@dataclass
class DepthImage:
    """A depth image registered to the frame's image (same size, pixel for pixel).

    depth: [H, W] uint16 millimetres (16UC1) or float32 metres (32FC1), the two
    encodings of REP 118; 0, NaN and inf mean no measurement.
    """

    depth: np.ndarray

    def metres(self) -> np.ndarray:
        """[H, W] float32 metres, NaN where there is no measurement."""
        if self.depth.dtype == np.uint16:
            metres = self.depth.astype(np.float32) * np.float32(1e-3)
        elif self.depth.dtype == np.float32:
            metres = self.depth.astype(np.float32, copy=True)
        else:
            raise ValueError(
                f"depth image must be uint16 millimetres (16UC1) or float32 metres (32FC1), "
                f"got {self.depth.dtype}"
            )
        metres[~np.isfinite(metres) | (metres <= 0)] = np.nan
        return metres


@dataclass
class Companions:
    """What may come with a frame's image; which ones the ``input`` parameter says.

    right: input stereo, the rectified right image of the pair.
    depth: input rgbd, the depth image aligned to the colour image.
    """

    right: RightImage | None = None
    depth: DepthImage | None = None


@dataclass
class Features:
    """Keypoints of one image.

    keypoints: [N, 2] float32 pixel (x, y).
    scores: [N] float32 detector confidence.
    descriptors: [N, D] float32 (uint8 bytes for binary descriptors such as ORB).
    image_size: (height, width) of the image the keypoints come from.
    descriptor_kind: one of the DESCRIPTOR_* names above.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    descriptors: np.ndarray
    image_size: tuple[int, int]
    descriptor_kind: str = DESCRIPTOR_FLOAT_UNIT

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])


@dataclass
class PairMatches:
    """Matches of a frame (side 0) against one keyframe (side 1).

    matches0: [N] int64, index into the keyframe's keypoints, -1 = unmatched.
    scores0: [N] float32 match confidence, 0 where unmatched.
    layers: network layers the matcher ran for this pair (LightGlue's adaptive
    depth), 0 when it does not report them.
    """

    matches0: np.ndarray
    scores0: np.ndarray
    layers: int = 0

    @classmethod
    def unmatched(cls, num: int) -> PairMatches:
        """No match for any of num frame keypoints."""
        return cls(np.full(num, -1, dtype=np.int64), np.zeros(num, dtype=np.float32))

    @classmethod
    def from_batch(
        cls, matches0: np.ndarray, scores0: np.ndarray, layers: Sequence[int] | None = None
    ) -> list[PairMatches]:
        """One PairMatches per row of a batched matcher's [K, N] outputs (scores zeroed
        where unmatched); layers: [K] layers run per pair, when the matcher reports them."""
        matches0 = np.asarray(matches0).astype(np.int64)
        scores0 = np.asarray(scores0, dtype=np.float32)
        return [
            cls(
                matches0=matches0[i],
                scores0=np.where(matches0[i] >= 0, scores0[i], 0.0).astype(np.float32),
                layers=int(layers[i]) if layers is not None else 0,
            )
            for i in range(len(matches0))
        ]


class Frontend(Protocol):
    """Turns an image into features.

    A frontend gets [H, W] uint8 grayscale images, or [H, W, 3] uint8 RGB ones
    when it has a ``color`` attribute that is True.
    """

    def extract(self, image: np.ndarray) -> Features:
        """image: [H, W] uint8 grayscale (or [H, W, 3] uint8 RGB, see above)."""
        ...


class Matcher(Protocol):
    """Matches one frame against several keyframes in one call."""

    def match(self, frame: Features, keyframes: Sequence[Features]) -> list[PairMatches]:
        """One PairMatches per keyframe, in the order given."""
        ...


@dataclass
class KeyframeMatch:
    """Matches of the current frame to one buffered keyframe (flat arrays)."""

    keyframe_id: int
    keyframe_stamp_ns: int
    frame_indices: np.ndarray  # [L] int32
    keyframe_indices: np.ndarray  # [L] int32
    scores: np.ndarray  # [L] float32
    layers: int = 0  # matcher layers run for this pair (LightGlue's early exit); 0: not reported


@dataclass
class FrameResult:
    """Everything the pipeline decided about one frame.

    matches are newest keyframe first. timings_ms holds milliseconds per stage
    (``frontend``, ``matcher``, ``policy``, ``total``; ``depth`` with companions).

    depths: [N] float32 metres per keypoint, NaN where unknown; None for mono input.
    right_x: [N] float32 x of each keypoint in the right image (ORB-SLAM's uR; same
    row), NaN where the left-right match was missing or refused; None unless stereo.
    right_features / right_indices: the right image's keypoints and, per left
    keypoint, the index of its right match (-1 when none); None unless stereo.
    """

    frame_id: int
    stamp_ns: int
    is_keyframe: bool
    features: Features
    track_ids: np.ndarray  # [N] int64
    matches: list[KeyframeMatch]
    evicted_keyframe_ids: list[int]
    buffer_cleared: bool = False
    keyframe_reason: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict)
    depths: np.ndarray | None = None
    right_x: np.ndarray | None = None
    right_features: Features | None = None
    right_indices: np.ndarray | None = None
    # loop_closure.enabled, keyframes only: every verified candidate (accepted or not)
    loop_candidates: list[LoopCandidate] = field(default_factory=list)
    loop_timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def loops(self) -> list[LoopCandidate]:
        """The accepted loop closures of this keyframe."""
        return [c for c in self.loop_candidates if c.accepted]
