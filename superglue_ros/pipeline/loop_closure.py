"""Loop closure: keyframe map + place recognition + learned matching + geometric verification.

For each new keyframe the detector scores the map's keyframes by bag of words
(pipeline.place_recognition), skips the recent window (the keyframes still in
the buffer and the newest ``loop_closure.exclude_recent`` map keyframes of this
session, which odometry already connects; a loaded map's are all candidates),
matches the frame against the best ``loop_closure.top_k`` candidates in ONE
call of the pipeline's matcher (the candidates stand in as keyframes, so a
learned matcher pads them into one batch), then verifies each match set geometrically:

- with a camera matrix: essential-matrix RANSAC (OpenCV, seeded) and the
  relative pose (rotation and unit translation of the match keyframe in the
  query camera, recoverPose's cheirality inliers);
- without one: fundamental-matrix RANSAC, inliers only (no pose).

A candidate is accepted when its inliers reach ``loop_closure.min_inliers``,
``loop_closure.min_inlier_ratio`` of the smaller keypoint count of the two
keyframes, and cover ``loop_closure.min_coverage`` of each image (the share of
the cells of a GRID x GRID grid holding keypoints that hold an inlier). The
coverage is what rejects perceptual aliasing: a texture repeated in another
place is geometrically consistent on its own (a plane is), but only that part
of the view matches. The inlier ratio alone depends on the matcher's recall
(ALIKED + LightGlue match nearly every keypoint of a repeated wall, ORB + MNN
half of those of a true return), the area the inliers cover much less.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .keyframe_map import KeyframeMap, MapKeyframe
from .params import Config
from .place_recognition import Vocabulary, top_k
from .types import Features, Matcher, PairMatches

MIN_POINTS_FOR_MODEL = 8  # the 8-point fundamental matrix needs 8 (the 5-point E, 5)
GRID = 8  # coverage cells per image side


@dataclass(frozen=True)
class LoopParams:
    top_k: int = 3
    exclude_recent: int = 5
    min_score: float = 0.0
    min_inliers: int = 40
    min_inlier_ratio: float = 0.1
    min_coverage: float = 0.5
    ransac_threshold_px: float = 1.0
    ransac_confidence: float = 0.999
    seed: int = 0

    @classmethod
    def from_config(cls, config: Config) -> LoopParams:
        return cls(
            top_k=config.integer("loop_closure.top_k"),
            exclude_recent=config.integer("loop_closure.exclude_recent"),
            min_score=config.number("loop_closure.min_score"),
            min_inliers=config.integer("loop_closure.min_inliers"),
            min_inlier_ratio=config.number("loop_closure.min_inlier_ratio"),
            min_coverage=config.number("loop_closure.min_coverage"),
            ransac_threshold_px=config.number("loop_closure.ransac_threshold_px"),
            seed=config.integer("loop_closure.seed"),
        )


@dataclass
class Verification:
    """The geometric check of one match set.

    inlier_mask: [L] bool per match. rotation [3, 3] / translation [3] (unit):
    the match keyframe's camera in the query camera's frame (x_query = R x_match + t),
    None without a camera matrix or when RANSAC found no model. pose_inliers:
    matches in front of both cameras for that pose (0 without a pose).
    """

    inlier_mask: np.ndarray
    inlier_ratio: float
    accepted: bool
    reason: str
    rotation: np.ndarray | None = None
    translation: np.ndarray | None = None
    pose_inliers: int = 0
    coverage: float = 1.0  # the smaller of the two images' (1 when not measured)

    @property
    def inliers(self) -> int:
        return int(self.inlier_mask.sum())


@dataclass
class LoopCandidate:
    """One verified (or refused) loop: the query keyframe against one map keyframe."""

    query_id: int
    query_stamp_ns: int
    match_id: int
    match_stamp_ns: int
    score: float  # bag-of-words similarity
    query_indices: np.ndarray  # [L] int32
    match_indices: np.ndarray  # [L] int32
    match_scores: np.ndarray  # [L] float32
    verification: Verification

    @property
    def accepted(self) -> bool:
        return self.verification.accepted


@dataclass
class LoopQuery:
    """What one query found: every verified candidate (accepted ones in ``loops``)."""

    candidates: list[LoopCandidate] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def loops(self) -> list[LoopCandidate]:
        return [c for c in self.candidates if c.accepted]


def camera_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def coverage(inliers: np.ndarray, keypoints: np.ndarray, image_size: tuple[int, int]) -> float:
    """Share of the grid cells holding keypoints ([M, 2]) that hold an inlier ([L, 2])."""

    def cells(points: np.ndarray) -> set[int]:
        height, width = image_size
        ix = np.clip((points[:, 0] * GRID / max(width, 1)).astype(int), 0, GRID - 1)
        iy = np.clip((points[:, 1] * GRID / max(height, 1)).astype(int), 0, GRID - 1)
        return set((iy * GRID + ix).tolist())

    occupied = cells(keypoints)
    return len(cells(inliers) & occupied) / max(len(occupied), 1)


def verify_features(
    query: Features,
    match: Features,
    query_indices: np.ndarray,
    match_indices: np.ndarray,
    params: LoopParams,
    camera: np.ndarray | None = None,
) -> Verification:
    """verify() on the matched keypoints of two feature sets, with their coverage."""
    points_query = query.keypoints[query_indices]
    points_match = match.keypoints[match_indices]
    count = min(len(query), len(match))
    verification = verify(points_query, points_match, count, params, camera)
    mask = verification.inlier_mask
    covered = min(
        coverage(points_query[mask], query.keypoints, query.image_size),
        coverage(points_match[mask], match.keypoints, match.image_size),
    )
    verification.coverage = covered
    if verification.accepted and covered < params.min_coverage:
        verification.accepted = False
        verification.reason = f"inliers cover {covered:.2f} of the image < {params.min_coverage:g}"
    return verification


def verify(
    points_query: np.ndarray,
    points_match: np.ndarray,
    keypoint_count: int,
    params: LoopParams,
    camera: np.ndarray | None = None,
) -> Verification:
    """RANSAC on matched pixels ([L, 2] each); keypoint_count: the smaller keyframe's keypoints.
    Coverage is not checked here (see verify_features)."""
    import cv2  # here, so that a pipeline without loop closure runs where OpenCV is absent

    count = len(points_query)
    none = np.zeros(count, bool)
    if count < max(MIN_POINTS_FOR_MODEL, params.min_inliers):
        return Verification(none, 0.0, False, f"{count} matches < {params.min_inliers}")
    query = np.ascontiguousarray(points_query, np.float64)
    match = np.ascontiguousarray(points_match, np.float64)
    cv2.setRNGSeed(params.seed)  # OpenCV's RANSAC samples from its global generator
    rotation = translation = None
    pose_inliers = 0
    if camera is not None:
        essential, mask = cv2.findEssentialMat(
            match,
            query,
            camera,
            method=cv2.RANSAC,
            prob=params.ransac_confidence,
            threshold=params.ransac_threshold_px,
        )
        if essential is not None and essential.shape == (3, 3):
            pose_inliers, r, t, pose_mask = cv2.recoverPose(
                essential, match, query, camera, mask=mask.copy()
            )
            rotation, translation = r, t.ravel()
    else:
        _, mask = cv2.findFundamentalMat(
            match, query, cv2.FM_RANSAC, params.ransac_threshold_px, params.ransac_confidence
        )
    if mask is None:
        return Verification(none, 0.0, False, "RANSAC found no model")
    inlier_mask = mask.ravel().astype(bool)
    inliers = int(inlier_mask.sum())
    ratio = inliers / max(keypoint_count, 1)
    if inliers < params.min_inliers:
        reason = f"{inliers} inliers < {params.min_inliers}"
    elif ratio < params.min_inlier_ratio:
        reason = f"inlier ratio {ratio:.3f} < {params.min_inlier_ratio:g}"
    else:
        reason = ""
    return Verification(
        inlier_mask, ratio, not reason, reason, rotation, translation, int(pose_inliers)
    )


class LoopDetector:
    """Finds and verifies loops of a query keyframe against a KeyframeMap."""

    def __init__(
        self, keyframe_map: KeyframeMap, vocabulary: Vocabulary | None, params: LoopParams
    ) -> None:
        self.map = keyframe_map
        self.vocabulary = vocabulary
        self.params = params
        self.camera: np.ndarray | None = None  # [3, 3] K once known (camera_info, stereo)
        # Keyframe ids from here on are this session's (lower ones come from a loaded map).
        self.session_start_id = 0

    def candidates(
        self, bow: tuple[np.ndarray, np.ndarray], exclude: Sequence[int] = ()
    ) -> list[tuple[MapKeyframe, float]]:
        """The top_k map keyframes by bag of words, the recent window and exclude left out."""
        if self.vocabulary is None:
            return []
        keyframes = list(self.map)
        recent = self.params.exclude_recent
        # Only this session's keyframes are recent: a loaded map's newest are not.
        skip = set(exclude) | {
            k.keyframe_id
            for k in (keyframes[-recent:] if recent else [])
            if k.keyframe_id >= self.session_start_id
        }
        by_id = {k.keyframe_id: k for k in keyframes}
        database = (
            (k.keyframe_id, k.words, k.weights)
            for k in keyframes
            if k.words is not None and k.keyframe_id not in skip
        )
        best = top_k(bow, database, self.params.top_k, self.vocabulary.size, self.params.min_score)
        return [(by_id[i], score) for i, score in best]

    def query(
        self,
        query_id: int,
        query_stamp_ns: int,
        features: Features,
        matcher: Matcher,
        bow: tuple[np.ndarray, np.ndarray] | None = None,
        exclude: Sequence[int] = (),
    ) -> LoopQuery:
        """Retrieve, match (one matcher call for all candidates) and verify."""
        start = time.perf_counter()
        if bow is None:
            bow = self.bow(features)
        found = self.candidates(bow, exclude) if bow is not None else []
        retrieved = time.perf_counter()
        pairs: list[PairMatches] = (
            matcher.match(features, [k.features() for k, _ in found]) if found else []
        )
        matched = time.perf_counter()
        result = LoopQuery()
        for (keyframe, score), pair in zip(found, pairs, strict=True):
            matches0 = np.asarray(pair.matches0)
            query_indices = np.flatnonzero(matches0 >= 0).astype(np.int32)
            match_indices = matches0[query_indices].astype(np.int32)
            verification = verify_features(
                features,
                keyframe.features(),
                query_indices,
                match_indices,
                self.params,
                self.camera,
            )
            result.candidates.append(
                LoopCandidate(
                    query_id=int(query_id),
                    query_stamp_ns=int(query_stamp_ns),
                    match_id=keyframe.keyframe_id,
                    match_stamp_ns=keyframe.stamp_ns,
                    score=score,
                    query_indices=query_indices,
                    match_indices=match_indices,
                    match_scores=np.asarray(pair.scores0, np.float32)[query_indices],
                    verification=verification,
                )
            )
        done = time.perf_counter()
        result.timings_ms = {
            "retrieval": 1e3 * (retrieved - start),
            "matching": 1e3 * (matched - retrieved),
            "verification": 1e3 * (done - matched),
            "total": 1e3 * (done - start),
        }
        return result

    def bow(self, features: Features) -> tuple[np.ndarray, np.ndarray] | None:
        if self.vocabulary is None:
            return None
        return self.vocabulary.bow(features.descriptors, features.descriptor_kind)
