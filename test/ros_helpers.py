"""Helpers for tests over real DDS: the node as a child process, a probe node in this process.

Every rclpy process here runs with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and the
per-run ROS_DOMAIN_ID of the ``ros_env`` fixture.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from superglue_ros.io.stamps import stamp_to_ns as stamp_ns  # the tests' short name
from superglue_ros.io.yaml_files import dump_params_file

from conftest import PROJECT_ROOT, SHARED

FREIBURG = SHARED / "data" / "freiburg_sequence"
NODE_CMD = [sys.executable, "-m", "superglue_ros.ros.node"]
ODOMETRY_NODE_CMD = [sys.executable, "-m", "superglue_ros.ros.odometry_node"]


# ----------------------------------------------------------------- frames
def sequence_frames(count: int | None = None) -> tuple[list[np.ndarray], list[int], Path | None]:
    """RGB frames, stamps (ns) and a camera.yaml: the Freiburg sequence, else synthetic."""
    from superglue_ros.io import image_files

    if FREIBURG.is_dir():
        paths = image_files.list_images(FREIBURG)[:count]
        return (
            [image_files.read_image(p) for p in paths],
            image_files.stamps_for(paths, None),
            (FREIBURG / "camera.yaml"),
        )
    from synthetic import sequence, translation

    n = count or 12
    # camera-sized, so that the flood test costs what a real camera frame costs
    seq = sequence([translation(4.0 * i, 2.0 * i) for i in range(n)], height=480, width=640)
    images = [np.dstack([g, g, g]) for g in seq.images]
    return images, [1_000_000_000 + i * 100_000_000 for i in range(n)], None


def camera_info_msg(camera_yaml: Path | None, width: int, height: int) -> Any:
    from sensor_msgs.msg import CameraInfo

    from superglue_ros.io import image_files
    from superglue_ros.ros.convert import fill_message

    if camera_yaml is not None:
        return fill_message(CameraInfo(), image_files.camera_info_fields(camera_yaml, 0, "cam"))
    info = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    info.k = np.array([300.0, 0, width / 2, 0, 300.0, height / 2, 0, 0, 1])
    return info


# ------------------------------------------------------------ node process


class NodeProcess:
    """``python -m superglue_ros.ros.node`` with a params file; output goes to a log file."""

    def __init__(
        self,
        env: dict[str, str],
        workdir: Path,
        params: dict[str, Any],
        extra_args: tuple[str, ...] = (),
        name: str = "node",
        new_session: bool = False,
        command: tuple[str, ...] = tuple(NODE_CMD),
    ) -> None:
        """new_session: the node leads its own process group (as under ros2 launch);
        command: the node to run (default matcher_node)."""
        self.log_path = workdir / f"{name}.log"
        params_file = dump_params_file(workdir / f"{name}.yaml", params)
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [*command, "--ros-args", "--params-file", str(params_file), *extra_args],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def interrupt(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGINT; (exit status, seconds until it exited)."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - start

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def close(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# rcutils' default console format: "[INFO] [1712345678.123456789] [matcher_node]: text"
LOG_LINE = re.compile(r"^\[(?:DEBUG|INFO|WARN|ERROR|FATAL)\] \[[0-9.]+\] \[([^\]]+)\]:", re.M)


def logger_names(log: str) -> set[str]:
    """The logger names of the ROS log lines in a node's output."""
    return set(LOG_LINE.findall(log))


