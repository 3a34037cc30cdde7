"""The code stays ruff-clean (CI runs only the test suite, so the suite checks it)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from conftest import PROJECT_ROOT

PATHS = ["superglue_ros", "test", "launch", "setup.py"]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff(command: list[str]) -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (make test installs it)")
    run = subprocess.run([ruff, *command, *PATHS], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


LAYER_CASES = [
    # (file the import would be in, the import, banned?)
    ("superglue_ros/models/probe.py", "import rclpy", True),
    ("superglue_ros/models/probe.py", "from superglue_ros.pipeline import types", True),
    ("superglue_ros/models/probe.py", "from superglue_ros.tools import cli", True),
    ("superglue_ros/pipeline/probe.py", "from rclpy.node import Node", True),
    ("superglue_ros/pipeline/probe.py", "from superglue_ros.ros import player", True),
    ("superglue_ros/pipeline/probe.py", "from superglue_ros.io import images", True),
    ("superglue_ros/pipeline/probe.py", "from superglue_ros.models import superglue", False),
    ("superglue_ros/io/probe.py", "from superglue_ros.tools import common", True),
    ("superglue_ros/io/probe.py", "from superglue_ros.pipeline import types", False),
    ("superglue_ros/ros/probe.py", "from superglue_ros.tools import common", True),
    ("superglue_ros/ros/probe.py", "from superglue_ros.io import images", False),
    ("superglue_ros/tools/probe.py", "from superglue_ros.ros import player", False),
    ("superglue_ros/evaluation/probe.py", "import rclpy", True),
    ("superglue_ros/evaluation/probe.py", "import argparse", True),
    ("superglue_ros/evaluation/probe.py", "from superglue_ros.tools import cli", True),
    ("superglue_ros/evaluation/probe.py", "from superglue_ros.ros import player", True),
    ("superglue_ros/evaluation/probe.py", "from superglue_ros.odometry import trajectory", False),
    ("superglue_ros/io/datasets/probe.py", "from superglue_ros.tools import bag", True),
]


@pytest.mark.parametrize(("path", "line", "banned"), LAYER_CASES)
def test_ruff_enforces_the_import_layers(path: str, line: str, banned: bool) -> None:
    """models <- pipeline <- io <- {odometry, evaluation, ros, tools}: each folder's ruff.toml
    bans what is above it."""
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (make test installs it)")
    source = f'"""Probe."""\n\n\ndef probe() -> None:\n    {line}  # noqa: F401\n'
    run = subprocess.run(
        [ruff, "check", "--no-cache", "--stdin-filename", path, "-"],
        cwd=PROJECT_ROOT,
        input=source,
        capture_output=True,
        text=True,
    )
    assert (run.returncode != 0) is banned, run.stdout + run.stderr
    assert ("TID251" in run.stdout) is banned


def test_extending_guide_names_only_files_that_exist() -> None:
    """docs/extending.md lists touch points by path: each must still be there."""
    text = (PROJECT_ROOT / "docs" / "extending.md").read_text()
    named = set(
        re.findall(r"`((?:superglue_ros/|test/|config/|docs/)?[\w/]+\.(?:py|md|yaml))", text)
    )
    assert len(named) > 20
    package = PROJECT_ROOT / "superglue_ros"
    missing = [
        path
        for path in sorted(named)
        if not (PROJECT_ROOT / path).is_file() and not (package / path).is_file()
    ]
    assert not missing, f"docs/extending.md names missing files: {missing}"
