"""Run the pipeline over every image of a bag, deterministically, and write a report.

Reads rosbag2 (mcap, sqlite3) and ROS 1 bags; sensor_msgs/Image and
CompressedImage. Every frame is processed in bag order, none dropped. With
``input: stereo`` or ``rgbd`` in the parameters, a frame is a pair of messages
paired as the node pairs them (io/bag_frames.py; --pair-topic, report.json's
``unpaired``). Each
--params file is one configuration (named after the file stem; the defaults
when none is given); all run over the same decoded frames. Output in DIR:

  report.json, report.md, plots/*.png     the comparison of all configurations
  <name>/frames.jsonl                     one JSON line per processed frame
  <name>/correspondences/                 rosbag2 (mcap) per configuration:
                                          /correspondences (every frame) and
                                          /keyframes (keyframes only), type
                                          superglue_ros_msgs/msg/Correspondences
  <name>/trajectory.tum                   with --odometry: the reference back-end's
                                          trajectory (see evaluation/trajectory.py)

BAG may also be such a correspondences bag (``DIR/<name>/correspondences``): with
--odometry the back-end alone runs on its recorded messages, in seconds, and gives
the trajectory the live replay gave for the same seed (tools/replay_recorded.py).

Ctrl-C (or SIGTERM) stops the replay: the frame being processed is dropped (a
frame's messages are written all or nothing), the bags are closed and valid, and
the report covers the frames written and says it was interrupted (exit 130).
Further Ctrl-Cs while it closes the bags and writes the report are ignored.

A damaged input bag (an mcap cut short by a killed recording, a sqlite3 file
with a damaged tail) is replayed up to where it breaks: every intact frame is
processed, the outputs are valid, and the log and report.json
(``input_damage``) say where the bag ended; the exit status is then 3.

Exit status: 0 done, 2 bad arguments or an unreadable bag, 3 done with a damaged
input bag (its intact part), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from superglue_ros.evaluation import trajectory as odometry_eval
from superglue_ros.tools.common import (
    EXIT_DAMAGED_INPUT,
    EXIT_INTERRUPTED,
    CliError,
    add_params_argument,
    build_pipelines,
    load_configs,
)

CORRESPONDENCES_TOPIC = "/correspondences"
KEYFRAMES_TOPIC = "/keyframes"
BAG_NAME = "correspondences"
OUTPUT_QOS_DEPTH = 10  # the node's output_qos_depth default
LISTED_SKIPS = 100  # report.json lists the first skipped frames; skipped_count counts them all


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bag", type=Path, metavar="BAG", help="rosbag2 folder, .mcap, .db3 or .bag")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="new output folder")
    add_params_argument(parser)
    parser.add_argument(
        "--image-topic",
        help="default: the bag's only image topic, else its only left / colour camera topic "
        "(e.g. /camera/left/image_rect, /camera/color/image_raw)",
    )
    parser.add_argument(
        "--camera-info-topic", help="default: <image topic namespace>/camera_info if present"
    )
    parser.add_argument(
        "--pair-topic",
        help="input stereo: the right image topic (default: the image topic's left -> right); "
        "rgbd: the depth topic (default: aligned_depth_to_color/image_raw beside the colour "
        "camera)",
    )
    parser.add_argument(
        "--no-descriptors", action="store_true", help="leave descriptors out of the messages"
    )
    add_odometry_arguments(parser)
    parser.add_argument(
        "--homographies",
        type=Path,
        metavar="FILE",
        help="ground truth of a homography bag (superglue-ros homography-bag): every "
        "frame-keyframe match is scored (precision at 3 px, correct matches)",
    )


def add_odometry_arguments(parser: argparse.ArgumentParser) -> None:
    from superglue_ros.odometry import geometry

    parser.add_argument(
        "--odometry",
        action="store_true",
        help="run the reference back-end on each configuration; writes <config>/trajectory.tum",
    )
    parser.add_argument(
        "--groundtruth",
        type=Path,
        metavar="FILE",
        help="TUM trajectory (stamp tx ty tz qx qy qz qw): adds ATE / RPE to the report",
    )
    parser.add_argument(
        "--camera",
        type=Path,
        metavar="FILE",
        help="camera yaml for --odometry when the bag has no camera_info (or to override it)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="RANSAC seed of the back-end for --odometry (default: its fixed seed, "
        f"{geometry.RANSAC_SEED}); runs with the same seed are identical",
    )


@contextmanager
def deterministic_torch() -> Iterator[None]:
    """Deterministic torch kernels inside the block only; no-op when torch is not loaded."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = previous[2:]


