"""Loop closure in the back-end: verified loops become pose-graph constraints.

A loop (the matcher's ``LoopCandidate``: the query keyframe, an old map keyframe,
their matches and the essential-matrix verification) is turned into a relative
pose in the map's scale. Monocular, the verification's translation has no
length, and the old keyframe's landmarks left the map with the sliding window;
the query's have not. So the old keyframe is localised by PnP (seeded RANSAC)
of its loop-inlier keypoints against the landmarks the query's matched
keypoints name: that pose is metric in the current map's scale where the query
is, which is what the drifted graph must be pulled to. A loop whose old
keyframe PnP cannot place (too few landmarks among the inliers, too few PnP
inliers: typically a wrong loop) adds no constraint and says why.

The pose graph has one Pose3 per keyframe of the back-end (the first one held
fixed for the gauge). Consecutive keyframes are joined by their current relative
pose (odometry edges, Gaussian); each loop adds a BetweenFactorPose3 under a
robust kernel (Cauchy or Huber, the back-end's ``robust_loss``, threshold
``loop_robust_k`` sigmas): beyond the threshold a loop's pull fades (Cauchy),
so a wrong loop, which disagrees with every odometry edge around it, moves the
graph little, while a true one, which the edges can absorb a little each, closes.
After Levenberg-Marquardt a loop still disagreeing with the optimised graph by
more than the threshold is refused and the graph is optimised again without it.
Each keyframe's correction moves the landmarks it anchors (their first observer
in the window) and the frames anchored to it.

After a loss the back-end starts a new map where the constant-velocity model
guesses; the edge into its first keyframe is that guess, nearly free in the
graph. A loop from the new map to the old one therefore relocalises the new
map: it moves as a whole into the old map, which stays where it was.

No Sim(3): a drift of the monocular scale along the loop stays in the map.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from superglue_ros.io.stamps import stamp_to_ns
from superglue_ros.pipeline.loop_closure import coverage

from . import geometry

default_conf: dict[str, Any] = {
    "loop_rotation_sigma_deg": 1.0,  # a loop constraint's rotation noise
    "loop_translation_sigma": 0.2,  # its translation noise, in median keyframe steps
    "loop_robust_k": 5.0,  # kernel threshold, in sigmas: disagreements corrected in full
    "odometry_rotation_sigma_deg": 1.0,  # noise of one keyframe-to-keyframe edge
    "odometry_translation_sigma": 0.2,  # its translation noise, in median keyframe steps
    "loop_iterations": 50,  # Levenberg-Marquardt iterations of the pose graph
    # Keyframes whose keypoints are kept for loops (float32 pixels, 8 bytes a keypoint);
    # the oldest are forgotten first, and a loop to a forgotten one adds no constraint.
    "loop_keyframes": 10000,
    # Share of the match keyframe's image (the 8 x 8 cells holding its keypoints) its PnP
    # inliers must cover (0: no check). Localised from part of the view, rotation and
    # sideways translation trade off and the constraint can be degrees off; but such a
    # loop still helps where the drift is larger (docs/evaluation.md), so none is refused
    # by default.
    "loop_min_pnp_coverage": 0.0,
}

# The edge between maps (a loss, then the constant-velocity guess): loose enough to
# follow any loop, tight enough to keep the graph determined without one.
GUESS_SIGMA_DEG = 90.0
GUESS_SIGMA_STEPS = 100.0

POSITIVE = (
    "loop_rotation_sigma_deg",
    "loop_translation_sigma",
    "loop_robust_k",
    "odometry_rotation_sigma_deg",
    "odometry_translation_sigma",
)


def check_conf(values: Mapping[str, Any]) -> None:
    """ValueError when a noise or kernel setting is not positive (zero would make a
    constraint infinitely certain)."""
    for name in POSITIVE:
        if not values[name] > 0:
            raise ValueError(f"odometry setting {name} must be positive, got {values[name]!r}")


@dataclass
class LoopConstraint:
    """One accepted loop: relative is the match keyframe's pose in the query camera,
    [4, 4], in the map's scale; inliers: the matcher's verification inliers."""

    query_id: int
    query_stamp_ns: int
    match_id: int
    match_stamp_ns: int
    inliers: int
    relative: np.ndarray
    pnp_inliers: int

    def as_dict(self) -> dict[str, int]:
        return {
            "query_stamp_ns": self.query_stamp_ns,
            "match_stamp_ns": self.match_stamp_ns,
            "inliers": self.inliers,
        }


@dataclass(frozen=True)
class LoopInliers:
    """The part of a loop's verification the back-end reads: [L] bool per match."""

    inlier_mask: np.ndarray

    @property
    def inliers(self) -> int:
        return int(self.inlier_mask.sum())


@dataclass(frozen=True)
class LoopObservation:
    """An accepted loop as a LoopClosure message carries it (what close_loops reads of
    a LoopCandidate): the two keyframes, their matches and the verification's inliers."""

    query_id: int
    query_stamp_ns: int
    match_id: int
    match_stamp_ns: int
    query_indices: np.ndarray  # [L] int64 into the query keyframe's keypoints
    match_indices: np.ndarray  # [L] int64 into the match keyframe's keypoints
    verification: LoopInliers


