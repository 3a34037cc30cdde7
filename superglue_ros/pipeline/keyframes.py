"""The keyframe buffer and the policy that decides which frames become keyframes.

The policy is ORB-SLAM-like: a frame becomes a keyframe when it no
longer overlaps the newest keyframe well, when it has moved far from it, or when
too many frames have passed. Every threshold is a run-time parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .params import PIPELINE_SPECS, Config, check_runtime_changes
from .types import Features, KeyframeMatch


@dataclass
class Keyframe:
    """A frame kept for matching. keyframe_id is the frame_id it had as a frame.

    track_ids: [N] int64, one per keypoint of features.
    depths, right_x, right_features: as in FrameResult (stereo and rgbd input), so a
    back-end can use the keyframe's stereo observations; None for mono input.
    """

    keyframe_id: int
    stamp_ns: int
    features: Features
    track_ids: np.ndarray
    depths: np.ndarray | None = None
    right_x: np.ndarray | None = None
    right_features: Features | None = None


class KeyframeBuffer:
    """The newest `capacity` keyframes, newest first."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"keyframe buffer capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._keyframes: list[Keyframe] = []

    @property
    def keyframes(self) -> list[Keyframe]:
        """Newest first (a copy: callers may keep it while the buffer changes)."""
        return list(self._keyframes)

    def __len__(self) -> int:
        return len(self._keyframes)

    def add(self, keyframe: Keyframe) -> list[int]:
        """Insert the newest keyframe; return the ids evicted to make room, oldest first."""
        self._keyframes.insert(0, keyframe)
        evicted = self._keyframes[self.capacity :]
        del self._keyframes[self.capacity :]
        return [k.keyframe_id for k in reversed(evicted)]

    def clear(self) -> list[int]:
        """Drop every keyframe; return their ids, oldest first."""
        cleared = [k.keyframe_id for k in reversed(self._keyframes)]
        self._keyframes.clear()
        return cleared


def median_displacement(frame: Features, keyframe: Features, match: KeyframeMatch) -> float:
    """Median pixel distance between matched keypoints; 0 without matches."""
    if match.frame_indices.size == 0:
        return 0.0
    offsets = frame.keypoints[match.frame_indices] - keyframe.keypoints[match.keyframe_indices]
    return float(np.median(np.linalg.norm(offsets, axis=1)))


POLICY_PARAMS = {
    "keyframes.min_matches": "min_matches",
    "keyframes.min_match_ratio": "min_match_ratio",
    "keyframes.max_parallax_px": "max_parallax_px",
    "keyframes.max_frames_between": "max_frames_between",
}


def _default(name: str) -> Any:
    """A policy field defaulting to the parameter table's value (defaults live there only)."""
    return field(default=PIPELINE_SPECS[name].default)


@dataclass
class KeyframePolicy:
    """Decides whether a frame becomes a keyframe, and says why."""

    min_matches: int = _default("keyframes.min_matches")
    min_match_ratio: float = _default("keyframes.min_match_ratio")
    max_parallax_px: float = _default("keyframes.max_parallax_px")
    max_frames_between: int = _default("keyframes.max_frames_between")

    @classmethod
    def from_config(cls, config: Config) -> KeyframePolicy:
        """From the pipeline's validated Config (keyframes.*)."""
        return cls(**{attribute: config[name] for name, attribute in POLICY_PARAMS.items()})

    def update_params(self, changes: Mapping[str, Any]) -> None:
        """Apply the keyframes.* entries of changes; ignore the rest.

        ValueError (nothing applied) for a bad change, see check_runtime_changes.
        """
        checked = check_runtime_changes(changes)
        for name, attribute in POLICY_PARAMS.items():
            if name in checked:
                setattr(self, attribute, checked[name])

    def decide(
        self,
        frame: Features,
        newest: Keyframe | None,
        match_to_newest: KeyframeMatch | None,
        frames_since_keyframe: int,
    ) -> str:
        """The reason this frame becomes a keyframe, or "" when it does not.

        newest: the newest buffered keyframe (None when the buffer is empty).
        match_to_newest: the frame's matches to it.
        frames_since_keyframe: frame_id minus the newest keyframe's id.
        """
        if newest is None or match_to_newest is None:
            return "first frame"
        num_matches = int(match_to_newest.frame_indices.size)
        if num_matches < self.min_matches:
            return f"few matches ({num_matches} < {self.min_matches})"
        num_keyframe_points = len(newest.features)
        if num_matches < self.min_match_ratio * num_keyframe_points:
            return (
                f"low match ratio ({num_matches}/{num_keyframe_points} < {self.min_match_ratio:g})"
            )
        parallax = median_displacement(frame, newest.features, match_to_newest)
        if parallax > self.max_parallax_px:
            return f"large parallax ({parallax:.1f} px > {self.max_parallax_px:g} px)"
        if frames_since_keyframe >= self.max_frames_between:
            return (
                f"{frames_since_keyframe} frames since the last keyframe "
                f"(max {self.max_frames_between})"
            )
        return ""