class Interrupts:
    """Ctrl-C (SIGINT) and SIGTERM during a replay: the first one stops it, cleanly.

    The first signal raises KeyboardInterrupt, but never inside holding() (a
    frame's bag writes): there it is raised when the block ends. Later signals
    are only counted, so closing the bags and writing the report are never cut
    short by a second Ctrl-C.
    """

    def __init__(self) -> None:
        self.signals = 0
        self._raised = False
        self._holding = False

    def _handle(self, signum: int, frame: Any) -> None:
        self.signals += 1
        if not self._raised and not self._holding:
            self._raised = True
            raise KeyboardInterrupt

    @contextmanager
    def installed(self) -> Iterator[Interrupts]:
        """Handle SIGINT and SIGTERM inside the block (main thread only; elsewhere a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        stop_signals = (signal.SIGINT, signal.SIGTERM)
        previous = [signal.signal(signum, self._handle) for signum in stop_signals]
        try:
            yield self
        finally:
            for signum, handler in zip(stop_signals, previous, strict=True):
                signal.signal(signum, handler)

    @contextmanager
    def holding(self) -> Iterator[None]:
        """Hold the first signal until the block ends, so a bag write is never cut in half."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
        if self.signals and not self._raised:
            self._raised = True
            raise KeyboardInterrupt


class Progress:
    """A one-line progress bar on stream, drawn only when it is a terminal."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        # sys.stderr when called, not when defined (it may have been replaced since)
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.start = time.perf_counter()

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        width = 30
        filled = width * done // max(self.total, 1)
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\rreplay [{bar}] {done}/{self.total} frames {rate:.1f} fps")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


@dataclass
class ConfigRun:
    """One configuration's pipeline, output bag and statistics."""

    name: str
    pipeline: Any
    writer: Any
    correspondences: Any  # rosbags connection
    keyframes: Any
    recorder: Any
    odometry: Any = None  # odometry_eval.OdometryRecorder with --odometry


def scaled_intrinsics(info: Any, height: int, width: int) -> Any:
    """[3, 3] K from a CameraInfo, rescaled when the images have another size; None if unset."""
    from superglue_ros.io.rosbag import camera_matrix

    k = camera_matrix(info) if info is not None else None
    if k is None or not info.width or not info.height:
        return k
    k = k.copy()
    k[0] *= width / info.width
    k[1] *= height / info.height
    return k


def prepare_output(out: Path) -> None:
    """Create out, refusing a non-empty folder (bags are never overwritten)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CliError(f"output {out} exists and is not an empty folder; choose a new --out")
    out.mkdir(parents=True, exist_ok=True)


def write_result(
    run: ConfigRun,
    result: Any,
    wall_ms: float,
    camera_frame: str,
    bag_stamp: int,
    typestore: Any,
    descriptors: bool,
    intrinsics: Any,
) -> None:
    """One configuration's result for a frame: its bag messages, report row and odometry."""
    from superglue_ros.io.messages import correspondences_fields
    from superglue_ros.io.rosbag import CORRESPONDENCES, build_message

    fields = correspondences_fields(result, camera_frame, descriptors)
    message = build_message(typestore, CORRESPONDENCES, fields)
    data = typestore.serialize_cdr(message, CORRESPONDENCES)
    run.writer.write(run.correspondences, bag_stamp, data)
    if result.is_keyframe:
        run.writer.write(run.keyframes, bag_stamp, data)
    run.recorder.add(result, wall_ms)
    if run.odometry is not None:
        run.odometry.add(message, intrinsics, result.loops)


def warn_double_rectification(bag_input: Any) -> None:
    """One stderr line when stereo.rectify remaps topics named as rectified images."""
    from superglue_ros.io.topics import double_rectification_warning

    warning = double_rectification_warning(bag_input.topics)
    if bag_input.rectification is not None and warning is not None:
        print(f"replay: {warning}", file=sys.stderr)


def warn_unpaired(bag_input: Any) -> None:
    """One stderr line with the messages of each topic that were in no frame, if any."""
    unpaired = bag_input.unpaired()
    if any(unpaired.values()):
        counts = ", ".join(f"{topic} {count}" for topic, count in unpaired.items())
        print(f"\nreplay: messages in no {bag_input.mode} frame: {counts}", file=sys.stderr)