def loop_from_message(message: Any) -> LoopObservation:
    """A LoopObservation from a superglue_ros_msgs/LoopClosure (rclpy or rosbags);
    ValueError when its arrays disagree in length."""
    query_indices = np.asarray(message.query_indices, dtype=np.int64)
    match_indices = np.asarray(message.match_indices, dtype=np.int64)
    inliers = np.asarray(message.inliers, dtype=bool)
    if not len(query_indices) == len(match_indices) == len(inliers):
        raise ValueError(
            f"loop {message.query_keyframe_id}-{message.match_keyframe_id}: "
            f"{len(query_indices)} query indices, {len(match_indices)} match indices and "
            f"{len(inliers)} inlier flags"
        )
    if len(query_indices) and min(query_indices.min(), match_indices.min()) < 0:
        raise ValueError(
            f"loop {message.query_keyframe_id}-{message.match_keyframe_id}: negative indices"
        )
    return LoopObservation(
        int(message.query_keyframe_id),
        stamp_to_ns(message.query_stamp),
        int(message.match_keyframe_id),
        stamp_to_ns(message.match_stamp),
        query_indices,
        match_indices,
        LoopInliers(inliers),
    )


class KeypointMemory:
    """The keypoints of the last ``capacity`` keyframes, by frame id (float32)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._keypoints: OrderedDict[int, np.ndarray] = OrderedDict()

    def add(self, frame_id: int, keypoints: np.ndarray) -> None:
        self._keypoints[frame_id] = np.asarray(keypoints, dtype=np.float32)
        while len(self._keypoints) > self.capacity:
            self._keypoints.popitem(last=False)

    def get(self, frame_id: int) -> np.ndarray | None:
        return self._keypoints.get(frame_id)


def constraint_from_loop(
    loop: Any,
    query_pose: np.ndarray,
    query_track_ids: np.ndarray,
    match_keypoints: np.ndarray,
    landmarks: Mapping[int, np.ndarray],
    k: np.ndarray,
    threshold_px: float,
    min_inliers: int,
    image_size: tuple[int, int] = (0, 0),
    min_coverage: float = 0.0,
) -> LoopConstraint | str:
    """The loop's relative pose by PnP of the match keyframe against the query's
    landmarks; a reason when it cannot be measured or its PnP inliers cover less
    than min_coverage of the match keyframe's image ((height, width) image_size).

    loop: a LoopCandidate (query_indices / match_indices into the two keyframes'
    keypoints, verification.inlier_mask). query_pose: the query's camera-to-world.
    """
    mask = np.asarray(loop.verification.inlier_mask, dtype=bool)
    query_indices = np.asarray(loop.query_indices, dtype=np.int64)[mask]
    match_indices = np.asarray(loop.match_indices, dtype=np.int64)[mask]
    if len(query_indices) and (
        query_indices.max() >= len(query_track_ids) or match_indices.max() >= len(match_keypoints)
    ):
        return "its matches index past the keyframes' keypoints"
    tracks = query_track_ids[query_indices].tolist()
    known = [i for i, t in enumerate(tracks) if t in landmarks]
    if len(known) < min_inliers:
        return f"{len(known)} of its inliers are landmarks of the query ({min_inliers} needed)"
    points = np.array([landmarks[tracks[i]] for i in known])
    result = geometry.solve_pnp(
        k,
        points,
        match_keypoints[match_indices[known]].astype(np.float64),
        threshold_px,
        min_inliers,
    )
    if isinstance(result, str):
        return f"match keyframe not localised against the query's landmarks: {result}"
    used = match_keypoints[match_indices[known][result.inliers]]
    covered = coverage(used, match_keypoints, image_size)
    if covered < min_coverage:
        return (
            f"its {len(result.inliers)} PnP inliers cover {covered:.2f} of the match keyframe's "
            f"image < {min_coverage:g} (a poorly conditioned pose)"
        )
    return LoopConstraint(
        int(loop.query_id),
        int(loop.query_stamp_ns),
        int(loop.match_id),
        int(loop.match_stamp_ns),
        int(loop.verification.inliers),
        geometry.invert(query_pose) @ result.pose,
        len(result.inliers),
    )


def median_step(poses: Sequence[np.ndarray]) -> float:
    """Median distance between consecutive poses (the map's keyframe spacing); 1 if none."""
    if len(poses) < 2:
        return 1.0
    steps = np.linalg.norm(np.diff([p[:3, 3] for p in poses], axis=0), axis=1)
    step = float(np.median(steps))
    return step if step > 0 else 1.0


def optimise_pose_graph(
    poses: Sequence[np.ndarray],
    loops: Sequence[tuple[int, int, np.ndarray]],
    conf: Mapping[str, Any],
    robust_loss: str = "cauchy",
    breaks: Sequence[int] = (),
) -> tuple[list[np.ndarray], list[bool]]:
    """Poses ([4, 4] camera-to-world, in order) after closing loops.

    loops: (query index, match index, match pose in the query camera). Returns the
    optimised poses and, per loop, whether it agrees with them within the kernel's
    threshold (an outlier otherwise). The first pose is held fixed. breaks: indices of
    poses that start a new map after a loss; the edge into each is only the
    constant-velocity guess, so it is nearly free and a loop across it moves the
    whole later map into the earlier one (relocalisation).
    """
    import gtsam

    step = median_step(poses)

    def sigmas(rotation_deg: float, translation_steps: float) -> np.ndarray:
        return np.array([np.radians(rotation_deg)] * 3 + [translation_steps * step] * 3)

    odometry_noise = gtsam.noiseModel.Diagonal.Sigmas(
        sigmas(conf["odometry_rotation_sigma_deg"], conf["odometry_translation_sigma"])
    )
    guess_noise = gtsam.noiseModel.Diagonal.Sigmas(sigmas(GUESS_SIGMA_DEG, GUESS_SIGMA_STEPS))
    loop_sigmas = sigmas(conf["loop_rotation_sigma_deg"], conf["loop_translation_sigma"])
    kernel = (
        gtsam.noiseModel.mEstimator.Huber
        if robust_loss == "huber"
        else gtsam.noiseModel.mEstimator.Cauchy
    )
    loop_noise = gtsam.noiseModel.Robust.Create(
        kernel.Create(float(conf["loop_robust_k"])), gtsam.noiseModel.Diagonal.Sigmas(loop_sigmas)
    )
    graph = gtsam.NonlinearFactorGraph()
    values = gtsam.Values()
    for i, pose in enumerate(poses):
        values.insert(i, gtsam.Pose3(pose))
    graph.add(
        gtsam.PriorFactorPose3(0, gtsam.Pose3(poses[0]), gtsam.noiseModel.Isotropic.Sigma(6, 1e-6))
    )
    for i in range(1, len(poses)):
        relative = geometry.invert(poses[i - 1]) @ poses[i]
        noise = guess_noise if i in breaks else odometry_noise
        graph.add(gtsam.BetweenFactorPose3(i - 1, i, gtsam.Pose3(relative), noise))
    for query, match, relative in loops:
        graph.add(gtsam.BetweenFactorPose3(query, match, gtsam.Pose3(relative), loop_noise))
    params = gtsam.LevenbergMarquardtParams()
    params.setMaxIterations(int(conf["loop_iterations"]))
    result = gtsam.LevenbergMarquardtOptimizer(graph, values, params).optimize()
    optimised = [result.atPose3(i).matrix() for i in range(len(poses))]
    agree = []
    for query, match, relative in loops:
        error = gtsam.Pose3(relative).between(
            gtsam.Pose3(geometry.invert(optimised[query]) @ optimised[match])
        )
        whitened = gtsam.Pose3.Logmap(error) / loop_sigmas
        agree.append(bool(np.linalg.norm(whitened) <= conf["loop_robust_k"]))
    return optimised, agree


def close(
    poses: Sequence[np.ndarray],
    index: Mapping[int, int],
    constraints: Sequence[LoopConstraint],
    conf: Mapping[str, Any],
    breaks: Sequence[int] = (),
) -> tuple[list[np.ndarray], list[LoopConstraint], list[tuple[LoopConstraint, str]]]:
    """(optimised poses, the loops kept, (loop, why) for those refused).

    Loops that still disagree with the optimised graph are dropped and the graph is
    optimised again without them, so a refused loop leaves no trace in the map.
    """
    kept = list(constraints)
    refused: list[tuple[LoopConstraint, str]] = []
    while kept:
        edges = [(index[c.query_id], index[c.match_id], c.relative) for c in kept]
        try:
            optimised, agree = optimise_pose_graph(
                poses, edges, conf, str(conf.get("robust_loss", "cauchy")), breaks
            )
        except RuntimeError as error:  # GTSAM: e.g. an indeterminant system
            return list(poses), [], refused + [(c, f"pose graph failed: {error}") for c in kept]
        if all(agree):
            return optimised, kept, refused
        why = f"disagrees with the odometry by more than {conf['loop_robust_k']:g} sigmas"
        refused += [(c, why) for c, ok in zip(kept, agree, strict=True) if not ok]
        kept = [c for c, ok in zip(kept, agree, strict=True) if ok]
    return list(poses), [], refused


def move_landmarks(
    landmarks: dict[int, np.ndarray],
    keyframes: Sequence[tuple[np.ndarray | None, np.ndarray]],
) -> None:
    """Move each landmark by the correction ([4, 4], new pose times old pose inverse) of
    the first keyframe (in order) whose track ids hold it; others stay."""
    moved: set[int] = set()
    for track_ids, correction in keyframes:
        if track_ids is None:
            continue
        for track in track_ids.tolist():
            if track in landmarks and track not in moved:
                landmarks[track] = geometry.transform(correction, landmarks[track][None])[0]
                moved.add(track)
