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

A monocular map's graph is Sim(3) (``loop_similarity``): each keyframe also has a
scale, and the scale drift along the loop is spread over the odometry edges
(``odometry_scale_sigma`` each); a keyframe's scale correction rescales the
landmarks it anchors and its frames' offsets. A loop's noise is its PnP fit's own
covariance (``loop_covariance_from_fit``), so a loop that is poorly conditioned
(a wall seen through part of the view) pulls only where it is measured.

The pose graph moves keyframes as rigid bodies; the landmarks at the query, which
the loop's PnP used, were the window BA's and carry its bias, so the old keyframe
lands a little off (degrees on the generated loop room). ORB-SLAM follows the pose
graph with a global BA; so does a monocular map here (``loop_global_ba``): one robust
bundle adjustment over the map's keyframes (their observations are kept when they
leave the window, ObservationMemory) plus the loop's verified inliers as the old
keyframe's observations of the query's landmarks, the map's first two keyframes held
for gauge and scale. Landmarks that left the window start triangulated from the
graph's poses; only the window's are written back.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
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
    # Monocular maps close loops in a Sim(3) pose graph: the log-scale drift one
    # keyframe-to-keyframe edge may take up (false: SE(3), the scale drift stays).
    "loop_similarity": True,
    "odometry_scale_sigma": 0.03,
    # A loop's noise from its PnP fit (Gauss-Newton covariance over the inliers, scaled
    # by their reprojection residual); false: the loop sigmas for every loop.
    "loop_covariance_from_fit": True,
    # The least reprojection noise a fit's covariance assumes, in pixels: an exact fit
    # (generated data) is not an infinitely certain loop.
    "loop_pixel_sigma_floor": 0.5,
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
    # After a loop closes, one bundle adjustment over a monocular map's keyframes
    # (ORB-SLAM's global BA): their kept observations plus the loop's inlier matches;
    # skipped for a map with more keyframes than loop_global_ba_keyframes, after a loss,
    # and for metric (stereo, RGB-D) maps, whose pose graph keeps the scale already.
    "loop_global_ba": True,
    "loop_global_ba_keyframes": 300,
    "loop_global_ba_iterations": 20,  # its Levenberg-Marquardt iterations
}

# The edge between maps (a loss, then the constant-velocity guess): loose enough to
# follow any loop, tight enough to keep the graph determined without one.
GUESS_SIGMA_DEG = 90.0
GUESS_SIGMA_STEPS = 100.0
GUESS_SCALE_SIGMA = 10.0  # a scale the edge does not measure (log scale)