def replay_frames(
    source: Any,
    runs: list[ConfigRun],
    typestore: Any,
    info: Any,
    descriptors: bool,
    interrupts: Interrupts | None = None,
    bag_input: Any = None,
) -> dict[str, Any]:
    """Process every frame through every run; returns what the report needs about the input.

    info: the bag's CameraInfo or None; its K, fitted to the first decoded
    image's size, is used for the inlier ratios. bag_input: io/bag_frames.BagInput
    (default: mono on the source's image topic). Stops cleanly on
    KeyboardInterrupt (reported as interrupted).
    """
    from superglue_ros.io.bag_frames import BagInput
    from superglue_ros.io.stamps import stamp_to_ns

    if bag_input is None:
        bag_input = BagInput("mono", (source.stream.topic,), (source.stream.camera_info_topic,))

    interrupts = interrupts or Interrupts()
    progress = Progress(source.stream.count)
    skipped: list[dict[str, Any]] = []
    skipped_count = 0
    warned: set[str] = set()
    read = 0
    interrupted = False
    intrinsics: Any = None
    try:
        for index, frame in enumerate(bag_input.frames(source)):
            read = index + 1
            bag_stamp, msg = frame.bag_stamp, frame.msgs[0]
            stamp = stamp_to_ns(msg.header.stamp)
            try:
                image, companions = bag_input.decode(frame)
                if intrinsics is None and info is not None:
                    intrinsics = scaled_intrinsics(info, *image.shape[:2])
                    for run in runs:
                        run.recorder.camera_k = intrinsics
                results = []
                for run in runs:
                    start = time.perf_counter()
                    result = run.pipeline.process(image, stamp, companions)
                    results.append((result, 1e3 * (time.perf_counter() - start)))
            except ValueError as error:
                reason = str(error)
                if reason not in warned:
                    warned.add(reason)
                    print(f"\nreplay: skipping frame {index}: {reason}", file=sys.stderr)
                skipped_count += 1
                if len(skipped) < LISTED_SKIPS:
                    skipped.append({"index": index, "stamp_ns": stamp, "reason": reason})
                continue
            with interrupts.holding():
                for run, (result, wall_ms) in zip(runs, results, strict=True):
                    frame = msg.header.frame_id
                    write_result(
                        run, result, wall_ms, frame, bag_stamp, typestore, descriptors, intrinsics
                    )
            progress.update(read)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
    warn_unpaired(bag_input)
    damage = source.damage
    if damage is not None and not interrupted:
        print(
            f"\nreplay: {damage.describe()}; replayed the {read} frames before that point",
            file=sys.stderr,
        )
    return {
        "input_damage": None if damage is None or interrupted else asdict(damage),
        "intrinsics": intrinsics.tolist() if intrinsics is not None else None,
        "frames_read": read,
        "input": bag_input.mode,
        "image_topics": list(bag_input.topics),
        "unpaired": bag_input.unpaired(),
        "skipped_frames": skipped,
        "skipped_count": skipped_count,
        "interrupted": interrupted,
    }


def run(args: argparse.Namespace) -> int:
    with Interrupts().installed() as interrupts:
        return replay_bag(args, interrupts)


