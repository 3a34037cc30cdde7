"""Persistent track ids: one id per physical point, inherited through keyframe matches.

Rules, in order:
1. A frame keypoint matched to a keypoint of a buffered keyframe inherits that
   keypoint's track id. When it is matched in several keyframes whose ids
   disagree, the newest keyframe wins: it is closest in time and viewpoint, so
   its match is the most likely to be right, and its ids already carry the most
   recent inheritance.
2. One track id is never given to two keypoints of one frame. That can happen
   when different keyframes map different frame keypoints to the same track;
   the keypoint with the highest match score keeps the id, the others start
   new tracks (splitting a track is safer for SLAM than merging two points).
3. Every other keypoint gets a fresh id from a counter that only counts up, so
   an id is never reused, not even after the keyframe buffer is cleared.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .types import KeyframeMatch

UNASSIGNED = -1


def inherited_track_ids(
    num_keypoints: int,
    matches: Sequence[KeyframeMatch],
    keyframe_track_ids: Sequence[np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Track id each frame keypoint inherits (rule 1), and the score of that match.

    matches: the frame's matches per keyframe, newest keyframe first.
    keyframe_track_ids: [M_k] int64 track ids of each of those keyframes.
    Returns ([N] int64 ids, UNASSIGNED where unmatched; [N] float32 scores).
    """
    track_ids = np.full(num_keypoints, UNASSIGNED, dtype=np.int64)
    scores = np.zeros(num_keypoints, dtype=np.float32)
    for match, keyframe_ids in zip(matches, keyframe_track_ids, strict=True):
        # Newest first: only fill keypoints no newer keyframe has claimed.
        still_free = track_ids[match.frame_indices] == UNASSIGNED
        frame_indices = match.frame_indices[still_free]
        track_ids[frame_indices] = keyframe_ids[match.keyframe_indices[still_free]]
        scores[frame_indices] = match.scores[still_free]
    return track_ids, scores


def drop_duplicate_ids(track_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Keep each track id only on its highest-scoring keypoint (rule 2).

    track_ids: [N] int64 with UNASSIGNED entries; scores: [N]. Returns a copy in
    which the losers are UNASSIGNED.
    """
    result = track_ids.copy()
    assigned = np.flatnonzero(track_ids != UNASSIGNED)
    # Sort by id, then by score descending; the first of each id group wins.
    order = assigned[np.lexsort((-scores[assigned], track_ids[assigned]))]
    sorted_ids = track_ids[order]
    is_duplicate = np.zeros(order.size, dtype=bool)
    is_duplicate[1:] = sorted_ids[1:] == sorted_ids[:-1]
    result[order[is_duplicate]] = UNASSIGNED
    return result


class TrackIdAssigner:
    """Gives every keypoint of a frame a track id; owns the never-reused id counter."""

    def __init__(self) -> None:
        self.next_id = 0

    def fresh_ids(self, count: int) -> np.ndarray:
        """count new ids, [count] int64."""
        ids = np.arange(self.next_id, self.next_id + count, dtype=np.int64)
        self.next_id += count
        return ids

    def assign(
        self,
        num_keypoints: int,
        matches: Sequence[KeyframeMatch],
        keyframe_track_ids: Sequence[np.ndarray],
    ) -> np.ndarray:
        """[N] int64 track ids, unique within the frame (rules 1 to 3).

        matches and keyframe_track_ids: per buffered keyframe, newest first.
        """
        track_ids, scores = inherited_track_ids(num_keypoints, matches, keyframe_track_ids)
        track_ids = drop_duplicate_ids(track_ids, scores)
        unassigned = track_ids == UNASSIGNED
        track_ids[unassigned] = self.fresh_ids(int(unassigned.sum()))
        return track_ids
