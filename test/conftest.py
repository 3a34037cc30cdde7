"""Shared fixtures: where ../shared is, and skips for what a machine lacks."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"
# SUPERGLUE_ROS_TEST_THREADS=N runs the suite with N torch (and OpenMP) threads: results
# must hold for any count, as reductions split across threads sum in another order.
TEST_THREADS = os.environ.get("SUPERGLUE_ROS_TEST_THREADS", "")


def pytest_configure(config: pytest.Config) -> None:
    if not TEST_THREADS:
        return
    if not TEST_THREADS.isdigit() or int(TEST_THREADS) < 1:
        raise pytest.UsageError(
            f"SUPERGLUE_ROS_TEST_THREADS must be a positive integer, got {TEST_THREADS!r}"
        )
    os.environ["OMP_NUM_THREADS"] = TEST_THREADS  # child processes (nodes, CLIs) follow
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(int(TEST_THREADS))


def pytest_report_header(config: pytest.Config) -> str:
    return f"torch threads: {TEST_THREADS or 'default'} (SUPERGLUE_ROS_TEST_THREADS)"


def _require_dir(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"{path} is absent (tests that need ../shared skip in a plain clone)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require_dir(SHARED)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return _require_dir(SHARED / "fixtures")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _require_dir(SHARED / "data")


@pytest.fixture(scope="session")
def freiburg_dir() -> Path:
    return _require_dir(SHARED / "data" / "freiburg_sequence")


def require_module(name: str, why: str = "") -> None:
    """Skip the calling test when an optional module cannot be imported."""
    if importlib.util.find_spec(name) is None:
        # Also valid at module level, where a test module needs the module to import.
        pytest.skip(f"{name} is not importable{': ' + why if why else ''}", allow_module_level=True)


@pytest.fixture
def ros_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a child process that starts rclpy: DDS on loopback, own domain."""
    require_module("rclpy", "needs ROS 2 (make test installs it)")
    require_module("superglue_ros_msgs", "needs the built interface package (make test builds it)")
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_DOMAIN_ID"] = str(10 + os.getpid() % 90)
    env["PYTHONUNBUFFERED"] = "1"
    env["ROS_LOG_DIR"] = str(tmp_path / "ros_log")
    return env


@pytest.fixture(scope="session")
def parity_images(fixtures_dir: Path) -> tuple:
    """Two gray images of the SuperPoint parity fixture, cropped to 200 x 260."""
    import numpy as np

    with np.load(fixtures_dir / "superpoint_parity_small.npz") as npz:
        return npz["image0"][:200, :260].copy(), npz["image1"][:200, :260].copy()
