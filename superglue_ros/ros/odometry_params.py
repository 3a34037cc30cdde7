"""odometry_node's parameters: its own settings and the back-end's, as ParamSpec tables.

Like matcher_node's (ros/params.py): one table gives each parameter its default,
description, range and whether it may change at run time (none may: the back-end
reads its settings once), declared on the node with the same descriptors. The
back-end's settings are ``backend.<name>`` with the defaults of
:data:`superglue_ros.odometry.backend.default_conf`; :func:`check_conf` still
checks the relations between them (a window longer than its fixed part). Imports
nothing from ROS.
"""

from __future__ import annotations

from typing import Any

from superglue_ros.odometry.backend import ROBUST_LOSSES, check_conf, default_conf
from superglue_ros.pipeline.params import ParamSpec, validate

BACKEND_PREFIX = "backend."

NODE_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("world_frame", "odom", "frame_id of the published poses."),
    ParamSpec(
        "keyframes_only",
        False,
        "Subscribe 'keyframes' (reliable, transient local) instead of 'correspondences'; "
        "then only keyframes get a pose.",
    ),
    ParamSpec(
        "input_qos_depth",
        100,
        "History depth of the input subscription (messages waiting while a keyframe's "
        "bundle adjustment runs).",
        min_value=1,
        max_value=100000,
    ),
    ParamSpec(
        "close_loops",
        True,
        "Subscribe 'loop_closures' (the matcher's, with loop_closure.enabled) and close the "
        "accepted loops in a pose graph.",
    ),
    ParamSpec(
        "max_path_poses",
        10000,
        "The path keeps this many newest poses (0: all).",
        min_value=0,
        max_value=10_000_000,
    ),
)

# Bounds shared by settings of one kind (the upper ones generous).
COUNT = (0, 100000)  # matches, points, inliers, frames
ANGLE_DEG = (0.0, 90.0)
ROTATION_DEG = (0.0, 180.0)
PIXELS = (0.0, 100.0)
MULTIPLE = (0.0, 1000.0)  # of a sigma, or of the median keyframe step