# ------------------------------------------------------------------ probe
class Probe:
    """An rclpy node in the test process, spinning in a background thread."""

    def __init__(self, domain_id: int) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node("test_probe", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._running = True
        self._thread.start()

    def _spin(self) -> None:
        while self._running:
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:
                if not self._running:
                    return
                raise

    def collect(self, topic: str, cls: type, qos: Any = 50) -> list[Any]:
        """Subscribe; returns the list the messages are appended to."""
        received: list[Any] = []
        self.node.create_subscription(cls, topic, received.append, qos)
        return received

    def publisher(self, topic: str, cls: type, qos: Any = 10) -> Any:
        return self.node.create_publisher(cls, topic, qos)

    def close(self) -> None:
        import rclpy

        self._running = False
        self._thread.join(timeout=5)
        self.executor.shutdown(timeout_sec=1)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture
def probe(ros_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Probe]:
    """A probe node on the child processes' domain, discovery on loopback only."""
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_DOMAIN_ID", ros_env["ROS_DOMAIN_ID"])
    node = Probe(int(ros_env["ROS_DOMAIN_ID"]))
    try:
        yield node
    finally:
        node.close()


# These waits only say "eventually" (no test bounds a latency with them), so they are
# generous: a loaded CI machine must not fail a test, and a passing run never waits.
PATIENCE = 3.0


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, node: NodeProcess | None = None
) -> None:
    timeout *= PATIENCE
    deadline = time.monotonic() + timeout
    while not condition():
        if node is not None and not node.alive():
            raise AssertionError(
                f"node exited ({node.proc.returncode}) while waiting for {what}:\n"
                + node.output()[-3000:]
            )
        if time.monotonic() > deadline:
            extra = ("\nnode log:\n" + node.output()[-3000:]) if node is not None else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}{extra}")
        time.sleep(0.02)


def wait_subscribed(publisher: Any, node: NodeProcess, timeout: float = 60.0) -> None:
    wait_until(
        lambda: publisher.get_subscription_count() > 0, timeout, "the node to subscribe", node
    )


def diagnostics_values(messages: list[Any], node_name: str = "matcher_node") -> dict[str, str]:
    """Key/values of the newest status of node_name in /diagnostics messages ({} if none)."""
    for array in reversed(list(messages)):
        for status in array.status:
            if node_name in status.name:
                return {kv.key: kv.value for kv in status.values}
    return {}


def reliable(depth: int = 10, transient_local: bool = False) -> Any:
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL
        if transient_local
        else DurabilityPolicy.VOLATILE,
    )


def env_without_weights(env: dict[str, str], home: Path) -> dict[str, str]:
    """env where no weights can be found: empty $SUPERGLUE_ROS_WEIGHTS, a fresh HOME/cache."""
    out = dict(env)
    out["SUPERGLUE_ROS_WEIGHTS"] = str(home / "no_weights_here")
    out["HOME"] = str(home)
    out["XDG_CACHE_HOME"] = str(home / ".cache")
    return out


def have_model_weights_helper() -> bool:
    return (PROJECT_ROOT / "test" / "model_weights.py").is_file()


def image_msg(image: np.ndarray, stamp: int, frame_id: str = "cam") -> Any:
    from superglue_ros.ros.player import image_message

    return image_message(image, stamp, frame_id)


def publish_lockstep(
    node: NodeProcess,
    image_pub: Any,
    received: list[Any],
    frames: list[np.ndarray],
    stamps: list[int],
    info_pub: Any = None,
    info: Any = None,
    frame_id: str = "cam",
    timeout: float = 30.0,
) -> list[float]:
    """Publish each frame once the previous one's correspondences arrived; seconds per frame."""
    seconds = []
    for image, stamp in zip(frames, stamps, strict=True):
        before = len(received)
        start = time.monotonic()
        if info_pub is not None and info is not None:
            info.header.stamp = image_msg(image[:1, :1], stamp).header.stamp
            info.header.frame_id = frame_id
            info_pub.publish(info)
        image_pub.publish(image_msg(image, stamp, frame_id))
        wait_until(lambda b=before: len(received) > b, timeout, f"result of frame {stamp}", node)
        seconds.append(time.monotonic() - start)
    return seconds


