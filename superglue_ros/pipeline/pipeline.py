"""The ROS-agnostic pipeline: images in, keypoints, keyframe matches and track ids out.

Both shells (the ROS node and the replay tool) drive this one class, so every
decision (keyframes, track ids, time jumps) is made, and tested, here.

Input modes (the ``input`` parameter): mono frames are one image; stereo frames
bring the rectified right image (Companions.right), matched against the left one
in the same batched matcher call as the keyframes (pair 0 of K + 1) and/or by a
row-constrained search (stereo.search), which gives each left keypoint its right x
and depth (pipeline.stereo); rgbd frames bring a
depth image aligned to the colour one, read at each keypoint (pipeline.depth).

Loop closure (``loop_closure.enabled``, pipeline.loop_closure): keyframes leaving
the buffer go to a bounded keyframe map (pipeline.keyframe_map); each new keyframe
is looked up in it by bag of words and the candidates are matched and verified.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .depth import DepthReader
from .frontend import PreprocessingFrontend, to_grayscale
from .keyframe_map import KeyframeMap, MapKeyframe
from .keyframes import Keyframe, KeyframeBuffer, KeyframePolicy
from .loop_closure import LoopCandidate, LoopDetector, LoopParams, camera_matrix, verify_features
from .params import Config, check_runtime_changes, validate
from .place_recognition import Vocabulary, shipped_vocabulary_path
from .registry import build_frontend, build_matcher, choose_networks
from .stereo import StereoDepth, StereoObservations
from .tracks import TrackIdAssigner
from .types import (
    Companions,
    Features,
    FrameResult,
    Frontend,
    KeyframeMatch,
    Matcher,
    PairMatches,
    RightImage,
)

TIME_JUMP_REASON = "buffer reset after time jump backwards"
RESET_REASON = "buffer reset"


def to_keyframe_match(keyframe: Keyframe, pair: PairMatches) -> KeyframeMatch:
    """Flat arrays of the matched pairs only (int32 indices, float32 scores)."""
    matches0 = np.asarray(pair.matches0)
    frame_indices = np.flatnonzero(matches0 >= 0)
    return KeyframeMatch(
        keyframe_id=keyframe.keyframe_id,
        keyframe_stamp_ns=keyframe.stamp_ns,
        frame_indices=frame_indices.astype(np.int32),
        keyframe_indices=matches0[frame_indices].astype(np.int32),
        scores=np.asarray(pair.scores0, dtype=np.float32)[frame_indices],
        layers=int(pair.layers),
    )


def checked_depth_range(config: Config) -> Config:
    """config, or ValueError when depth.min_m is not below depth.max_m (nothing would pass)."""
    if config.number("depth.min_m") >= config.number("depth.max_m"):
        raise ValueError(
            f"parameter 'depth.min_m' ({config['depth.min_m']}) must be below 'depth.max_m' "
            f"({config['depth.max_m']})"
        )
    return config


def load_vocabulary(config: Config) -> Vocabulary:
    """loop_closure.vocabulary, or the one shipped for the frontend; ValueError when none."""
    path = config.text("loop_closure.vocabulary")
    if path:
        return Vocabulary.load(path)
    frontend = config.text("frontend")
    model = config.text("aliked.model") if frontend == "aliked" else ""
    shipped = shipped_vocabulary_path(frontend, model)
    if shipped is None:
        raise ValueError(
            "loop_closure.enabled (on by default when a map is kept) needs a vocabulary for "
            f"frontend {frontend}"
            f"{' ' + model if model else ''}: none is shipped for it; build one with "
            "`superglue-ros vocabulary build IMAGES OUT` and set loop_closure.vocabulary "
            "(or set loop_closure.enabled false to keep the map without loop closure)"
        )
    return Vocabulary.load(shipped)


def describe(component: object) -> str:
    """A component's own description, or its class name."""
    return getattr(component, "description", None) or type(component).__name__