POSITIVE = (
    "loop_rotation_sigma_deg",
    "loop_translation_sigma",
    "loop_robust_k",
    "odometry_rotation_sigma_deg",
    "odometry_translation_sigma",
    "odometry_scale_sigma",
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
    # [6, 6] covariance of relative (GTSAM's Pose3 tangent: rotation, then translation,
    # perturbed on the right) from the PnP fit; None: the configured sigmas.
    covariance: np.ndarray | None = None

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


@dataclass(frozen=True)
class KeyframeObservations:
    """A map keyframe's observations kept for the global BA: keypoints [N, 2], track ids
    [N] and valid [N] (the window keyframe's own array, so the window BA's later
    rejections show here too)."""

    keypoints: np.ndarray
    track_ids: np.ndarray
    valid: np.ndarray


class ObservationMemory:
    """KeyframeObservations of the last ``capacity`` map keyframes, by frame id: 25
    bytes a keypoint (float64 pixels, int64 track ids, bool flags; the frame's own
    arrays, not copies)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._kept: OrderedDict[int, KeyframeObservations] = OrderedDict()

    def add(self, frame_id: int, observations: KeyframeObservations) -> None:
        if frame_id in self._kept:
            return
        self._kept[frame_id] = observations
        while len(self._kept) > self.capacity:
            self._kept.popitem(last=False)

    def get(self, frame_id: int) -> KeyframeObservations | None:
        return self._kept.get(frame_id)


def loop_observations(
    loop: Any, query_track_ids: np.ndarray, query_valid: np.ndarray | None
) -> list[tuple[int, int]]:
    """(match keypoint index, query track id) of the loop's verified inliers whose query
    observation is valid: the match keyframe observing the query's landmarks."""
    mask = np.asarray(loop.verification.inlier_mask, dtype=bool)
    query_indices = np.asarray(loop.query_indices, dtype=np.int64)[mask]
    match_indices = np.asarray(loop.match_indices, dtype=np.int64)[mask]
    valid = np.ones(len(query_track_ids), dtype=bool) if query_valid is None else query_valid
    keep = valid[query_indices]
    return list(
        zip(
            match_indices[keep].tolist(),
            query_track_ids[query_indices[keep]].tolist(),
            strict=True,
        )
    )


def _initial_points(
    poses: Sequence[np.ndarray],
    seen: Mapping[int, list[tuple[int, np.ndarray]]],
    landmarks: Mapping[int, np.ndarray],
    k: np.ndarray,
    conf: Mapping[str, Any],
) -> dict[int, np.ndarray]:
    """The global BA's starting points of the tracks seen twice or more (see
    global_bundle_adjust), by track id."""
    points: dict[int, np.ndarray] = {}
    pairs: dict[tuple[int, int], list[int]] = {}
    for track, views in seen.items():
        if len(views) < 2:
            continue
        if track in landmarks:
            points[track] = np.asarray(landmarks[track], dtype=np.float64)
        else:
            pairs.setdefault((views[0][0], views[-1][0]), []).append(track)
    for (a, b), tracks in pairs.items():
        pixels_a = np.array([seen[t][0][1] for t in tracks])
        pixels_b = np.array([seen[t][-1][1] for t in tracks])
        new, good = geometry.triangulate_checked(
            k,
            poses[a],
            poses[b],
            pixels_a,
            pixels_b,
            float(conf["max_reprojection_px"]),
            float(conf["min_triangulation_deg"]),
        )
        points.update(zip(np.asarray(tracks)[good].tolist(), new[good], strict=True))
    return points


def global_bundle_adjust(
    poses: Sequence[np.ndarray],
    observations: Sequence[KeyframeObservations],
    extra: Sequence[tuple[int, np.ndarray, int]],
    landmarks: Mapping[int, np.ndarray],
    k: np.ndarray,
    conf: Mapping[str, Any],
    fixed: int = 2,
) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
    """One robust bundle adjustment over keyframes at poses ([4, 4] camera-to-world) with
    their valid observations, plus extra (keyframe index, [2] pixel, track id)
    observations (a loop's inliers). The first `fixed` keyframes are held (gauge, and
    the scale of a monocular map). A track seen by two keyframes or more starts at its
    landmark where the map still has it, else triangulated from its first and last
    observers (kept when it reprojects within max_reprojection_px in both and has
    min_triangulation_deg of parallax). Returns the poses and the optimised points by
    track id; GTSAM's RuntimeError (an indeterminate system) reaches the caller, which
    says why the map kept its poses."""
    import gtsam

    seen: dict[int, list[tuple[int, np.ndarray]]] = {}
    for i, kept in enumerate(observations):
        for index in np.flatnonzero(kept.valid).tolist():
            seen.setdefault(int(kept.track_ids[index]), []).append(
                (i, kept.keypoints[index].astype(np.float64))
            )
    for i, pixel, track in extra:
        if track in seen and all(j != i for j, _ in seen[track]):
            seen[track].append((i, np.asarray(pixel, dtype=np.float64)))
    points = _initial_points(poses, seen, landmarks, k, conf)
    noise = robust_pixel_noise(gtsam, conf)
    calibration = gtsam.Cal3_S2(k[0, 0], k[1, 1], 0.0, k[0, 2], k[1, 2])
    graph = gtsam.NonlinearFactorGraph()
    values = gtsam.Values()
    for i, pose in enumerate(poses):
        values.insert(gtsam.symbol("x", i), gtsam.Pose3(pose))
        if i < fixed:
            graph.add(
                gtsam.PriorFactorPose3(
                    gtsam.symbol("x", i),
                    gtsam.Pose3(pose),
                    gtsam.noiseModel.Isotropic.Sigma(6, 1e-6),
                )
            )
    tracks = sorted(points)
    for j, track in enumerate(tracks):
        values.insert(gtsam.symbol("l", j), gtsam.Point3(points[track]))
        for i, pixel in seen[track]:
            graph.add(
                gtsam.GenericProjectionFactorCal3_S2(
                    gtsam.Point2(*pixel),
                    noise,
                    gtsam.symbol("x", i),
                    gtsam.symbol("l", j),
                    calibration,
                )
            )
    params = gtsam.LevenbergMarquardtParams()
    params.setMaxIterations(int(conf["loop_global_ba_iterations"]))
    result = gtsam.LevenbergMarquardtOptimizer(graph, values, params).optimize()
    return (
        [result.atPose3(gtsam.symbol("x", i)).matrix() for i in range(len(poses))],
        {t: np.asarray(result.atPoint3(gtsam.symbol("l", j))) for j, t in enumerate(tracks)},
    )


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
    pixel_sigma_floor: float = 0.0,
    with_covariance: bool = True,
    query_valid: np.ndarray | None = None,
) -> LoopConstraint | str:
    """The loop's relative pose by PnP of the match keyframe against the query's
    landmarks; a reason when it cannot be measured or its PnP inliers cover less
    than min_coverage of the match keyframe's image ((height, width) image_size).
    With with_covariance the constraint carries the PnP fit's covariance
    (pnp_covariance, its residual's sigma at least pixel_sigma_floor), else None.

    loop: a LoopCandidate (query_indices / match_indices into the two keyframes'
    keypoints, verification.inlier_mask). query_pose: the query's camera-to-world.
    query_valid: [N] False where the window's BA rejected the query's observation of its
    track (a wrong association: its landmark lies elsewhere); those are left out.
    """
    mask = np.asarray(loop.verification.inlier_mask, dtype=bool)
    query_indices = np.asarray(loop.query_indices, dtype=np.int64)[mask]
    match_indices = np.asarray(loop.match_indices, dtype=np.int64)[mask]
    if len(query_indices) and (
        query_indices.max() >= len(query_track_ids) or match_indices.max() >= len(match_keypoints)
    ):
        return "its matches index past the keyframes' keypoints"
    tracks = query_track_ids[query_indices].tolist()
    valid = (
        np.ones(len(tracks), dtype=bool)
        if query_valid is None
        else np.asarray(query_valid, dtype=bool)[query_indices]
    )
    known = [i for i, t in enumerate(tracks) if valid[i] and t in landmarks]
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
    used = match_keypoints[match_indices[known][result.inliers]].astype(np.float64)
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
        pnp_covariance(k, result.pose, points[result.inliers], used, pixel_sigma_floor)
        if with_covariance
        else None,
    )


