"""The trajectory recorder of ``replay --odometry`` and its evaluation against ground truth.

Each configuration's Correspondences messages (the very messages written to its
bag) go through a :class:`~superglue_ros.odometry.VisualOdometry`, as the
``odometry_node`` would receive them. The estimated trajectory is written to
``<config>/trajectory.tum``; with ``--groundtruth`` the report gains the ATE
after a Sim(3) and after an SE(3) alignment (no scale), the Sim(3) scale, the RPE,
the share of frames with a pose and a plot of the aligned trajectories over the
ground truth. With ``loop_closure.enabled`` the matcher's accepted loops go to the
back-end, which closes them (odometry/loops.py); the report lists those it closed
under ``loop_closures`` and the plot joins their two keyframes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from superglue_ros.odometry import (
    CameraIntrinsics,
    VisualOdometry,
    geometry,
    observation_from_message,
)
from superglue_ros.odometry.trajectory import (
    Trajectory,
    TrajectoryError,
    evaluate,
    trajectory_from_poses,
    write_tum,
)

TRAJECTORY_FILE = "trajectory.tum"
PLOT_FILE = "trajectory.png"


def seed_ransac(seed: int) -> None:
    """Make the back-end seed OpenCV's generator with seed before each RANSAC call.

    The back-end reseeds before every call from geometry.RANSAC_SEED (read at
    call time), so a run stays deterministic for any one seed.
    """
    geometry.RANSAC_SEED = seed


def camera_from_file(path: Path) -> CameraIntrinsics:
    """Intrinsics of a camera yaml (the layouts ``bag from-images --camera-yaml`` reads)."""
    from superglue_ros.io.image_files import camera_info_fields

    fields = camera_info_fields(path, 0, "camera")
    return CameraIntrinsics.from_matrix(fields["k"], fields["width"], fields["height"])


class OdometryRecorder:
    """One configuration's back-end, fed the configuration's messages in order.

    camera: fixed intrinsics (--camera) or None to take the bag's CameraInfo K
    handed to add(). conf: back-end settings (VisualOdometry default_conf keys).
    close_loops: hand the back-end the loops add() is given (loop_closure.enabled).
    """

    def __init__(
        self,
        camera: CameraIntrinsics | None,
        conf: Mapping[str, Any] | None = None,
        close_loops: bool = False,
    ) -> None:
        self.camera = camera
        self.conf = dict(conf or {})
        self.close_loops = close_loops
        self.odometry: VisualOdometry | None = None
        self.frames = 0
        self.seconds = 0.0
        self.events: list[dict[str, Any]] = []  # losses and initialisations, with reasons
        self.errors: list[str] = []
        # [M, 3] aligned estimate and ground truth positions, once finish() had ground truth
        self.aligned: np.ndarray | None = None
        self.reference: np.ndarray | None = None
        self.aligned_stamps: np.ndarray | None = None  # [M] seconds of the aligned positions

    def _start(self, message: Any, camera_k: np.ndarray | None) -> VisualOdometry:
        width = int(message.features.image_width)
        height = int(message.features.image_height)
        if self.camera is not None:
            camera = self.camera.scaled_to(width, height)
        elif camera_k is not None:
            camera = CameraIntrinsics.from_matrix(camera_k, width, height)
        else:
            raise ValueError("no camera intrinsics (no camera_info in the bag and no --camera)")
        return VisualOdometry(camera, self.conf)

    def add(self, message: Any, camera_k: np.ndarray | None, loops: Sequence[Any] = ()) -> None:
        """Consume one Correspondences message; camera_k: the bag's K fitted to the images;
        loops: the matcher's accepted loops of this frame (FrameResult.loops)."""
        start = time.perf_counter()
        try:
            if self.odometry is None:
                self.odometry = self._start(message, camera_k)
            estimates = self.odometry.process(observation_from_message(message))
            if self.close_loops:
                for reason in self.odometry.close_loops(loops):
                    self.events.append({"frame_id": int(message.frame_id), "reason": reason})
        except ValueError as error:
            self.errors.append(f"frame {message.frame_id}: {error}")
            return
        finally:
            self.seconds += time.perf_counter() - start
        self.frames += 1
        for estimate in estimates:
            if estimate.frame_id != int(message.frame_id):
                continue  # an earlier frame answered again after initialisation
            if estimate.state == "lost" or estimate.reason.startswith("initialised"):
                self.events.append({"frame_id": estimate.frame_id, "reason": estimate.reason})

    def poses(self) -> list[tuple[int, np.ndarray]]:
        """(stamp ns, camera-to-world) per frame with a pose, final values, by stamp."""
        if self.odometry is None:
            return []
        return sorted((stamp, pose) for _, stamp, pose in self.odometry.trajectory())

    def finish(
        self, out_dir: Path, groundtruth: Trajectory | None, groundtruth_name: str
    ) -> dict[str, Any]:
        """Write out_dir/trajectory.tum; the report's odometry entry (accuracy with ground
        truth; ``accuracy_error`` says why it could not be computed)."""
        poses = self.poses()
        write_tum(out_dir / TRAJECTORY_FILE, poses)
        odometry = self.odometry
        keyframe_ms = odometry.keyframe_ms if odometry is not None else []
        summary: dict[str, Any] = {
            "trajectory": str(Path(out_dir.name) / TRAJECTORY_FILE),
            "frames": self.frames,
            "frames_with_pose": len(poses),
            "pose_fraction": len(poses) / self.frames if self.frames else 0.0,
            "maps_started": odometry.maps_started if odometry is not None else 0,
            "events": self.events,
            "errors": self.errors,
            "ms_per_frame": 1e3 * self.seconds / self.frames if self.frames else None,
            "ms_per_keyframe": {
                "median": float(np.median(keyframe_ms)) if keyframe_ms else None,
                "max": float(np.max(keyframe_ms)) if keyframe_ms else None,
            },
            "settings": dict(odometry.conf) if odometry is not None else dict(self.conf),
            "ransac_seed": geometry.RANSAC_SEED,
            "loop_closure_enabled": self.close_loops,
            "loop_closures": [c.as_dict() for c in odometry.loop_closures] if odometry else [],
        }
        if groundtruth is not None:
            try:
                accuracy = evaluate(trajectory_from_poses(poses), groundtruth, groundtruth_name)
            except TrajectoryError as error:
                summary["accuracy_error"] = str(error)
            else:
                self.aligned = accuracy.pop("aligned")
                self.reference = accuracy.pop("reference")
                self.aligned_stamps = accuracy.pop("aligned_stamps")
                summary["accuracy"] = accuracy
        return summary