class Pipeline:
    """Frontend -> batched matching against the keyframe buffer -> policy -> track ids.

    Not thread-safe: a shell calls process() from one thread at a time.
    """

    def __init__(
        self, frontend: Frontend, matcher: Matcher, params: Mapping[str, Any] | None = None
    ) -> None:
        """params: a Config (used as it is) or plain values (validated here)."""
        self._config = checked_depth_range(validate(params or {}))
        self.frontend = PreprocessingFrontend(frontend, self._config.integer("max_image_side"))
        self.matcher = matcher
        self.policy = KeyframePolicy.from_config(self._config)
        self.tracks = TrackIdAssigner()
        self._buffer = KeyframeBuffer(self._config.integer("keyframes.buffer_size"))
        self._next_frame_id = 0
        self._last_stamp_ns: int | None = None
        # Why the next frame is a keyframe when the buffer was emptied on purpose.
        self._empty_buffer_reason: str | None = None
        self.network_choice = ""  # from_params: how frontend/matcher auto were resolved
        self.map: KeyframeMap | None = None
        self.loops: LoopDetector | None = None
        self._bows: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # of buffered keyframes
        self._setup_map()

    def _setup_map(self) -> None:
        """A map when loop closure is on or a map is saved or loaded; ValueError if unusable."""
        config = self._config
        enabled = config.flag("loop_closure.enabled")
        if not (enabled or config.text("map.save_path") or config.text("map.load_path")):
            return
        vocabulary = load_vocabulary(config) if enabled else None
        bound = config.integer("map.max_keyframes")
        load_path = config.text("map.load_path")
        if load_path:
            self.map = KeyframeMap.load(load_path, bound)
            # New frames get ids after the loaded keyframes', so an id names one keyframe.
            self._next_frame_id = max((k.keyframe_id for k in self.map), default=-1) + 1
        else:
            self.map = KeyframeMap(bound)
        self.map.keep_newest = config.integer("map.keep_newest")
        if enabled:
            self.loops = LoopDetector(self.map, vocabulary, LoopParams.from_config(config))
            self.loops.session_start_id = self._next_frame_id
            # Words of the vocabulary in use (a loaded map may have none, or another's).
            for keyframe in self.map if vocabulary is not None else ():
                keyframe.words, keyframe.weights = vocabulary.bow(
                    keyframe.descriptors, keyframe.descriptor_kind
                )

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None = None) -> Pipeline:
        """Validate params (unless already a Config), then build the named frontend and matcher.

        frontend/matcher ``auto`` are resolved first (registry.choose_networks);
        ``network_choice`` says what was chosen and why ("" when nothing was auto).
        Raises ValueError on a bad value or combination and
        WeightsNotFoundError when a learned component's weights are missing.
        """
        config, why = choose_networks(params)
        pipeline = cls(build_frontend(config), build_matcher(config), config)
        pipeline.network_choice = why
        return pipeline

    @property
    def config(self) -> Config:
        """The current validated values (frozen; run-time changes replace it)."""
        return self._config

    @property
    def params(self) -> dict[str, Any]:
        """The current validated values as a plain dict (a copy)."""
        return dict(self._config)

    @property
    def description(self) -> str:
        """e.g. "superpoint + superglue(indoor) on cpu fp32" or "orb + mnn"."""
        return f"{describe(self.frontend)} + {describe(self.matcher)}"

    @property
    def keyframes(self) -> list[Keyframe]:
        """The buffered keyframes, newest first."""
        return self._buffer.keyframes

    def process(
        self, image: np.ndarray, stamp_ns: int, companions: Companions | None = None
    ) -> FrameResult:
        """Run one frame through every stage.

        image: [H, W] / [H, W, 1] uint8 gray or [H, W, 3] uint8 RGB (the left image
        of a stereo pair, the colour image of an RGB-D frame).
        companions: what the ``input`` mode needs (stereo: right, rgbd: depth).
        Raises ValueError on a bad image or companion; the pipeline's state is then
        untouched (state only changes after every stage has succeeded).
        """
        start = time.perf_counter()
        stamp_ns = int(stamp_ns)
        companions = self._checked_companions(companions)
        time_jump = self._last_stamp_ns is not None and stamp_ns < self._last_stamp_ns
        # After a jump backwards the old keyframes belong to another time line.
        keyframes = [] if time_jump else self._buffer.keyframes

        features = self.frontend.extract(image)  # checks the image first
        right = companions.right
        right_features = None
        if right is not None:
            right_features = self.frontend.extract(right.image)
            if right_features.image_size != features.image_size:
                raise ValueError(
                    f"right image is {right_features.image_size}, left is "
                    f"{features.image_size} (height, width): a rectified pair has one size"
                )
        depth = companions.depth
        if depth is not None and depth.depth.shape[:2] != features.image_size:
            raise ValueError(
                f"depth image is {depth.depth.shape[:2]}, colour image is "
                f"{features.image_size} (height, width): use the depth aligned to colour "
                "(aligned_depth_to_color/image_raw)"
            )
        frontend_done = time.perf_counter()

        stereo_depth = StereoDepth.from_config(self._config) if right is not None else None
        in_batch = right_features if stereo_depth and stereo_depth.uses_matcher else None
        matches, stereo_pair = self._match(features, keyframes, in_batch)
        matcher_done = time.perf_counter()

        depths = right_x = right_indices = None
        if right is not None and right_features is not None and stereo_depth is not None:
            stereo = self._stereo(stereo_depth, image, right, features, right_features, stereo_pair)
            depths, right_x, right_indices = stereo.depths, stereo.right_x, stereo.right_indices
        elif depth is not None:
            depths = DepthReader.from_config(self._config).read(depth, features.keypoints)
        depth_done = time.perf_counter()

        frame_id = self._next_frame_id
        reason = self._keyframe_reason(features, keyframes, matches, frame_id, time_jump)
        track_ids = self.tracks.assign(len(features), matches, [k.track_ids for k in keyframes])
        loop_query = bow = None
        if reason and self.loops is not None:
            if right is not None:  # a rectified pair knows its camera
                c = right.calibration
                self.loops.camera = camera_matrix(c.fx, c.fy, c.cx, c.cy)
            bow = self.loops.bow(features)  # once: for the query and for the map later
            loop_query = self.loops.query(frame_id, stamp_ns, features, self.matcher, bow)
        loops_done = time.perf_counter()

        buffered = {k.keyframe_id: k for k in self._buffer.keyframes}
        evicted = self._buffer.clear() if time_jump else []
        if reason:
            keyframe = Keyframe(
                frame_id, stamp_ns, features, track_ids, depths, right_x, right_features
            )
            buffered[frame_id] = keyframe
            evicted += self._buffer.add(keyframe)
            self._empty_buffer_reason = None
            if bow is not None:
                self._bows[frame_id] = bow
        self._to_map([buffered[i] for i in evicted if i in buffered])
        self._next_frame_id += 1
        self._last_stamp_ns = stamp_ns
        done = time.perf_counter()

        return FrameResult(
            frame_id=frame_id,
            stamp_ns=stamp_ns,
            is_keyframe=bool(reason),
            features=features,
            track_ids=track_ids,
            matches=matches,
            evicted_keyframe_ids=evicted,
            buffer_cleared=time_jump,
            keyframe_reason=reason,
            timings_ms={
                "frontend": 1e3 * (frontend_done - start),
                "matcher": 1e3 * (matcher_done - frontend_done),
                **({"depth": 1e3 * (depth_done - matcher_done)} if depths is not None else {}),
                **({"loop_closure": 1e3 * (loops_done - depth_done)} if loop_query else {}),
                # Includes track ids and the buffer and map updates.
                "policy": 1e3 * (done - loops_done),
                "total": 1e3 * (done - start),
            },
            depths=depths,
            right_x=right_x,
            right_features=right_features,
            right_indices=right_indices,
            loop_candidates=loop_query.candidates if loop_query else [],
            loop_timings_ms=loop_query.timings_ms if loop_query else {},
        )

    def _to_map(self, keyframes: Sequence[Keyframe]) -> None:
        """Keyframes that left the buffer, oldest first, into the map (when one is kept)."""
        for keyframe in keyframes:
            bow = self._bows.pop(keyframe.keyframe_id, None)
            if self.map is not None:
                self.map.add(self._compact(keyframe, bow))

    def _compact(
        self, keyframe: Keyframe, bow: tuple[np.ndarray, np.ndarray] | None
    ) -> MapKeyframe:
        if bow is None and self.loops is not None:
            bow = self.loops.bow(keyframe.features)
        return MapKeyframe.compact(
            keyframe.keyframe_id,
            keyframe.stamp_ns,
            keyframe.features,
            keyframe.track_ids,
            keyframe.depths,
            bow,
        )

    def set_camera(self, fx: float, fy: float, cx: float, cy: float) -> None:
        """The pinhole of the images (camera_info's K): loops are then verified with the
        essential matrix and get a relative pose; without it, with the fundamental matrix."""
        if self.loops is not None:
            self.loops.camera = camera_matrix(fx, fy, cx, cy)

    def save_map(self, path: str | None = None) -> str:
        """Write the map and the buffered keyframes (which would join it) to path, or
        map.save_path; returns the path. ValueError when there is no map or no path."""
        target = path or self._config.text("map.save_path")
        if self.map is None or not target:
            raise ValueError("no keyframe map to save (set map.save_path or enable loop_closure)")
        snapshot = KeyframeMap(self.map.max_keyframes, self.map.keep_newest)
        for keyframe in self.map:
            snapshot.add(keyframe)
        for buffered in reversed(self._buffer.keyframes):
            snapshot.add(self._compact(buffered, self._bows.get(buffered.keyframe_id)))
        return str(snapshot.save(target))

    def keyframe_features(self, keyframe_id: int) -> tuple[int, Features]:
        """(stamp_ns, features) of a buffered or map keyframe; KeyError when neither has it."""
        for keyframe in self._buffer.keyframes:
            if keyframe.keyframe_id == keyframe_id:
                return keyframe.stamp_ns, keyframe.features
        if self.map is None:
            raise KeyError(f"keyframe {keyframe_id} is not in the buffer and no map is kept")
        found = self.map.get(keyframe_id)
        return found.stamp_ns, found.features()

    def match_features(
        self,
        query: Features,
        match: Features,
        ids: tuple[int, int] = (-1, -1),
        stamps_ns: tuple[int, int] = (0, 0),
    ) -> LoopCandidate:
        """Match two feature sets with the pipeline's matcher and verify them (the
        match_keyframes service). Does not change the pipeline's state."""
        pair = self.matcher.match(query, [match])[0]
        matches0 = np.asarray(pair.matches0)
        query_indices = np.flatnonzero(matches0 >= 0).astype(np.int32)
        match_indices = matches0[query_indices].astype(np.int32)
        params = self.loops.params if self.loops else LoopParams.from_config(self._config)
        camera = self.loops.camera if self.loops else None
        verification = verify_features(query, match, query_indices, match_indices, params, camera)
        return LoopCandidate(
            query_id=ids[0],
            query_stamp_ns=stamps_ns[0],
            match_id=ids[1],
            match_stamp_ns=stamps_ns[1],
            score=0.0,
            query_indices=query_indices,
            match_indices=match_indices,
            match_scores=np.asarray(pair.scores0, np.float32)[query_indices],
            verification=verification,
        )

    def match_keyframes(self, query_id: int, match_id: int) -> LoopCandidate:
        """Match and verify two keyframes of the buffer or the map; KeyError for an unknown id."""
        query_stamp, query = self.keyframe_features(query_id)
        match_stamp, match = self.keyframe_features(match_id)
        return self.match_features(query, match, (query_id, match_id), (query_stamp, match_stamp))

    def match_images(self, image0: np.ndarray, image1: np.ndarray) -> LoopCandidate:
        """Extract, match and verify two images (ValueError on a bad image)."""
        return self.match_features(self.frontend.extract(image0), self.frontend.extract(image1))

    def _checked_companions(self, companions: Companions | None) -> Companions:
        """companions as the ``input`` mode needs them; ValueError saying what is missing."""
        companions = companions or Companions()
        mode = self._config.text("input")
        given = [n for n in ("right", "depth") if getattr(companions, n) is not None]
        wanted = {"mono": [], "stereo": ["right"], "rgbd": ["depth"]}[mode]
        if given != wanted:
            need = f"a {wanted[0]} image" if wanted else "no companion image"
            got = f"a {' and a '.join(given)} image" if given else "none"
            raise ValueError(f"input {mode} needs {need} with each frame, got {got}")
        return companions

    def _match(
        self,
        features: Features,
        keyframes: Sequence[Keyframe],
        right: Features | None = None,
    ) -> tuple[list[KeyframeMatch], PairMatches | None]:
        """One batched matcher call: the right image first (when given), then every
        keyframe, newest first. Returns the keyframe matches and the left-right pair."""
        others = ([right] if right is not None else []) + [k.features for k in keyframes]
        if not others:
            return [], None
        pairs = self.matcher.match(features, others)
        if len(pairs) != len(others):
            raise RuntimeError(
                f"matcher returned {len(pairs)} results for {len(others)} pairs "
                f"({len(keyframes)} keyframes{' and the right image' if right else ''})"
            )
        stereo_pair = pairs.pop(0) if right is not None else None
        matches = [to_keyframe_match(k, p) for k, p in zip(keyframes, pairs, strict=True)]
        return matches, stereo_pair

    def _stereo(
        self,
        stereo: StereoDepth,
        left_image: np.ndarray,
        right_image: RightImage,
        left: Features,
        right: Features,
        pair: PairMatches | None,
    ) -> StereoObservations:
        # The row search's pairs always take the patch check, sub-pixel or not.
        needs_images = stereo.subpixel or stereo.search != "matcher"
        grays = (to_grayscale(left_image), to_grayscale(right_image.image)) if needs_images else ()
        return stereo.observe(left, right, pair, right_image.calibration, *grays)

    def _keyframe_reason(
        self,
        features: Features,
        keyframes: Sequence[Keyframe],
        matches: Sequence[KeyframeMatch],
        frame_id: int,
        time_jump: bool,
    ) -> str:
        if time_jump:
            return TIME_JUMP_REASON
        if not keyframes:
            return self._empty_buffer_reason or "first frame"
        newest = keyframes[0]
        return self.policy.decide(features, newest, matches[0], frame_id - newest.keyframe_id)

    def update_params(self, changes: Mapping[str, Any]) -> None:
        """Change run-time parameters (thresholds). ValueError for anything else.

        All changes are checked (check_runtime_changes) before any is applied.
        Every change is forwarded to the matcher's update_params when it has one
        (it ignores names it does not use), keyframe thresholds to the policy.
        """
        checked = check_runtime_changes(changes)
        update_matcher = getattr(self.matcher, "update_params", None)
        config = checked_depth_range(self._config.with_changes(checked))
        if update_matcher is not None:
            update_matcher(checked)
        self.policy.update_params(checked)
        self._config = config
        if self.loops is not None:
            self.loops.params = LoopParams.from_config(config)

    def reset(self) -> None:
        """Empty the buffer (its keyframes join the map, when one is kept, so that a lost
        tracker can relocalise against them). Frame ids and track ids keep counting."""
        buffered = {k.keyframe_id: k for k in self._buffer.keyframes}
        self._to_map([buffered[i] for i in self._buffer.clear()])
        self._last_stamp_ns = None
        self._empty_buffer_reason = RESET_REASON