def pnp_covariance(
    k: np.ndarray,
    pose: np.ndarray,
    points: np.ndarray,
    pixels: np.ndarray,
    pixel_sigma_floor: float = 0.0,
) -> np.ndarray | None:
    """[6, 6] Gauss-Newton covariance of a PnP pose (camera-to-world, perturbed on the
    right: rotation, then translation) from its [N, 3] inlier points at [N, 2] pixels:
    sigma^2 (J^T J)^-1, sigma^2 the reprojection residual's variance (at least
    pixel_sigma_floor squared). None when the
    fit does not determine the pose (fewer than 4 points, a singular J^T J).

    It carries the fit's own conditioning: a wall seen through part of the view
    trades rotation for sideways translation, and the two come out correlated and
    loose, so the pose graph moves the loop along that direction at little cost.
    """
    if len(points) < 4:
        return None
    step = 1e-6

    def residuals(delta: np.ndarray) -> np.ndarray:
        perturbed = pose @ geometry.make_pose(cv2.Rodrigues(delta[:3])[0], delta[3:])
        return (geometry.project(k, geometry.invert(perturbed), points)[0] - pixels).reshape(-1)

    base = residuals(np.zeros(6))
    jacobian = np.stack([(residuals(step * np.eye(6)[i]) - base) / step for i in range(6)], axis=1)
    variance = float(base @ base) / max(len(base) - 6, 1)
    information = jacobian.T @ jacobian / max(variance, pixel_sigma_floor**2, 1e-12)
    if np.linalg.cond(information) > 1e12:
        return None
    return np.linalg.inv(information)


def robust_kernel(gtsam: Any, name: str) -> Any:
    """GTSAM's m-estimator class for the robust_loss setting: Huber, else Cauchy."""
    return (
        gtsam.noiseModel.mEstimator.Huber if name == "huber" else gtsam.noiseModel.mEstimator.Cauchy
    )


