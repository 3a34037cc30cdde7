"""The code stays ruff-clean (CI runs only the test suite, so the suite checks it)."""

from __future__ import annotations

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
