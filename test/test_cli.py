"""The CLI's dispatch: one module imported per call, user errors as one line."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from superglue_ros.tools import cli


def test_help_lists_every_subcommand_without_importing_them() -> None:
    code = (
        "import sys; from superglue_ros.tools import cli; cli.build_parser(None);"
        "loaded = [m for _, (m, _) in cli.SUBCOMMANDS.items() if m in sys.modules];"
        "sys.exit(f'imported: {loaded}' if loaded else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    help_text = cli.build_parser(None).format_help()
    for name in cli.SUBCOMMANDS:
        assert name in help_text


def test_every_subcommand_module_has_the_interface() -> None:
    for name, (module_name, _) in cli.SUBCOMMANDS.items():
        cli.build_parser(name)  # its arguments register without clashing
        module = importlib.import_module(module_name)
        assert callable(module.add_arguments) and callable(module.run), name


def test_a_broken_subcommand_does_not_break_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(cli.SUBCOMMANDS, "broken", ("superglue_ros.tools.absent", "gone"))
    cli.build_parser("bag")  # does not import the broken module
    with pytest.raises(ModuleNotFoundError):
        cli.build_parser("broken")


def test_unknown_subcommand_exits_non_zero() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "superglue_ros", "frobnicate"], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert "invalid choice: 'frobnicate'" in run.stderr