def robust_pixel_noise(gtsam: Any, conf: Mapping[str, Any]) -> Any:
    """The BA's noise on one 2-D observation: pixel_sigma under the robust_loss kernel
    at robust_k."""
    return gtsam.noiseModel.Robust.Create(
        robust_kernel(gtsam, str(conf["robust_loss"])).Create(float(conf["robust_k"])),
        gtsam.noiseModel.Isotropic.Sigma(2, float(conf["pixel_sigma"])),
    )


def median_step(poses: Sequence[np.ndarray]) -> float:
    """Median distance between consecutive poses (the map's keyframe spacing); 1 if none."""
    if len(poses) < 2:
        return 1.0
    steps = np.linalg.norm(np.diff([p[:3, 3] for p in poses], axis=0), axis=1)
    step = float(np.median(steps))
    return step if step > 0 else 1.0


def _similarity(gtsam: Any, pose: np.ndarray) -> Any:
    return gtsam.Similarity3(gtsam.Rot3(pose[:3, :3]), gtsam.Point3(pose[:3, 3]), 1.0)


def _pose_and_scale(similarity: Any) -> tuple[np.ndarray, float]:
    """Camera-to-world pose and local scale of a GTSAM Similarity3 (p -> s (R p + t))."""
    scale = float(similarity.scale())
    translation = scale * np.asarray(similarity.translation())
    return geometry.make_pose(similarity.rotation().matrix(), translation), scale


def optimise_pose_graph(
    poses: Sequence[np.ndarray],
    loops: Sequence[tuple[int, int, np.ndarray, np.ndarray | None]],
    conf: Mapping[str, Any],
    robust_loss: str = "cauchy",
    breaks: Sequence[int] = (),
    similarity: bool = False,
) -> tuple[list[np.ndarray], list[bool], list[float]]:
    """Poses ([4, 4] camera-to-world, in order) after closing loops.

    loops: (query index, match index, match pose in the query camera, its [6, 6]
    covariance or None for the configured loop sigmas). Returns the optimised poses,
    per loop whether it agrees with them within the kernel's threshold (an outlier
    otherwise), and each pose's scale correction (1 without similarity). The first
    pose is held fixed. breaks: indices of poses that start a new map after a loss;
    the edge into each is only the constant-velocity guess, so it is nearly free and
    a loop across it moves the whole later map into the earlier one (relocalisation).

    similarity: a Sim(3) graph (monocular maps): each keyframe also has a scale, each
    odometry edge lets it drift by odometry_scale_sigma, and a loop, whose PnP measures
    no relative scale, leaves it free, so the scale drift along the loop is spread
    over its edges instead of bending them.
    """
    import gtsam

    step = median_step(poses)

    def sigmas(rotation_deg: float, translation_steps: float, scale: float) -> np.ndarray:
        pose_sigmas = [np.radians(rotation_deg)] * 3 + [translation_steps * step] * 3
        return np.array(pose_sigmas + ([scale] if similarity else []))

    def gaussian(covariance: np.ndarray | None, fixed: np.ndarray) -> np.ndarray:
        if covariance is None:
            return np.diag(fixed**2)
        if not similarity:
            return covariance
        full = np.diag(fixed**2)
        full[:6, :6] = covariance
        return full

    odometry_sigmas = sigmas(
        conf["odometry_rotation_sigma_deg"],
        conf["odometry_translation_sigma"],
        conf["odometry_scale_sigma"],
    )
    guess_sigmas = sigmas(GUESS_SIGMA_DEG, GUESS_SIGMA_STEPS, GUESS_SCALE_SIGMA)
    loop_sigmas = sigmas(
        conf["loop_rotation_sigma_deg"], conf["loop_translation_sigma"], GUESS_SCALE_SIGMA
    )
    kernel = robust_kernel(gtsam, robust_loss)
    if similarity:
        element, between, prior = (
            _similarity,
            gtsam.BetweenFactorSimilarity3,
            gtsam.PriorFactorSimilarity3,
        )
    else:
        element, between, prior = (
            lambda _, pose: gtsam.Pose3(pose),
            gtsam.BetweenFactorPose3,
            gtsam.PriorFactorPose3,
        )
    dim = 7 if similarity else 6
    graph = gtsam.NonlinearFactorGraph()
    values = gtsam.Values()
    for i, pose in enumerate(poses):
        values.insert(i, element(gtsam, pose))
    graph.add(prior(0, element(gtsam, poses[0]), gtsam.noiseModel.Isotropic.Sigma(dim, 1e-6)))
    odometry_noise = gtsam.noiseModel.Diagonal.Sigmas(odometry_sigmas)
    guess_noise = gtsam.noiseModel.Diagonal.Sigmas(guess_sigmas)
    for i in range(1, len(poses)):
        relative = geometry.invert(poses[i - 1]) @ poses[i]
        noise = guess_noise if i in breaks else odometry_noise
        graph.add(between(i - 1, i, element(gtsam, relative), noise))
    covariances = [gaussian(covariance, loop_sigmas) for *_, covariance in loops]
    for (query, match, relative, _), covariance in zip(loops, covariances, strict=True):
        noise = gtsam.noiseModel.Robust.Create(
            kernel.Create(float(conf["loop_robust_k"])),
            gtsam.noiseModel.Gaussian.Covariance(covariance),
        )
        graph.add(between(query, match, element(gtsam, relative), noise))
    params = gtsam.LevenbergMarquardtParams()
    params.setMaxIterations(int(conf["loop_iterations"]))
    result = gtsam.LevenbergMarquardtOptimizer(graph, values, params).optimize()
    if similarity:
        solved = [_pose_and_scale(result.atSimilarity3(i)) for i in range(len(poses))]
    else:
        solved = [(result.atPose3(i).matrix(), 1.0) for i in range(len(poses))]
    agree = []
    for (query, match, relative, _), covariance in zip(loops, covariances, strict=True):
        # The match in the query camera, in the query's local scale as the loop measured
        # it; the pose part only: the relative scale of a loop is not measured.
        estimate = scaled(
            geometry.invert(solved[query][0]) @ solved[match][0], 1 / solved[query][1]
        )
        error = gtsam.Pose3(relative).between(gtsam.Pose3(estimate))
        whitened = np.linalg.solve(
            np.linalg.cholesky(covariance[:6, :6]), gtsam.Pose3.Logmap(error)
        )
        agree.append(bool(np.linalg.norm(whitened) <= conf["loop_robust_k"]))
    return [pose for pose, _ in solved], agree, [scale for _, scale in solved]