def markdown_section(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """report.md lines: the trajectory table and plot (configurations run with --odometry)."""
    runs = [c for c in configs if "odometry" in c]
    if not runs:
        return []

    def cell(config: Mapping[str, Any], key: str, scale: float, digits: int) -> str:
        odometry = config["odometry"]
        accuracy = odometry.get("accuracy")
        if accuracy is None:
            return "n/a"
        return f"{accuracy[key] * scale:.{digits}f}"

    rows = [
        (
            "frames with a pose",
            [
                f"{c['odometry']['frames_with_pose']} / {c['odometry']['frames']} "
                f"({100 * c['odometry']['pose_fraction']:.0f} %)"
                for c in runs
            ],
        ),
        ("ATE RMSE after Sim(3) alignment (cm)", [cell(c, "ate_rmse_m", 100, 2) for c in runs]),
        (
            "ATE RMSE after SE(3) alignment, no scale (cm)",
            [cell(c, "ate_se3_rmse_m", 100, 2) for c in runs],
        ),
        ("Sim(3) scale (1: metric)", [cell(c, "scale", 1, 4) for c in runs]),
        ("ATE max (cm)", [cell(c, "ate_max_m", 100, 2) for c in runs]),
        (
            "RPE translation RMSE, per frame (cm)",
            [cell(c, "rpe_translation_rmse_m", 100, 2) for c in runs],
        ),
        (
            "RPE rotation RMSE, per frame (deg)",
            [cell(c, "rpe_rotation_rmse_deg", 1, 3) for c in runs],
        ),
        ("maps started (1 = never lost)", [str(c["odometry"]["maps_started"]) for c in runs]),
        (
            "loops closed by the back-end",
            [
                str(len(c["odometry"]["loop_closures"]))
                if c["odometry"].get("loop_closure_enabled")
                else "off"
                for c in runs
            ],
        ),
        (
            "back-end ms per keyframe, median / max",
            [
                f"{_ms(c['odometry']['ms_per_keyframe']['median'])} / "
                f"{_ms(c['odometry']['ms_per_keyframe']['max'])}"
                for c in runs
            ],
        ),
    ]
    lines = [
        "## Trajectory (reference back-end)",
        "",
        "| metric | " + " | ".join(c["name"] for c in runs) + " |",
        "| --- |" + " --- |" * len(runs),
    ]
    lines += [f"| {metric} | " + " | ".join(cells) + " |" for metric, cells in rows]
    lines.append("")
    for c in runs:
        odometry = c["odometry"]
        if "accuracy_error" in odometry:
            lines.append(f"- {c['name']}: accuracy not computed: {odometry['accuracy_error']}")
        for event in odometry["events"]:
            lines.append(f"- {c['name']}, frame {event['frame_id']}: {event['reason']}")
        for error in odometry["errors"]:
            lines.append(f"- {c['name']}: skipped message: {error}")
    if any("accuracy" in c["odometry"] for c in runs):
        title = "Estimated trajectories (Sim(3)-aligned) over the ground truth, top view"
        lines += ["", f"![{title}](plots/{PLOT_FILE})"]
    lines.append("")
    return lines


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def loop_positions(recorder: OdometryRecorder) -> list[tuple[np.ndarray, np.ndarray]]:
    """(query, match) aligned positions of each loop the back-end closed, where both
    keyframes have an aligned position (a stamp within a millisecond)."""
    odometry, stamps = recorder.odometry, recorder.aligned_stamps
    if odometry is None or stamps is None or recorder.aligned is None or len(stamps) == 0:
        return []

    def position(stamp_ns: int) -> np.ndarray | None:
        nearest = int(np.argmin(np.abs(stamps - stamp_ns * 1e-9)))
        return recorder.aligned[nearest] if abs(stamps[nearest] - stamp_ns * 1e-9) < 1e-3 else None

    pairs = []
    for loop in odometry.loop_closures:
        query, match = position(loop.query_stamp_ns), position(loop.match_stamp_ns)
        if query is not None and match is not None:
            pairs.append((query, match))
    return pairs


def write_plot(names: Sequence[str], recorders: Sequence[OdometryRecorder], plot_dir: Path) -> None:
    """Top view (x-y) and side view (x-z) of each aligned estimate over the ground truth,
    each closed loop a thick line between its two keyframes."""
    drawn = [(n, r) for n, r in zip(names, recorders, strict=True) if r.aligned is not None]
    if not drawn:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_dir.mkdir(exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, (a, b) in zip(axes, ((0, 1), (0, 2)), strict=True):
        reference = max((r.reference for _, r in drawn), key=len)
        ax.plot(reference[:, a], reference[:, b], "k--", linewidth=2, label="ground truth")
        for name, recorder in drawn:
            aligned = recorder.aligned
            (line,) = ax.plot(aligned[:, a], aligned[:, b], ".-", label=name)
            for query, match in loop_positions(recorder):
                ax.plot(
                    [query[a], match[a]],
                    [query[b], match[b]],
                    "-",
                    color=line.get_color(),
                    linewidth=3,
                    alpha=0.5,
                )
        ax.set(xlabel="xyz"[a] + " (m)", ylabel="xyz"[b] + " (m)", aspect="equal")
        ax.legend()
    fig.tight_layout()
    fig.savefig(plot_dir / PLOT_FILE, dpi=100)
    plt.close(fig)