def check_frame_outputs(corrs, keyframes, stamps, vins, info, min_inherited: float = 0.5) -> None:
    """The checks (a) and (b) share: stamps, ids, indices, keyframes and the VINS stream."""
    assert [stamp_ns(c.header.stamp) for c in corrs] == stamps
    assert all(c.header.frame_id == "cam" and c.features.header.frame_id == "cam" for c in corrs)
    ids = [c.frame_id for c in corrs]
    assert ids == sorted(set(ids)), f"frame ids not strictly increasing: {ids}"
    assert corrs[0].is_keyframe and not corrs[0].matches
    by_id = {c.frame_id: c for c in corrs}
    buffered: list[int] = []
    for c in corrs:
        n = len(c.features.scores)
        assert len(c.features.keypoints) == 2 * n and len(c.features.track_ids) == n
        assert [m.keyframe_id for m in c.matches] == buffered, "matches = buffered keyframes"
        for m in c.matches:
            keyframe = by_id[m.keyframe_id]
            assert keyframe.is_keyframe
            assert stamp_ns(m.keyframe_stamp) == stamp_ns(keyframe.header.stamp)
            fi, ki = np.asarray(m.frame_indices), np.asarray(m.keyframe_indices)
            assert len(fi) == len(ki) == len(m.scores)
            assert fi.size == 0 or (fi.min() >= 0 and fi.max() < n)
            assert ki.size == 0 or (ki.min() >= 0 and ki.max() < len(keyframe.features.scores))
            assert np.all((np.asarray(m.scores) >= 0) & (np.asarray(m.scores) <= 1))
            assert len(set(fi.tolist())) == len(fi), "one match per frame keypoint and keyframe"
        if c.matches and len(c.matches[0].frame_indices):  # matched: keyframe's track ids
            m = c.matches[0]
            kf_tracks = np.asarray(by_id[m.keyframe_id].features.track_ids)
            same = (
                np.asarray(c.features.track_ids)[np.asarray(m.frame_indices)]
                == kf_tracks[np.asarray(m.keyframe_indices)]
            )
            assert same.mean() >= min_inherited
            # Rules 1 and 2 of pipeline/tracks.py exactly: a match to the newest keyframe
            # that did not inherit lost its id to another keypoint of this frame (a
            # duplicate) and started a new track.
            frame_tracks = np.asarray(c.features.track_ids)
            lost = np.asarray(m.keyframe_indices)[~same]
            assert np.isin(kf_tracks[lost], frame_tracks).all()
            assert (frame_tracks[np.asarray(m.frame_indices)[~same]] > kf_tracks.max()).all()
        evicted = list(c.evicted_keyframe_ids)
        buffered = [b for b in buffered if b not in evicted]
        if c.is_keyframe:
            buffered = [c.frame_id, *buffered]
    # keyframes topic: exactly the keyframe results, same content
    assert [k.frame_id for k in keyframes] == [c.frame_id for c in corrs if c.is_keyframe]
    assert all(k.is_keyframe for k in keyframes)
    assert [stamp_ns(k.header.stamp) for k in keyframes] == [
        stamp_ns(c.header.stamp) for c in corrs if c.is_keyframe
    ]
    # VINS: camera_info was published before every frame
    assert len(vins) == len(corrs)
    assert [stamp_ns(v.header.stamp) for v in vins] == stamps
    fx, fy, cx, cy = info.k[0], info.k[4], info.k[2], info.k[5]
    points_total = 0
    for cloud, c in zip(vins, corrs, strict=True):
        channels = {ch.name: np.asarray(ch.values) for ch in cloud.channels}
        assert list(channels) == [
            "id_of_point",
            "u_of_point",
            "v_of_point",
            "velocity_x_of_point",
            "velocity_y_of_point",
        ]
        assert all(len(v) == len(cloud.points) for v in channels.values())
        points = np.array([[p.x, p.y, p.z] for p in cloud.points]).reshape(-1, 3)
        points_total += len(points)
        np.testing.assert_allclose(points[:, 2], 1.0)
        np.testing.assert_allclose(points[:, 0], (channels["u_of_point"] - cx) / fx, atol=1e-4)
        np.testing.assert_allclose(points[:, 1], (channels["v_of_point"] - cy) / fy, atol=1e-4)
        tracks = set(np.asarray(c.features.track_ids).tolist())
        assert set(channels["id_of_point"].astype(np.int64).tolist()) <= tracks
    assert len(vins[0].points) == 0, "VINS sends features only once tracked"
    assert points_total > 0
