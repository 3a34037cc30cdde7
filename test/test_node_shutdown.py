"""matcher_node and odometry_node under repeated SIGINT/SIGTERM: exit 0, no traceback,
within 5 s.

``ros2 launch`` forwards SIGINT to its processes and the terminal's Ctrl-C reaches
them too, so two signals close together are the normal case. The node runs in its
own process group and gets both signals there, as from a terminal.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from conftest import require_module
from ros_helpers import NODE_CMD, ODOMETRY_NODE_CMD, NodeProcess, logger_names, wait_until

pytestmark = pytest.mark.slow

BASELINE = {"frontend": "orb", "matcher": "mnn", "diagnostics_period": 0.1}
# command, parameters, the log line that says the node is up
NODES = {
    "matcher_node": (NODE_CMD, BASELINE, "listening on"),
    "odometry_node": (ODOMETRY_NODE_CMD, {"world_frame": "map"}, "odometry from"),
}
SHUTDOWN_LIMIT_S = 5.0
# (first signal, second signal, seconds between them): each gap 0 to 500 ms, SIGINT
# twice in most tries, SIGTERM mixed in.
TRIES = [
    (signal.SIGINT, signal.SIGINT, 0.0),
    (signal.SIGINT, signal.SIGINT, 0.0),
    (signal.SIGINT, signal.SIGINT, 0.005),
    (signal.SIGINT, signal.SIGINT, 0.005),
    (signal.SIGINT, signal.SIGINT, 0.02),
    (signal.SIGINT, signal.SIGINT, 0.02),
    (signal.SIGINT, signal.SIGINT, 0.1),
    (signal.SIGINT, signal.SIGINT, 0.1),
    (signal.SIGINT, signal.SIGINT, 0.5),
    (signal.SIGINT, signal.SIGINT, 0.5),
    (signal.SIGTERM, signal.SIGINT, 0.005),
    (signal.SIGINT, signal.SIGTERM, 0.1),
    (signal.SIGTERM, signal.SIGTERM, 0.02),
]


def start_node(env: dict[str, str], workdir: Path, which: str, name: str) -> NodeProcess:
    command, params, started = NODES[which]
    node = NodeProcess(env, workdir, params, name=name, new_session=True, command=command)
    wait_until(lambda: started in node.output(), 30, f"{which} to start", node)
    return node


@pytest.mark.parametrize("which", sorted(NODES))
def test_two_signals_during_shutdown_exit_cleanly(ros_env, tmp_path, which: str) -> None:
    if which == "odometry_node":
        require_module("gtsam", "the back-end needs GTSAM (make setup installs it)")
        require_module("nav_msgs", "needs nav_msgs (make setup installs ros-nav-msgs)")
    failures = []
    # Two nodes start at once (start-up is mostly imports), then each gets its signals.
    for first_try in range(0, len(TRIES), 2):
        pair = list(enumerate(TRIES[first_try : first_try + 2], start=first_try))
        nodes = [start_node(ros_env, tmp_path, which, f"try{i}") for i, _ in pair]
        try:
            for node, (index, (first, second, gap)) in zip(nodes, pair, strict=True):
                start = time.monotonic()
                os.killpg(node.pid, first)
                time.sleep(gap)
                if node.alive():  # a fast exit after the first signal is a pass too
                    os.killpg(node.pid, second)
                try:
                    code = node.wait(timeout=SHUTDOWN_LIMIT_S + 5)
                except Exception:
                    code = None
                took = time.monotonic() - start
                log = node.output()
                label = f"try {index}: {first.name} then {second.name} {gap * 1e3:.0f} ms later"
                if code != 0 or "Traceback" in log or took > SHUTDOWN_LIMIT_S:
                    failures.append(f"{label}: exit {code} after {took:.1f} s\n{log[-1500:]}")
                elif "shutting down" not in log:
                    failures.append(f"{label}: no shutdown message\n{log[-1500:]}")
                elif logger_names(log) != {which}:  # one logger name per node
                    failures.append(f"{label}: log lines from {sorted(logger_names(log))}")
        finally:
            for node in nodes:
                node.close()
    assert not failures, "\n\n".join(failures)