def replay_bag(args: argparse.Namespace, interrupts: Interrupts) -> int:
    """The replay of run(); after the first stop signal, later ones cannot cut it short."""
    from superglue_ros.evaluation import report
    from superglue_ros.io import rosbag
    from superglue_ros.io.bag_frames import common_input, open_input
    from superglue_ros.io.rosbag2_writer import offered_qos

    if rosbag.is_correspondences_bag(args.bag):
        from superglue_ros.tools.replay_recorded import replay_recorded

        return replay_recorded(args)
    configs = load_configs(args.params)
    camera, groundtruth = odometry_inputs(args)
    homographies = None
    if args.homographies is not None:
        from superglue_ros.evaluation.homography import load_homographies

        try:
            homographies = load_homographies(args.homographies)
        except ValueError as error:
            raise CliError(str(error)) from error
    # cuBLAS needs this before its first use for deterministic results on CUDA.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    with rosbag.BagSource(args.bag, args.image_topic, args.camera_info_topic) as source:
        try:
            bag_input = open_input(source, common_input(configs), args.pair_topic)
        except ValueError as error:  # BagError included
            raise CliError(str(error)) from error
        warn_double_rectification(bag_input)
        info = source.first_camera_info()
        if (
            args.odometry
            and camera is None
            and (info is None or rosbag.camera_matrix(info) is None)
        ):
            raise CliError(
                "--odometry needs camera intrinsics: the bag has no usable camera_info "
                f"({source.stream.camera_info_topic or 'no CameraInfo topic'}); pass --camera FILE"
            )
        pipelines = build_pipelines(configs)
        prepare_output(args.out)
        typestore = rosbag.make_typestore()
        runs: list[ConfigRun] = []
        try:
            for (name, _), pipeline in zip(configs, pipelines, strict=True):
                bag_dir = args.out / name / BAG_NAME
                (args.out / name).mkdir()
                writer = rosbag.open_writer(bag_dir, "mcap")
                msgtype = rosbag.CORRESPONDENCES
                runs.append(
                    ConfigRun(
                        name=name,
                        pipeline=pipeline,
                        writer=writer,
                        # The QoS the node offers on these topics (ros/qos.py).
                        correspondences=writer.add_connection(
                            CORRESPONDENCES_TOPIC,
                            msgtype,
                            typestore=typestore,
                            offered_qos_profiles=[offered_qos(depth=OUTPUT_QOS_DEPTH)],
                        ),
                        keyframes=writer.add_connection(
                            KEYFRAMES_TOPIC,
                            msgtype,
                            typestore=typestore,
                            offered_qos_profiles=[
                                offered_qos(transient_local=True, depth=OUTPUT_QOS_DEPTH)
                            ],
                        ),
                        recorder=report.RunRecorder(
                            name,
                            pipeline.description,
                            pipeline.params,
                            None,
                            str(bag_dir.relative_to(args.out)),
                            frames_path=args.out / name / report.PER_FRAME_FILE,
                            per_frame_file=f"{name}/{report.PER_FRAME_FILE}",
                        ),
                        odometry=odometry_eval.OdometryRecorder(
                            camera, close_loops=bool(pipeline.params["loop_closure.enabled"])
                        )
                        if args.odometry
                        else None,
                    )
                )
            for config_run in runs:
                config_run.recorder.homographies = homographies
            with deterministic_torch():
                outcome = replay_frames(
                    source, runs, typestore, info, not args.no_descriptors, interrupts, bag_input
                )
        finally:
            for config_run in runs:
                config_run.writer.close()
                config_run.recorder.close()
        stream = source.stream
    document = {
        "bag": str(args.bag),
        "image_topic": stream.topic,
        "image_type": stream.msgtype,
        "camera_info_topic": stream.camera_info_topic,
        "frames_in_bag": stream.count,
        **outcome,
        "configs": [r.recorder.summary() for r in runs],
    }
    if args.odometry:
        odometry_failed = finish_odometry(args, runs, document, groundtruth)
    report.write_report(document, args.out)
    state = "interrupted after" if document["interrupted"] else "processed"
    frames = runs[0].recorder.frames if runs else 0
    print(
        f"replay: {state} {frames} frames x {len(runs)} configuration(s); "
        f"report in {args.out / 'report.md'}",
        file=sys.stderr,
    )
    if document["interrupted"]:
        return EXIT_INTERRUPTED
    if args.odometry and odometry_failed:
        raise CliError(odometry_failed)
    return EXIT_DAMAGED_INPUT if document["input_damage"] else 0


def odometry_inputs(args: argparse.Namespace) -> tuple[Any, Any]:
    """(--camera intrinsics, --groundtruth trajectory), each None when not given; read
    before the replay so that a bad file fails at once."""
    if (args.groundtruth or args.camera or args.seed is not None) and not args.odometry:
        raise CliError("--groundtruth, --camera and --seed need --odometry")
    if args.seed is not None:
        odometry_eval.seed_ransac(args.seed)
    from superglue_ros.odometry.trajectory import read_tum

    camera = odometry_eval.camera_from_file(args.camera) if args.camera else None
    groundtruth = read_tum(args.groundtruth) if args.groundtruth else None
    return camera, groundtruth


def finish_odometry(
    args: argparse.Namespace, runs: list[ConfigRun], document: dict[str, Any], groundtruth: Any
) -> str:
    """Write each trajectory, add the odometry entries to the report document and the
    trajectory plot; the accuracy error to exit with ("" when none)."""
    names = [r.name for r in runs]
    summaries = [
        r.odometry.finish(args.out / r.name, groundtruth, str(args.groundtruth)) for r in runs
    ]
    for config, summary in zip(document["configs"], summaries, strict=True):
        config["odometry"] = summary
    odometry_eval.write_plot(names, [r.odometry for r in runs], args.out / "plots")
    print_odometry_summary(names, summaries)
    errors = [s["accuracy_error"] for s in summaries if "accuracy_error" in s]
    return errors[0] if errors else ""


def print_odometry_summary(names: Sequence[str], summaries: Sequence[Mapping[str, Any]]) -> None:
    """One stderr line per configuration."""
    for name, summary in zip(names, summaries, strict=True):
        accuracy = summary.get("accuracy")
        text = f"ATE {100 * accuracy['ate_rmse_m']:.2f} cm" if accuracy else "no ground truth"
        print(
            f"replay: {name}: {summary['frames_with_pose']}/{summary['frames']} frames with a "
            f"pose, {text}; {summary['trajectory']}",
            file=sys.stderr,
        )
