"""A reference visual-odometry back-end over the matcher's messages: monocular, or
metric with the per-keypoint depths of stereo and RGB-D input.

Feed it every Correspondences message in order (:meth:`VisualOdometry.process`);
it answers with a pose per frame (camera-to-world, the first pose the identity;
arbitrary scale for mono input, metres with depths, see 4.):

1. Initialisation: the first keyframe is the reference; each later keyframe is
   tried against it. An essential matrix and a homography are fitted (seeded
   RANSAC) and scored as ORB-SLAM does; when the homography explains the matches
   nearly as well its motions compete with the essential matrix's. The pair is
   accepted when the winning motion triangulates enough well-conditioned points
   (in front of both cameras, reprojecting well, each with enough parallax): on
   forward motion the points off the axis qualify within a few frames while the
   median parallax would take many. Frames that arrived meanwhile are localised
   once the map exists.
2. Tracking: every frame is localised by PnP (seeded RANSAC, then Levenberg-Marquardt)
   against the landmarks its track ids name. A keyframe then enters the map:
   its new tracks are triangulated against the window's keyframes and a
   sliding window of keyframes is bundle-adjusted with GTSAM (robust Cauchy or
   Huber reprojection factors, the window's oldest keyframes held fixed for gauge and
   scale). Observations that still reproject badly are dropped as outliers.
   A keyframe PnP cannot place (it turned into ground the map has not reached yet)
   is bridged from the newest keyframe: their two-view motion, scaled by the
   landmarks both see.
3. Loss: a keyframe that neither PnP nor the bridge can place, a front-end reset (a
   keyframe with no buffered keyframe to match: the first frame or a time jump) or
   frame ids running backwards end the current map. The frame says so (state
   ``lost`` and a reason) and initialisation starts again from the next keyframes;
   the new map starts where the last two poses' velocity predicts the lost keyframe,
   scaled to the old map's keyframe spacing.
4. Depth (frames with ``depths``: stereo or RGB-D input): a keyframe with at least
   min_init_points usable depths starts the map by itself, its keypoints placed at
   their depths (no parallax wait; metric scale). Each later keyframe places its new
   tracks at their depths too (stereo: up to stereo_max_depth_baselines baselines)
   where an older window keyframe's observation agrees, and triangulates the rest.
   Bundle adjustment gives every observation with a depth a robust stereo factor
   (uL, uR, v) with uR = uL - fx * baseline / depth: the stereo pair's baseline
   (read off the depths and right_x the front-end sent) or, for RGB-D, a virtual
   one (rgbd_baseline_m); the scale is observed in every keyframe, so it does not
   drift. A depth the optimised
   landmark disagrees with (by max_reprojection_px of disparity) is dropped, the
   observation kept. A keyframe with too few depths starts a mono map instead.
5. Loops: :meth:`VisualOdometry.close_loops` takes the matcher's accepted loops of
   the keyframe just processed and closes them in a pose graph over the keyframes
   (odometry/loops.py: robust kernel, refusal of loops that disagree; after a loss
   a loop relocalises the new map into the old one). A monocular map is then bundle-
   adjusted as a whole (loop_global_ba): the kept keyframes' observations plus the
   loop's inlier matches, which tie the old keyframe to the query's landmarks.

Track ids are the landmark keys: a keypoint matched to a keyframe inherits that
keypoint's id, so ids already carry what the per-keyframe matches say.
Non-keyframe poses are stored relative to the newest keyframe of the window, so
they follow when bundle adjustment later refines that keyframe.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from . import geometry, loops
from .types import CameraIntrinsics, FrameObservation, PoseEstimate

INITIALIZING = "initializing"
TRACKING = "tracking"
LOST = "lost"
ROBUST_LOSSES = ("huber", "cauchy")

default_conf: dict[str, Any] = {
    "window_keyframes": 8,  # keyframes optimised together by the sliding-window BA
    "fixed_keyframes": 2,  # the window's oldest keyframes, held fixed (gauge and scale)
    "min_init_matches": 50,  # shared tracks the two initial keyframes need
    "min_init_points": 40,  # well-conditioned points the initial pair must triangulate
    "min_init_parallax_deg": 1.0,  # ray angle of a well-conditioned initial point
    # Homography chosen over the essential matrix above this score ratio S_H / (S_H + S_E)
    # (a plane, or too little translation for the essential matrix to be trusted).
    "homography_ratio": 0.45,
    "essential_threshold_px": 1.0,  # RANSAC threshold of the essential matrix
    # Seeded RANSAC runs of each two-view fit (initialisation, bridging); the best scoring
    # wins. One run can stop on a wrong motion that explains the pairs worse.
    "two_view_tries": 4,
    "pnp_threshold_px": 3.0,  # RANSAC and inlier threshold of PnP
    "min_pnp_inliers": 15,  # fewer: a keyframe is lost, a frame gets no pose
    # Smallest ray angle of a new landmark. Under forward motion most points stay
    # below 1 deg between keyframes; without them PnP has too few pairs to hold.
    "min_triangulation_deg": 0.5,
    "max_reprojection_px": 3.0,  # observations reprojecting worse are outliers
    "pixel_sigma": 1.0,  # keypoint position noise, pixels (factor noise model)
    # Robust kernel of the reprojection factors: cauchy or huber. Cauchy's influence
    # falls off for gross errors, which wrong track ids of a classical matcher produce.
    "robust_loss": "cauchy",
    "robust_k": 2.0,  # the kernel's threshold, in sigmas
    "ba_iterations": 10,  # Levenberg-Marquardt iterations per window
    "max_waiting_frames": 100,  # frames kept while initialising (oldest dropped)
    # Stereo and RGB-D input (frames with per-keypoint depths). Stereo depths beyond this
    # many baselines are too uncertain to place a landmark (ORB-SLAM's close points);
    # they are triangulated like mono ones...
    "stereo_max_depth_baselines": 40.0,
    # ...unless a keyframe has fewer close ones than this: then its nearest far ones
    # make up the number, as ORB-SLAM does (a road scene has few close points).
    "min_depth_landmarks": 100,
    # The virtual baseline turning an RGB-D depth into a stereo observation (ORB-SLAM's
    # bf / fx): its disparity fx * baseline / depth gets pixel_sigma noise.
    "rgbd_baseline_m": 0.08,
}
default_conf.update(loops.default_conf)  # loop closure's pose graph (odometry/loops.py)


def check_conf(conf: Mapping[str, Any] | None) -> dict[str, Any]:
    """default_conf updated by conf; ValueError for an unknown key or a bad value."""
    values = dict(default_conf)
    for name, value in (conf or {}).items():
        if name not in default_conf:
            raise ValueError(f"unknown odometry setting {name!r}; known: {sorted(default_conf)}")
        if name == "robust_loss":
            if value not in ROBUST_LOSSES:
                raise ValueError(f"odometry setting robust_loss must be one of {ROBUST_LOSSES}")
            values[name] = value
            continue
        if isinstance(default_conf[name], bool):
            if not isinstance(value, bool):
                raise ValueError(f"odometry setting {name} must be true or false, got {value!r}")
            values[name] = value
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(
                f"odometry setting {name} must be a non-negative number, got {value!r}"
            )
        values[name] = type(default_conf[name])(value)
    if values["window_keyframes"] < values["fixed_keyframes"] + 1:
        raise ValueError("odometry setting window_keyframes must exceed fixed_keyframes")
    if values["fixed_keyframes"] < 1:
        raise ValueError("odometry setting fixed_keyframes must be at least 1")
    if values["rgbd_baseline_m"] <= 0:
        raise ValueError("odometry setting rgbd_baseline_m must be positive")
    loops.check_conf(values)
    return values


@dataclass(eq=False)
class MapKeyframe:
    """A keyframe of the map. pose: [4, 4] camera-to-world, refined by BA.

    keypoints [N, 2], track_ids [N] and valid [N] (False: observation rejected
    as an outlier) are dropped (None) once the keyframe leaves the window. depths
    [N] (NaN: none, or rejected as an outlier) is the frame's own copy, None for mono.
    """

    frame_id: int
    stamp_ns: int
    pose: np.ndarray
    keypoints: np.ndarray | None
    track_ids: np.ndarray | None
    valid: np.ndarray | None
    depths: np.ndarray | None = None

    def release(self) -> None:
        self.keypoints = self.track_ids = self.valid = self.depths = None


@dataclass(eq=False)
class FramePose:
    """A frame's pose as the anchor keyframe's pose times a relative transform."""

    frame_id: int
    stamp_ns: int
    is_keyframe: bool
    anchor: MapKeyframe
    relative: np.ndarray  # [4, 4] frame camera in the anchor camera

    @property
    def pose(self) -> np.ndarray:
        return self.anchor.pose @ self.relative


class VisualOdometry:
    """See the module docstring. Not thread-safe: one caller feeds frames in order."""

    def __init__(self, camera: CameraIntrinsics, conf: Mapping[str, Any] | None = None) -> None:
        self.conf = check_conf(conf)
        self.camera = camera
        self.state = INITIALIZING
        self.maps_started = 0  # initialisations that succeeded
        self.metric = False  # the current map started from depths: metres, no scale drift
        # Wall time of each keyframe's mapping step, its loop closure included.
        self.keyframe_ms: list[float] = []
        self._frames: list[FramePose] = []
        self._window: list[MapKeyframe] = []
        self._landmarks: dict[int, np.ndarray] = {}
        self._reference: FrameObservation | None = None
        self._waiting: list[FrameObservation] = []
        self._last: FrameObservation | None = None
        # Where a new map starts: the last pose and the old map's keyframe spacing.
        self._origin = np.eye(4)
        self._spacing: float | None = None
        # Stereo input: the baseline the front-end's depths imply (None: not stereo yet).
        self._stereo_baseline: float | None = None
        self._loop_keypoints = loops.KeypointMemory(int(self.conf["loop_keyframes"]))
        # The observations of keyframes past the window, for the global BA after a loop
        # (it runs over at most loop_global_ba_keyframes, so no more are kept).
        self._map_observations = loops.ObservationMemory(int(self.conf["loop_global_ba_keyframes"]))
        self.loop_closures: list[loops.LoopConstraint] = []  # the loops closed so far
        self._map_starts: set[int] = set()  # first keyframe of each map after a loss

    # ----------------------------------------------------------------- public
    @property
    def landmarks(self) -> int:
        return len(self._landmarks)

    def trajectory(self) -> list[tuple[int, int, np.ndarray]]:
        """(frame id, stamp ns, [4, 4] camera-to-world) of every frame with a pose, in
        arrival order, keyframes at their latest refined values."""
        return [(f.frame_id, f.stamp_ns, f.pose) for f in self._frames]

    def process(self, frame: FrameObservation) -> list[PoseEstimate]:
        """Consume one frame; the estimates decided now, oldest frame first.

        Usually one (this frame); after a successful initialisation also the
        reference keyframe and the frames that waited for it.
        """
        restarted = self._last is not None and (
            frame.frame_id <= self._last.frame_id or frame.stamp_ns < self._last.stamp_ns
        )
        self._last = frame
        self._remember_window()
        if frame.right_x is not None and self._stereo_baseline is None:
            assert frame.depths is not None  # FrameObservation checks it
            self._stereo_baseline = geometry.stereo_baseline(
                self.camera.fx, frame.keypoints[:, 0], frame.right_x, frame.depths
            )
        if frame.is_keyframe:
            self._loop_keypoints.add(frame.frame_id, frame.keypoints)
        if self.state == TRACKING:
            if restarted:
                return [self._lose(frame, "frame ids or stamps went backwards: front-end restart")]
            if frame.front_end_reset:
                return [self._lose(frame, "the front-end's keyframe buffer was reset")]
            if frame.is_keyframe:
                return [self._track_keyframe(frame, may_lose=True)]
            return [self._track_frame(frame)]
        if restarted:
            self._reference, self._waiting = None, []
        return self._initialise(frame)

    def close_loops(self, candidates: Sequence[Any]) -> list[str]:
        """Close the matcher's accepted loops of the keyframe just processed (LoopCandidates,
        see odometry/loops.py): a pose-graph optimisation over the keyframes, landmarks
        and frames moving with them. Returns why each refused loop was refused.

        The closure's wall time is added to the query keyframe's keyframe_ms entry: it is
        that keyframe's mapping work (pose graph and global BA, seconds on a map of
        tens of keyframes), which a per-keyframe cost without it would hide."""
        if not candidates:
            return []
        if self.state != TRACKING:
            return [f"loop {c.query_id}-{c.match_id}: not tracking" for c in candidates]
        start = time.perf_counter()
        refused = self._close_loops(candidates)
        # The newest keyframe_ms entry is the query's (tracking: the window's newest).
        self.keyframe_ms[-1] += 1e3 * (time.perf_counter() - start)
        return refused

    def _close_loops(self, candidates: Sequence[Any]) -> list[str]:
        """close_loops while tracking, untimed."""
        query = self._window[-1]
        keyframes = [f.anchor for f in self._frames if f.is_keyframe]
        index = {k.frame_id: i for i, k in enumerate(keyframes)}
        refused, constraints = [], []
        measured: dict[int, Any] = {}  # id of a constraint -> the loop it was measured from
        for loop in candidates:
            name = f"loop {loop.query_id}-{loop.match_id}"
            match_keypoints = self._loop_keypoints.get(loop.match_id)
            if loop.query_id != query.frame_id:
                refused.append(f"{name}: the query is not the newest keyframe {query.frame_id}")
            elif loop.match_id not in index:
                refused.append(f"{name}: the match keyframe has no pose in this map")
            elif match_keypoints is None:
                refused.append(f"{name}: the match keyframe's keypoints are forgotten")
            else:
                assert query.track_ids is not None  # the newest keyframe is in the window
                constraint = loops.constraint_from_loop(
                    loop,
                    query.pose,
                    query.track_ids,
                    match_keypoints,
                    self._landmarks,
                    self.camera.matrix,
                    self.conf["pnp_threshold_px"],
                    int(self.conf["min_pnp_inliers"]),
                    (self.camera.height, self.camera.width),
                    self.conf["loop_min_pnp_coverage"],
                    self.conf["loop_pixel_sigma_floor"],
                    bool(self.conf["loop_covariance_from_fit"]),
                    query.valid,
                )
                if isinstance(constraint, str):
                    refused.append(f"{name}: {constraint}")
                else:
                    constraints.append(constraint)
                    measured[id(constraint)] = loop
        breaks = [index[i] for i in self._map_starts if i in index]
        # One loop per keyframe, the best supported that the graph accepts: the query's
        # loops to neighbouring old keyframes would also fix those keyframes' relative
        # poses to their PnP errors, against the odometry between them.
        constraints.sort(key=lambda c: -c.pnp_inliers)
        poses, scales, agreed = [k.pose for k in keyframes], [1.0] * len(keyframes), []
        similarity = bool(self.conf["loop_similarity"]) and not self.metric
        for rank, constraint in enumerate(constraints):
            poses, scales, agreed, disagreed = loops.close(
                [k.pose for k in keyframes], index, [constraint], self.conf, breaks, similarity
            )
            refused += [f"loop {c.query_id}-{c.match_id}: {why}" for c, why in disagreed]
            if agreed:
                refused += [
                    f"loop {c.query_id}-{c.match_id}: loop {constraint.query_id}-"
                    f"{constraint.match_id} of the same keyframe is better supported"
                    for c in constraints[rank + 1 :]
                ]
                break
        if agreed:
            self._correct(keyframes, index, poses, scales)
            self.loop_closures += agreed
            # The global BA runs over the current map (its keyframes since the latest map
            # start) for a loop within it; a loop into an earlier map relocalised this one
            # and the pose graph alone places it.
            segment = max(breaks, default=0)
            closed = [measured[id(c)] for c in agreed if index[c.match_id] >= segment]
            if self.conf["loop_global_ba"] and not self.metric and closed:
                refused += self._global_bundle_adjust(keyframes[segment:], closed)
        return refused

    def _remember_window(self) -> None:
        """Keep the window keyframes' observations before the window lets them go, where
        a global BA can use them (a monocular map)."""
        if not self.conf["loop_global_ba"] or self.metric:
            return
        for keyframe in self._window:
            if keyframe.track_ids is not None:
                assert keyframe.keypoints is not None and keyframe.valid is not None
                self._map_observations.add(
                    keyframe.frame_id,
                    loops.KeyframeObservations(
                        keyframe.keypoints, keyframe.track_ids, keyframe.valid
                    ),
                )

    def _global_bundle_adjust(
        self,
        keyframes: Sequence[MapKeyframe],
        closed: Sequence[Any],
    ) -> list[str]:
        """After the pose graph: one BA over the current map's keyframes (keyframes: those
        since the latest map start, all with kept observations, at most
        loop_global_ba_keyframes) and the closed loops' inlier matches (closed: the
        LoopCandidates the agreed constraints were measured from), the match keyframe
        observing the query's landmarks. The map's first two keyframes are held (gauge
        and mono scale); the window's landmarks and the frames anchored to the keyframes
        take the result. Returns why it failed ([] otherwise); the pose graph's
        correction then stands."""
        self._remember_window()
        kept = [self._map_observations.get(k.frame_id) for k in keyframes]
        if len(keyframes) > self.conf["loop_global_ba_keyframes"] or any(o is None for o in kept):
            return []
        index = {k.frame_id: i for i, k in enumerate(keyframes)}
        query = self._window[-1]
        assert query.track_ids is not None
        extra: list[tuple[int, np.ndarray, int]] = []
        try:
            for loop in closed:
                match = kept[index[loop.match_id]]
                assert match is not None
                extra += [
                    (index[loop.match_id], match.keypoints[m], track)
                    for m, track in loops.loop_observations(loop, query.track_ids, query.valid)
                ]
            result = loops.global_bundle_adjust(
                [k.pose for k in keyframes],
                [o for o in kept if o is not None],
                extra,
                self._landmarks,
                self.camera.matrix,
                self.conf,
                min(2, len(keyframes)),
            )
        except (RuntimeError, ValueError, IndexError, cv2.error) as error:
            # One loop must not stop tracking: the map keeps the pose graph's poses.
            return [f"global BA after the loop skipped: {error}"]
        poses, points = result
        self._stretch_offsets(keyframes, poses)
        for keyframe, pose in zip(keyframes, poses, strict=True):
            keyframe.pose = pose
        for track in self._landmarks.keys() & points.keys():
            self._landmarks[track] = points[track]
        return []

    def _stretch_offsets(
        self, keyframes: Sequence[MapKeyframe], poses: Sequence[np.ndarray]
    ) -> None:
        """Scale the offsets of the frames anchored to keyframes (in order) by how much
        moving them to poses stretches the anchor's step to the next keyframe (the last:
        from the previous one). A monocular BA changes the local scale, as the Sim(3)
        pose graph's scale corrections do (see _correct); a frame lies between its anchor
        and the next keyframe, so the step's stretch is its offset's."""
        stretch: dict[int, float] = {}
        for i, keyframe in enumerate(keyframes):
            j = i + 1 if i + 1 < len(keyframes) else i - 1
            if j < 0:
                continue
            before = np.linalg.norm(keyframes[j].pose[:3, 3] - keyframe.pose[:3, 3])
            after = np.linalg.norm(poses[j][:3, 3] - poses[i][:3, 3])
            if before > 0:
                stretch[keyframe.frame_id] = float(after / before)
        for frame in self._frames:
            factor = stretch.get(frame.anchor.frame_id)
            if not frame.is_keyframe and factor is not None:
                frame.relative = loops.scaled(frame.relative, factor)

    def _correct(
        self,
        keyframes: Sequence[MapKeyframe],
        index: dict[int, int],
        poses: Sequence[np.ndarray],
        scales: Sequence[float],
    ) -> None:
        """Move the keyframes to the closed graph's poses, the window's landmarks with
        their first observer's correction, and the frames' offsets by their anchor's scale."""
        loops.move_landmarks(
            self._landmarks,
            [
                (k.track_ids, loops.similarity_correction(k.pose, poses[i], scales[i]))
                for k in self._window
                for i in [index[k.frame_id]]
            ],
        )
        # A keyframe's scale correction also stretches its frames' offsets from it.
        for frame in self._frames:
            if not frame.is_keyframe:
                anchor = index.get(frame.anchor.frame_id)
                if anchor is not None:
                    frame.relative = loops.scaled(frame.relative, scales[anchor])
        for keyframe, pose in zip(keyframes, poses, strict=True):
            keyframe.pose = pose

    # --------------------------------------------------------- initialisation
    def _waiting_estimate(self, frame: FrameObservation, reason: str) -> PoseEstimate:
        return PoseEstimate(
            frame.frame_id, frame.stamp_ns, frame.is_keyframe, None, INITIALIZING, reason
        )

    def _initialise(self, frame: FrameObservation) -> list[PoseEstimate]:
        if (
            frame.is_keyframe
            and frame.depths is not None
            and np.count_nonzero(self._mapping_depths(frame.depths)) >= self.conf["min_init_points"]
        ):
            return [self._start_metric_map(frame)]
        reference = self._reference
        if reference is None or frame.front_end_reset:
            if not frame.is_keyframe:
                return [self._waiting_estimate(frame, "waiting for a keyframe to start from")]
            self._reference, self._waiting = frame, []
            return [self._waiting_estimate(frame, "initialisation reference keyframe")]
        if not frame.is_keyframe:
            self._wait(frame)
            return [self._waiting_estimate(frame, "waiting for a keyframe with enough parallax")]
        shared_ref, shared_new = shared_tracks(reference, frame)
        if len(shared_ref) < self.conf["min_init_matches"]:
            # The reference has drifted out of view: start again from this keyframe.
            self._reference, self._waiting = frame, []
            return [
                self._waiting_estimate(
                    frame,
                    f"{len(shared_ref)} tracks shared with reference keyframe "
                    f"{reference.frame_id} (< {self.conf['min_init_matches']}): new reference",
                )
            ]
        result = geometry.two_view(
            self.camera.matrix,
            reference.keypoints[shared_ref],
            frame.keypoints[shared_new],
            self.conf["essential_threshold_px"],
            self.conf["max_reprojection_px"],
            self.conf["min_init_parallax_deg"],
            self.conf["pixel_sigma"],
            self.conf["homography_ratio"],
            tries=int(self.conf["two_view_tries"]),
        )
        if isinstance(result, str):
            reason = result
        elif len(result.points) < self.conf["min_init_points"]:
            # Forward motion: the points near the focus of expansion stay ill-conditioned
            # for long, the rest are enough; the count, not the median, decides.
            reason = (
                f"{len(result.points)} points with parallax >= "
                f"{self.conf['min_init_parallax_deg']:g} deg (< {self.conf['min_init_points']}, "
                f"{result.model} model, homography score ratio {result.homography_ratio:.2f})"
            )
        else:
            return self._start_map(reference, frame, result, shared_ref[result.inliers])
        self._wait(frame)
        return [self._waiting_estimate(frame, f"not initialised: {reason}")]

    def _start_metric_map(self, frame: FrameObservation) -> PoseEstimate:
        """A map at metric scale from one keyframe: its keypoints' depths place the landmarks."""
        start = time.perf_counter()
        keyframe = self._map_keyframe(frame, self._origin.copy(), None)
        self._window, self._landmarks = [keyframe], {}
        added = self._add_depth_landmarks(keyframe)
        self.state = TRACKING
        self.metric = True
        if self.maps_started:
            self._map_starts.add(frame.frame_id)
        self.maps_started += 1
        self._reference, self._waiting = None, []
        self.keyframe_ms.append(1e3 * (time.perf_counter() - start))
        kind = "stereo" if frame.right_x is not None else "RGB-D"
        reason = (
            f"initialised from keyframe {frame.frame_id} at metric scale: "
            f"{added} points from its {kind} depths"
        )
        return self._keep_pose(frame, keyframe, np.eye(4), added, reason)

    def _wait(self, frame: FrameObservation) -> None:
        self._waiting.append(frame)
        del self._waiting[: -int(self.conf["max_waiting_frames"])]

    def _start_map(
        self,
        reference: FrameObservation,
        frame: FrameObservation,
        two_view: geometry.TwoViewResult,
        reference_indices: np.ndarray,
    ) -> list[PoseEstimate]:
        start = time.perf_counter()
        waiting_keyframes = sum(f.is_keyframe for f in self._waiting)
        if self._spacing is None:
            # The first map: median depth of the initial points is 1.
            scale = 1.0 / float(np.median(two_view.points[:, 2]))
        else:
            scale = self._spacing * (waiting_keyframes + 1)
        relative = two_view.pose_b.copy()
        relative[:3, 3] *= scale
        origin = self._origin
        first = MapKeyframe(
            reference.frame_id,
            reference.stamp_ns,
            origin.copy(),
            reference.keypoints,
            reference.track_ids,
            np.ones(len(reference.track_ids), dtype=bool),
        )
        second = MapKeyframe(
            frame.frame_id,
            frame.stamp_ns,
            origin @ relative,
            frame.keypoints,
            frame.track_ids,
            np.ones(len(frame.track_ids), dtype=bool),
        )
        points = geometry.transform(origin, two_view.points * scale)
        tracks = reference.track_ids[reference_indices].tolist()
        self._landmarks = dict(zip(tracks, points, strict=True))
        self._window = [first, second]
        self.metric = False
        self._bundle_adjust()
        self.state = TRACKING
        if self.maps_started:
            self._map_starts.add(reference.frame_id)
        self.maps_started += 1
        self.keyframe_ms.append(1e3 * (time.perf_counter() - start))
        reason = (
            f"initialised from keyframes {reference.frame_id} and {frame.frame_id}: "
            f"{len(two_view.points)} points, median parallax "
            f"{two_view.median_parallax_deg:.1f} deg, {two_view.model} model"
        )
        estimates = [
            self._keep_pose(reference, first, np.eye(4), len(two_view.points), reason),
            self._keep_pose(frame, second, np.eye(4), len(two_view.points), reason),
        ]
        waiting, self._reference, self._waiting = self._waiting, None, []
        for earlier in waiting:
            if earlier.frame_id <= reference.frame_id:
                continue
            if earlier.is_keyframe:
                estimates.append(self._track_keyframe(earlier, may_lose=False))
            else:
                estimates.append(self._track_frame(earlier))
        return sorted(estimates, key=lambda e: e.frame_id)

    # --------------------------------------------------------------- tracking
    def _keep_pose(
        self,
        frame: FrameObservation,
        anchor: MapKeyframe,
        relative: np.ndarray,
        inliers: int,
        reason: str = "",
    ) -> PoseEstimate:
        stored = FramePose(frame.frame_id, frame.stamp_ns, frame.is_keyframe, anchor, relative)
        self._frames.append(stored)
        return PoseEstimate(
            frame.frame_id,
            frame.stamp_ns,
            frame.is_keyframe,
            stored.pose,
            TRACKING,
            reason,
            inliers,
        )

    def _localise(self, frame: FrameObservation) -> tuple[geometry.PnpResult | str, np.ndarray]:
        """PnP against the landmarks the frame's track ids name; (result, keypoint indices)."""
        known = np.fromiter(
            (t in self._landmarks for t in frame.track_ids.tolist()),
            dtype=bool,
            count=len(frame.track_ids),
        )
        indices = np.flatnonzero(known)
        points = np.array([self._landmarks[t] for t in frame.track_ids[indices].tolist()])
        result = geometry.solve_pnp(
            self.camera.matrix,
            points.reshape(-1, 3),
            frame.keypoints[indices],
            self.conf["pnp_threshold_px"],
            int(self.conf["min_pnp_inliers"]),
        )
        return result, indices

    def _track_frame(self, frame: FrameObservation) -> PoseEstimate:
        result, _ = self._localise(frame)
        if isinstance(result, str):
            return PoseEstimate(
                frame.frame_id, frame.stamp_ns, False, None, TRACKING, f"no pose: {result}"
            )
        anchor = self._window[-1]
        relative = geometry.invert(anchor.pose) @ result.pose
        return self._keep_pose(frame, anchor, relative, len(result.inliers))

    def _track_keyframe(self, frame: FrameObservation, may_lose: bool) -> PoseEstimate:
        start = time.perf_counter()
        result, indices = self._localise(frame)
        if isinstance(result, str):
            bridged = self._bridge(frame)
            if isinstance(bridged, str):
                result = f"{result}; {bridged}"
            else:
                # The landmarks the bridged pose does not explain are this keyframe's
                # outliers, kept out of its bundle adjustment.
                points = [self._landmarks[t] for t in frame.track_ids[indices].tolist()]
                errors = geometry.reprojection_errors(
                    self.camera.matrix,
                    bridged,
                    np.array(points).reshape(-1, 3),
                    frame.keypoints[indices],
                )
                inliers = np.flatnonzero(errors < self.conf["pnp_threshold_px"])
                result = geometry.PnpResult(bridged, inliers)
        if isinstance(result, str):
            if may_lose:
                return self._lose(frame, f"keyframe not localised: {result}")
            return PoseEstimate(
                frame.frame_id, frame.stamp_ns, True, None, TRACKING, f"no pose: {result}"
            )
        valid = np.ones(len(frame.track_ids), dtype=bool)
        outliers = np.setdiff1d(np.arange(len(indices)), result.inliers)
        valid[indices[outliers]] = False
        keyframe = self._map_keyframe(frame, result.pose, valid)
        self._window.append(keyframe)
        self._triangulate(keyframe)
        self._bundle_adjust()
        self._slide_window()
        self.keyframe_ms.append(1e3 * (time.perf_counter() - start))
        return self._keep_pose(frame, keyframe, np.eye(4), len(result.inliers))

    def _bridge(self, frame: FrameObservation) -> np.ndarray | str:
        """A pose for a keyframe PnP could not place, from the newest window keyframe:
        their relative motion (as at initialisation) scaled by the depths of the
        landmarks both see; a reason when that fails too.

        A keyframe turning into new ground sees few landmarks yet (points enter the map
        only once two keyframes saw them) while it shares plenty of tracks with the
        previous keyframe: the map is not lost, it is behind.
        """
        last = self._window[-1]
        assert last.track_ids is not None and last.keypoints is not None
        _, in_last, in_frame = np.intersect1d(
            last.track_ids, frame.track_ids, assume_unique=True, return_indices=True
        )
        if len(in_last) < self.conf["min_init_matches"]:
            return f"{len(in_last)} tracks shared with keyframe {last.frame_id}"
        two_view = geometry.two_view(
            self.camera.matrix,
            last.keypoints[in_last],
            frame.keypoints[in_frame],
            self.conf["essential_threshold_px"],
            self.conf["max_reprojection_px"],
            self.conf["min_triangulation_deg"],
            self.conf["pixel_sigma"],
            self.conf["homography_ratio"],
            tries=int(self.conf["two_view_tries"]),
        )
        if isinstance(two_view, str):
            return f"from keyframe {last.frame_id}: {two_view}"
        tracks = last.track_ids[in_last[two_view.inliers]].tolist()
        if self.metric and last.depths is not None:
            # The keyframe's own depths give the scale, mapped or not.
            depths = last.depths[in_last[two_view.inliers]]
            mapped = np.flatnonzero(depths > 0).tolist()
            what = "depths"
        else:
            mapped = [i for i, t in enumerate(tracks) if t in self._landmarks]
            what = "landmarks"
        if len(mapped) < self.conf["min_pnp_inliers"]:
            return (
                f"from keyframe {last.frame_id}: {len(mapped)} {what} among the "
                f"two views' points, {self.conf['min_pnp_inliers']} needed for the scale"
            )
        if what == "landmarks":
            landmarks = np.array([self._landmarks[tracks[i]] for i in mapped])
            depths = geometry.transform(geometry.invert(last.pose), landmarks)[:, 2]
        else:
            depths = depths[mapped]
        scale = float(np.median(depths / two_view.points[mapped, 2]))
        if not scale > 0:
            return f"from keyframe {last.frame_id}: the two views' points lie behind the map's"
        relative = two_view.pose_b.copy()
        relative[:3, 3] *= scale
        return last.pose @ relative

    def _lose(self, frame: FrameObservation, reason: str) -> PoseEstimate:
        """End the current map; the next keyframes initialise a new one."""
        if self._frames:
            self._origin = self._predicted_pose(frame.stamp_ns)
        poses = [k.pose for k in self._window]
        if len(poses) >= 2:
            steps = np.linalg.norm(np.diff([p[:3, 3] for p in poses], axis=0), axis=1)
            self._spacing = float(np.median(steps))
        for keyframe in self._window:
            keyframe.release()
        self._window, self._landmarks = [], {}
        self.state = INITIALIZING
        self.metric = False
        self._reference = frame if frame.is_keyframe else None
        self._waiting = []
        return PoseEstimate(frame.frame_id, frame.stamp_ns, frame.is_keyframe, None, LOST, reason)

    def _predicted_pose(self, stamp_ns: int) -> np.ndarray:
        """The last pose moved on to stamp_ns at the last two frames' velocity
        (constant-velocity model); the last pose itself when there is no velocity."""
        last = self._frames[-1]
        if len(self._frames) < 2:
            return last.pose
        previous = self._frames[-2]
        interval = last.stamp_ns - previous.stamp_ns
        if interval <= 0 or stamp_ns <= last.stamp_ns:
            return last.pose
        step = geometry.invert(previous.pose) @ last.pose
        fraction = min((stamp_ns - last.stamp_ns) / interval, 3.0)
        # Translation scales with time; the small per-frame rotation is applied once.
        step[:3, 3] *= fraction
        return last.pose @ step

    # ---------------------------------------------------------------- mapping
    def _map_keyframe(
        self, frame: FrameObservation, pose: np.ndarray, valid: np.ndarray | None
    ) -> MapKeyframe:
        """A window keyframe of the frame; valid None: every observation valid."""
        return MapKeyframe(
            frame.frame_id,
            frame.stamp_ns,
            pose,
            frame.keypoints,
            frame.track_ids,
            np.ones(len(frame.track_ids), dtype=bool) if valid is None else valid,
            None if frame.depths is None else frame.depths.copy(),
        )

    def _factor_baseline(self) -> float:
        """The baseline of the stereo factors: the stereo pair's, or RGB-D's virtual one."""
        if self._stereo_baseline is not None:
            return self._stereo_baseline
        return float(self.conf["rgbd_baseline_m"])

    def _mapping_depths(self, depths: np.ndarray) -> np.ndarray:
        """[N] bool: depths that may place a landmark (finite, positive, and for stereo
        close enough for the disparity to fix them, or among the min_depth_landmarks
        nearest)."""
        with np.errstate(invalid="ignore"):
            usable = np.isfinite(depths) & (depths > 0)
            if self._stereo_baseline is None:
                return usable
            limit = self.conf["stereo_max_depth_baselines"] * self._stereo_baseline
            close = usable & (depths <= limit)
        wanted = int(self.conf["min_depth_landmarks"])
        if np.count_nonzero(close) >= wanted:
            return close
        nearest = np.flatnonzero(usable)[np.argsort(depths[usable], kind="stable")[:wanted]]
        close[nearest] = True
        return close

    def _add_depth_landmarks(self, keyframe: MapKeyframe) -> int:
        """Landmarks at the depths of the keyframe's valid, unmapped keypoints; how many.

        Past the map's first keyframe a depth places a landmark only where an older
        window keyframe saw the track within max_reprojection_px of that point: a
        wrong match or a depth from the far side of an edge (RGB-D not registered to
        colour) is not used by PnP before a second view agrees with it.
        """
        assert keyframe.track_ids is not None and keyframe.valid is not None
        assert keyframe.keypoints is not None
        if keyframe.depths is None:
            return 0
        new = (
            keyframe.valid
            & self._mapping_depths(keyframe.depths)
            & np.fromiter(
                (t not in self._landmarks for t in keyframe.track_ids.tolist()),
                dtype=bool,
                count=len(keyframe.track_ids),
            )
        )
        points = np.full((len(new), 3), np.nan)
        points[new] = geometry.transform(
            keyframe.pose,
            geometry.back_project(
                self.camera.matrix, keyframe.keypoints[new], keyframe.depths[new]
            ),
        )
        if self._window and self._window[0] is not keyframe:
            confirmed = np.zeros(len(new), dtype=bool)
            for other in self._window:
                if other is keyframe or other.track_ids is None:
                    continue
                assert other.valid is not None and other.keypoints is not None
                candidates = np.flatnonzero(new & ~confirmed)
                _, in_other, in_new = np.intersect1d(
                    other.track_ids[other.valid],
                    keyframe.track_ids[candidates],
                    assume_unique=True,
                    return_indices=True,
                )
                other_indices = np.flatnonzero(other.valid)[in_other]
                errors = geometry.reprojection_errors(
                    self.camera.matrix,
                    other.pose,
                    points[candidates[in_new]],
                    other.keypoints[other_indices],
                )
                confirmed[candidates[in_new[errors < self.conf["max_reprojection_px"]]]] = True
            new &= confirmed
        for track, point in zip(keyframe.track_ids[new].tolist(), points[new], strict=True):
            self._landmarks[track] = point
        return int(np.count_nonzero(new))

    def _triangulate(self, keyframe: MapKeyframe) -> None:
        """New landmarks from the keyframe's tracks: at their depths in a metric map, the
        rest (no depth) triangulated against older window keyframes that also saw them."""
        k = self.camera.matrix
        assert keyframe.track_ids is not None and keyframe.valid is not None  # a new keyframe
        if self.metric:
            self._add_depth_landmarks(keyframe)
        unmapped = keyframe.valid & np.fromiter(
            (t not in self._landmarks for t in keyframe.track_ids.tolist()),
            dtype=bool,
            count=len(keyframe.track_ids),
        )
        # Oldest first: the widest baseline triangulates best.
        for other in self._window[:-1]:
            if other.track_ids is None or not unmapped.any():
                continue
            candidates = np.flatnonzero(unmapped)
            _, in_other, in_new = np.intersect1d(
                other.track_ids[other.valid],
                keyframe.track_ids[candidates],
                assume_unique=True,
                return_indices=True,
            )
            if len(in_new) == 0:
                continue
            other_indices = np.flatnonzero(other.valid)[in_other]
            new_indices = candidates[in_new]
            points, good = geometry.triangulate_checked(
                k,
                other.pose,
                keyframe.pose,
                other.keypoints[other_indices],
                keyframe.keypoints[new_indices],
                self.conf["max_reprojection_px"],
                self.conf["min_triangulation_deg"],
            )
            for track, point in zip(
                keyframe.track_ids[new_indices[good]].tolist(), points[good], strict=True
            ):
                self._landmarks[track] = point
            unmapped[new_indices[good]] = False

    def _observations(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per window keyframe: keypoint indices of valid observations of landmarks, and
        their track ids."""
        indices, tracks = [], []
        for keyframe in self._window:
            assert keyframe.track_ids is not None and keyframe.valid is not None
            known = keyframe.valid & np.fromiter(
                (t in self._landmarks for t in keyframe.track_ids.tolist()),
                dtype=bool,
                count=len(keyframe.track_ids),
            )
            selected = np.flatnonzero(known)
            indices.append(selected)
            tracks.append(keyframe.track_ids[selected])
        return indices, tracks

    def _bundle_adjust(self) -> None:
        """Levenberg-Marquardt over the window's poses and the landmarks seen twice in it,
        then drop the observations that still reproject badly."""
        import gtsam

        indices, tracks = self._observations()
        all_tracks, counts = np.unique(np.concatenate(tracks), return_counts=True)
        optimised = all_tracks[counts >= 2]
        if len(optimised) == 0:
            return
        landmark_index = {int(t): i for i, t in enumerate(optimised.tolist())}
        factor = self._observation_factor(gtsam)
        graph = gtsam.NonlinearFactorGraph()
        values = gtsam.Values()
        fixed = min(int(self.conf["fixed_keyframes"]), len(self._window) - 1)
        for i, keyframe in enumerate(self._window):
            key = gtsam.symbol("x", i)
            values.insert(key, gtsam.Pose3(keyframe.pose))
            if i < fixed:
                graph.add(
                    gtsam.PriorFactorPose3(
                        key, gtsam.Pose3(keyframe.pose), gtsam.noiseModel.Isotropic.Sigma(6, 1e-6)
                    )
                )
        if len(self._window) == 2 and not self.metric:
            # The initial pair: the second pose is free but for a soft hold on its
            # position, which keeps the (unobservable) scale where initialisation put it.
            baseline = np.linalg.norm(self._window[1].pose[:3, 3] - self._window[0].pose[:3, 3])
            sigmas = np.array([1.0, 1.0, 1.0, *([0.05 * max(baseline, 1e-9)] * 3)])
            graph.add(
                gtsam.PriorFactorPose3(
                    gtsam.symbol("x", 1),
                    gtsam.Pose3(self._window[1].pose),
                    gtsam.noiseModel.Diagonal.Sigmas(sigmas),
                )
            )
        for track, i in landmark_index.items():
            values.insert(gtsam.symbol("l", i), gtsam.Point3(self._landmarks[track]))
        for window_index, (keyframe, selected, seen) in enumerate(
            zip(self._window, indices, tracks, strict=True)
        ):
            pose_key = gtsam.symbol("x", window_index)
            for index, track in zip(selected.tolist(), seen.tolist(), strict=True):
                landmark = landmark_index.get(track)
                if landmark is None:
                    continue
                u, v = keyframe.keypoints[index]
                depth = np.nan if keyframe.depths is None else keyframe.depths[index]
                graph.add(factor(u, v, depth, pose_key, gtsam.symbol("l", landmark)))
        params = gtsam.LevenbergMarquardtParams()
        params.setMaxIterations(int(self.conf["ba_iterations"]))
        try:
            result = gtsam.LevenbergMarquardtOptimizer(graph, values, params).optimize()
        except RuntimeError:
            return  # a degenerate window (e.g. indeterminant system): keep the estimates
        for i, keyframe in enumerate(self._window[fixed:], start=fixed):
            keyframe.pose = result.atPose3(gtsam.symbol("x", i)).matrix()
        for track, i in landmark_index.items():
            self._landmarks[track] = np.asarray(result.atPoint3(gtsam.symbol("l", i)))
        self._reject_outliers(indices, tracks, set(landmark_index))

    def _observation_factor(self, gtsam: Any) -> Callable[[float, float, float, int, int], Any]:
        """factor(u, v, depth, pose key, landmark key): one observation's robust factor, a
        stereo factor where it has a depth in a metric map, else a reprojection factor."""
        camera = self.camera
        kernel = loops.robust_kernel(gtsam, self.conf["robust_loss"])
        pixel_noise = loops.robust_pixel_noise(gtsam, self.conf)
        calibration = gtsam.Cal3_S2(camera.fx, camera.fy, 0.0, camera.cx, camera.cy)
        # A depth is the stereo observation (uL, uR, v) with uR = uL - fx * b / depth
        # (stereo: the pair's disparity; RGB-D: ORB-SLAM's virtual right camera).
        baseline = self._factor_baseline()
        stereo_noise = gtsam.noiseModel.Robust.Create(
            kernel.Create(self.conf["robust_k"]),
            gtsam.noiseModel.Isotropic.Sigma(3, self.conf["pixel_sigma"]),
        )
        stereo_calibration = gtsam.Cal3_S2Stereo(
            camera.fx, camera.fy, 0.0, camera.cx, camera.cy, baseline
        )
        metric = self.metric

        def factor(u: float, v: float, depth: float, pose_key: int, landmark_key: int) -> Any:
            if metric and depth > 0:
                measured = gtsam.StereoPoint2(u, u - camera.fx * baseline / depth, v)
                return gtsam.GenericStereoFactor3D(
                    measured, stereo_noise, pose_key, landmark_key, stereo_calibration
                )
            return gtsam.GenericProjectionFactorCal3_S2(
                gtsam.Point2(u, v), pixel_noise, pose_key, landmark_key, calibration
            )

        return factor

    def _reject_outliers(
        self, indices: list[np.ndarray], tracks: list[np.ndarray], optimised: set[int]
    ) -> None:
        """Invalidate observations beyond max_reprojection_px; drop landmarks left with
        fewer than two good observations among those that had a bad one. In a metric map
        a depth whose disparity is off by as much is dropped, the observation kept."""
        k = self.camera.matrix
        good_count: dict[int, int] = {}
        rejected: set[int] = set()
        for keyframe, selected, seen in zip(self._window, indices, tracks, strict=True):
            assert keyframe.keypoints is not None and keyframe.valid is not None
            if len(selected) == 0:
                continue
            points = np.array([self._landmarks[t] for t in seen.tolist()])
            errors = geometry.reprojection_errors(
                k, keyframe.pose, points, keyframe.keypoints[selected]
            )
            bad = errors >= self.conf["max_reprojection_px"]
            keyframe.valid[selected[bad]] = False
            if self.metric and keyframe.depths is not None:
                self._reject_depths(keyframe, selected[~bad], points[~bad])
            rejected.update(seen[bad].tolist())
            for track in seen[~bad].tolist():
                good_count[track] = good_count.get(track, 0) + 1
        for track in rejected & optimised:
            if good_count.get(track, 0) < 2:
                del self._landmarks[track]

    def _reject_depths(
        self, keyframe: MapKeyframe, selected: np.ndarray, points: np.ndarray
    ) -> None:
        """Set NaN the depths at keypoints `selected` whose disparity disagrees with the
        landmark's (`points`, [M, 3] world) by max_reprojection_px or more."""
        assert keyframe.depths is not None
        depths = keyframe.depths[selected]
        _, predicted = geometry.project(self.camera.matrix, geometry.invert(keyframe.pose), points)
        scale = self.camera.fx * self._factor_baseline()
        with np.errstate(divide="ignore", invalid="ignore"):
            residual = np.abs(scale / predicted - scale / depths)
            bad = np.isfinite(depths) & ~(residual < self.conf["max_reprojection_px"])
        keyframe.depths[selected[bad]] = np.nan

    def _slide_window(self) -> None:
        """Keep the newest window_keyframes; forget landmarks no window keyframe sees."""
        excess = len(self._window) - int(self.conf["window_keyframes"])
        if excess <= 0:
            return
        for keyframe in self._window[:excess]:
            keyframe.release()
        del self._window[:excess]
        seen = set(np.concatenate([k.track_ids for k in self._window]).tolist())
        for track in [t for t in self._landmarks if t not in seen]:
            del self._landmarks[track]


def shared_tracks(
    first: FrameObservation, second: FrameObservation
) -> tuple[np.ndarray, np.ndarray]:
    """Keypoint indices of the track ids two frames share ([S] each, same order)."""
    _, in_first, in_second = np.intersect1d(
        first.track_ids, second.track_ids, assume_unique=True, return_indices=True
    )
    return in_first, in_second