# name: (description, (min, max)); defaults come from default_conf. The lower bounds are
# check_conf's (non-negative, one fixed keyframe and one more in the window), so the
# node accepts every value the back-end accepts up to generous upper bounds.
_BACKEND: dict[str, tuple[str, tuple[float | None, float | None]]] = {
    "window_keyframes": ("Keyframes optimised together by the sliding-window BA.", (2, 1000)),
    "fixed_keyframes": ("The window's oldest keyframes, held fixed (gauge and scale).", (1, 999)),
    "min_init_matches": ("Shared tracks the two initial keyframes need.", COUNT),
    "min_init_points": ("Points the initial pair must triangulate.", COUNT),
    "min_init_parallax_deg": ("Ray angle of a well-conditioned initial point, degrees.", ANGLE_DEG),
    "homography_ratio": (
        "Initialise from the homography above this score ratio S_H / (S_H + S_E).",
        (0.0, 1.0),
    ),
    "essential_threshold_px": ("RANSAC threshold of the essential matrix, px.", PIXELS),
    "two_view_tries": ("Seeded RANSAC runs of each two-view fit; the best scoring wins.", (1, 100)),
    "pnp_threshold_px": ("RANSAC and inlier threshold of PnP, px.", PIXELS),
    "min_pnp_inliers": ("Fewer PnP inliers: a keyframe is lost, a frame gets no pose.", COUNT),
    "min_triangulation_deg": ("Smallest ray angle of a new landmark, degrees.", ANGLE_DEG),
    "max_reprojection_px": ("Observations reprojecting worse are outliers, px.", (0.0, 1000.0)),
    "pixel_sigma": ("Keypoint position noise of the reprojection factors, px.", PIXELS),
    "robust_loss": ("Robust kernel of the reprojection factors.", (None, None)),
    "robust_k": ("The robust kernel's threshold, in pixel sigmas.", MULTIPLE),
    "ba_iterations": ("Levenberg-Marquardt iterations per window.", (0, 1000)),
    "max_waiting_frames": ("Frames kept while initialising (oldest dropped).", COUNT),
    "stereo_max_depth_baselines": (
        "Stereo depths beyond this many baselines place no landmark (triangulated instead).",
        (0.0, 100000.0),
    ),
    "min_depth_landmarks": (
        "Fewer close stereo depths in a keyframe: its nearest far ones make up the number.",
        COUNT,
    ),
    "rgbd_baseline_m": (
        "Virtual baseline turning an RGB-D depth into a stereo factor, metres.",
        (1e-6, 100.0),
    ),
    "loop_rotation_sigma_deg": ("Rotation noise of a loop constraint, degrees.", ROTATION_DEG),
    "loop_translation_sigma": (
        "Translation noise of a loop constraint, in median keyframe steps.",
        MULTIPLE,
    ),
    "loop_robust_k": (
        "Robust kernel threshold of loop constraints, in sigmas (more: the loop is refused).",
        MULTIPLE,
    ),
    "odometry_rotation_sigma_deg": (
        "Rotation noise of a keyframe-to-keyframe edge of the pose graph, degrees.",
        ROTATION_DEG,
    ),
    "odometry_translation_sigma": (
        "Translation noise of a keyframe-to-keyframe edge, in median keyframe steps.",
        MULTIPLE,
    ),
    "loop_iterations": ("Levenberg-Marquardt iterations of the pose graph.", (0, 10000)),
    "loop_keyframes": ("Keyframes whose keypoints are kept for loops.", (0, 10_000_000)),
    "loop_min_pnp_coverage": (
        "Share of the match keyframe's image its loop PnP inliers must cover.",
        (0.0, 1.0),
    ),
    "loop_similarity": (
        "Close a monocular map's loops in a Sim(3) pose graph (the scale drift too).",
        (None, None),
    ),
    "odometry_scale_sigma": (
        "Log-scale noise of a keyframe-to-keyframe edge of the Sim(3) pose graph.",
        (1e-9, 10.0),
    ),
    "loop_covariance_from_fit": (
        "A loop's noise from its PnP fit's covariance (else the loop sigmas).",
        (None, None),
    ),
    "loop_pixel_sigma_floor": (
        "Least reprojection noise a loop's PnP covariance assumes, px.",
        (0.0, 100.0),
    ),
    "loop_global_ba": (
        "After a loop, bundle-adjust a monocular map's keyframes with the loop's inliers.",
        (None, None),
    ),
    "loop_global_ba_keyframes": (
        "Most keyframes of a map the global BA after a loop runs over (more: skipped).",
        (0, 100_000),
    ),
    "loop_global_ba_iterations": (
        "Levenberg-Marquardt iterations of the global BA after a loop.",
        (0, 10000),
    ),
}


def _backend_spec(name: str, default: Any) -> ParamSpec:
    description, (low, high) = _BACKEND.get(
        name, ("Back-end setting (odometry/backend.py).", (0, None))
    )
    if isinstance(default, str):
        choices = ROBUST_LOSSES if name == "robust_loss" else None
        return ParamSpec(BACKEND_PREFIX + name, default, description, choices=choices)
    if isinstance(default, bool):
        return ParamSpec(BACKEND_PREFIX + name, default, description)
    return ParamSpec(BACKEND_PREFIX + name, default, description, min_value=low, max_value=high)


BACKEND_PARAMS: tuple[ParamSpec, ...] = tuple(
    _backend_spec(name, default) for name, default in default_conf.items()
)
ODOMETRY_SPECS: dict[str, ParamSpec] = {spec.name: spec for spec in (*NODE_PARAMS, *BACKEND_PARAMS)}


def split(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(node settings, back-end conf) from declared values; ParameterError or ValueError
    naming the problem."""
    config = validate(values, ODOMETRY_SPECS)
    node = {spec.name: config[spec.name] for spec in NODE_PARAMS}
    conf = {name: config[BACKEND_PREFIX + name] for name in default_conf}
    return node, check_conf(conf)
