"""`make demo` end to end: node process, sequence over DDS, one line per frame, exit 0."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_demo_runs_the_sequence(ros_env) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "superglue_ros.tools.cli", "demo"],
        env=ros_env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    lines = [line for line in run.stdout.splitlines() if line.startswith("frame ")]
    match = re.search(r"demo: (\d+) frames", run.stdout)
    assert match and len(lines) == int(match.group(1)) > 0, out
    ids = [int(line.split()[1]) for line in lines]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert "KEYFRAME" in lines[0] and lines[0].rstrip().endswith("ms")
    from superglue_ros.tools.demo import missing_aliked_lightglue_weights, missing_weights

    if missing_weights() is None:
        assert "starting matcher_node with superpoint + superglue" in run.stdout, out
    elif (
        missing_aliked_lightglue_weights() is None
    ):  # a fresh clone after make setup: learned, permissive
        assert "SuperPoint + SuperGlue weights are missing" in run.stdout, out
        assert "running ALIKED + LightGlue instead" in run.stdout, out
        assert "starting matcher_node with aliked + lightglue" in run.stdout, out
        assert "orb + mnn" not in run.stdout, out
        matched = [int(m) for m in re.findall(r"kf\d+:(\d+)", run.stdout)]
        assert matched and max(matched) >= 100, out  # real learned matches on real frames
    else:
        assert "classical baseline (orb + mnn) instead" in run.stdout, out


def test_synthetic_fallback_sequence_moves() -> None:
    from superglue_ros.tools.demo import synthetic_sequence

    frames, stamps = synthetic_sequence(5)
    assert len(frames) == 5 and all(f.shape == (240, 320) for f in frames)
    assert np.all(np.diff(stamps) > 0)
    assert not np.array_equal(frames[0], frames[1]) and frames[0].std() > 20


def test_demo_falls_back_to_the_baseline_when_the_learned_node_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Weights present but unusable: the learned node exits (status 3), the demo says why
    and how to fix it, then runs orb + mnn. The processes and DDS are stood in for."""
    pytest.importorskip("rclpy", reason="the demo imports its DDS client")
    from superglue_ros.ros import demo_client
    from superglue_ros.tools import cli, demo

    started: list[dict] = []

    class FakeNode:
        def __init__(self, params: dict, workdir, name: str) -> None:
            started.append(params)
            self.log_path = workdir / f"{name}.log"
            self.code = demo.EXIT_MISSING_WEIGHTS if len(started) == 1 else 0

        def alive(self) -> bool:
            return False

        def log(self) -> str:
            return "fatal: model weights not found: superpoint_v1.pth is damaged"

        def stop(self) -> int:
            return self.code

    def lockstep(frames, stamps, info, namespace, node_alive, out):
        if len(started) == 1:
            raise demo_client.NodeGoneError("the node exited")
        return [{"keyframe": i == 0, "ms": 5.0} for i in range(len(frames))]

    frames, stamps = demo.synthetic_sequence(3)
    monkeypatch.setattr(demo, "load_sequence", lambda: (frames, stamps, None, "3 frames"))
    monkeypatch.setattr(demo, "missing_weights", lambda: None)
    monkeypatch.setattr(demo, "missing_aliked_lightglue_weights", lambda: "not installed here")
    monkeypatch.setattr(demo, "NodeProcess", FakeNode)
    monkeypatch.setattr(demo_client, "run_lockstep", lockstep)
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    assert [p["frontend"] for p in started] == ["superpoint", "orb"]
    assert "demo: superpoint + superglue weights are missing:" in out
    assert "superpoint_v1.pth is damaged" in out  # the node's own reason, from its log
    assert "demo: running orb + mnn (classical baseline) instead." in out
    assert "3 frames, 1 keyframes" in out and "with orb + mnn (classical baseline)" in out