def close(
    poses: Sequence[np.ndarray],
    index: Mapping[int, int],
    constraints: Sequence[LoopConstraint],
    conf: Mapping[str, Any],
    breaks: Sequence[int] = (),
    similarity: bool = False,
) -> tuple[list[np.ndarray], list[float], list[LoopConstraint], list[tuple[LoopConstraint, str]]]:
    """(optimised poses, their scale corrections, the loops kept, (loop, why) for those
    refused).

    Loops that still disagree with the optimised graph are dropped and the graph is
    optimised again without them, so a refused loop leaves no trace in the map.
    """
    kept = list(constraints)
    refused: list[tuple[LoopConstraint, str]] = []
    unchanged = list(poses), [1.0] * len(poses)
    from_fit = bool(conf.get("loop_covariance_from_fit", False))
    while kept:
        edges = [
            (index[c.query_id], index[c.match_id], c.relative, c.covariance if from_fit else None)
            for c in kept
        ]
        try:
            optimised, agree, scales = optimise_pose_graph(
                poses, edges, conf, str(conf.get("robust_loss", "cauchy")), breaks, similarity
            )
        except RuntimeError as error:  # GTSAM: e.g. an indeterminant system
            return *unchanged, [], refused + [(c, f"pose graph failed: {error}") for c in kept]
        if all(agree):
            return optimised, scales, kept, refused
        why = f"disagrees with the odometry by more than {conf['loop_robust_k']:g} sigmas"
        refused += [(c, why) for c, ok in zip(kept, agree, strict=True) if not ok]
        kept = [c for c, ok in zip(kept, agree, strict=True) if ok]
    return *unchanged, [], refused


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


def similarity_correction(old: np.ndarray, new: np.ndarray, scale: float) -> np.ndarray:
    """[4, 4] map from the world around a keyframe at old pose to the world around it at
    new pose with its scale correction: new (scaled) after old's inverse."""
    scaled_new = new.copy()
    scaled_new[:3, :3] *= scale
    return scaled_new @ geometry.invert(old)


def scaled(relative: np.ndarray, scale: float) -> np.ndarray:
    """A [4, 4] offset between cameras with its translation times scale."""
    out = relative.copy()
    out[:3, 3] *= scale
    return out
