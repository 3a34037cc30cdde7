"""``replay --odometry`` on a correspondences bag: the back-end alone, on recorded output.

A replay writes each configuration's Correspondences messages to
``DIR/<config>/correspondences``. Replaying that bag with ``--odometry`` feeds
the very same messages to the reference back-end, without the front-end and
matcher: seconds instead of the minutes (or hours, for the learned front-ends on
a CPU) the images took, so back-end seeds and changes can be re-evaluated on the
learned front-ends' output. The trajectory is the one the live replay gives for
the same seed and back-end.

The camera intrinsics come from ``--camera`` or, by default, from the replay's
``DIR/report.json`` (``intrinsics``: the bag's CameraInfo K fitted to the images).
That report's entry for the configuration (front-end, matcher and stage times) is
copied into the new report.json, its odometry replaced, so a benchmark over
recorded bags reads the same fields. The matcher's loop candidates are not in the
bag: a configuration recorded with ``loop_closure.enabled`` is refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from superglue_ros.evaluation import trajectory as odometry_eval
from superglue_ros.tools.common import CliError

REPORT_FILE = "report.json"


def source_report(bag: Path) -> tuple[str, dict[str, Any] | None, Path | None]:
    """(configuration name, that configuration's replay report entry or None, the report
    path or None) of a bag at ``DIR/<config>/correspondences[/file.mcap]``."""
    folder = bag.parent if bag.is_file() else bag
    name = folder.parent.name
    path = folder.parent.parent / REPORT_FILE
    if not path.is_file():
        return name or "recorded", None, None
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CliError(f"cannot read the replay report {path}: {error}") from error
    entry = next((c for c in report.get("configs", []) if c.get("name") == name), None)
    if entry is not None:
        entry = {**entry, "intrinsics": report.get("intrinsics")}
    return name, entry, path


def replay_recorded(args: argparse.Namespace) -> int:
    """The back-end over the /correspondences messages of args.bag; writes DIR/report.json,
    DIR/report.md, DIR/<config>/trajectory.tum and DIR/plots/trajectory.png."""
    from superglue_ros.io.rosbag import BagError, read_correspondences
    from superglue_ros.tools.replay import odometry_inputs, prepare_output, print_odometry_summary

    if not args.odometry:
        raise CliError(
            f"{args.bag} holds correspondences (a replay's output), not images: "
            "add --odometry to run the back-end on them"
        )
    if args.params:
        raise CliError(
            "--params configures the front-end and matcher, which a correspondences bag "
            "already ran; leave it out"
        )
    camera, groundtruth = odometry_inputs(args)
    name, entry, report_path = source_report(args.bag)
    if entry is not None and entry.get("params", {}).get("loop_closure.enabled"):
        raise CliError(
            f"{name} ran with loop_closure.enabled; the bag holds no loop candidates, so its "
            "back-end cannot be repeated from the bag"
        )
    intrinsics = None if entry is None else entry.get("intrinsics")
    camera_k = np.asarray(intrinsics, dtype=np.float64) if intrinsics is not None else None
    if camera is None and camera_k is None:
        raise CliError(
            f"no camera intrinsics for {args.bag}: no replay report beside it "
            f"({args.bag.parent.parent / REPORT_FILE}) with intrinsics; pass --camera FILE"
        )
    prepare_output(args.out)
    (args.out / name).mkdir()
    recorder = odometry_eval.OdometryRecorder(camera)
    try:
        for message in read_correspondences(args.bag):
            recorder.add(message, camera_k)
    except BagError as error:
        raise CliError(str(error)) from error
    summary = recorder.finish(args.out / name, groundtruth, str(args.groundtruth))
    config = {
        "name": name,
        **{k: v for k, v in (entry or {}).items() if k not in ("name", "intrinsics", "odometry")},
        "odometry": summary,
    }
    document = {
        "bag": str(args.bag),
        "input": "correspondences",
        "source_report": str(report_path) if report_path else None,
        "intrinsics": camera_k.tolist() if camera_k is not None else None,
        "configs": [config],
    }
    (args.out / REPORT_FILE).write_text(json.dumps(document, indent=1) + "\n")
    lines = [
        "# Replay report: the back-end on recorded correspondences",
        "",
        f"- bag: `{args.bag}` ({recorder.frames} Correspondences messages)",
        f"- front-end run: `{report_path}`" if report_path else "- front-end run: unknown",
        "",
        *odometry_eval.markdown_section([config]),
    ]
    odometry_eval.write_plot([name], [recorder], args.out / "plots")
    (args.out / "report.md").write_text("\n".join(lines) + "\n")
    print_odometry_summary([name], [summary])
    print(f"replay: back-end report in {args.out / 'report.md'}", file=sys.stderr)
    if "accuracy_error" in summary:
        raise CliError(summary["accuracy_error"])
    return 0
