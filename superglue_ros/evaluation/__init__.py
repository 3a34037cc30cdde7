"""Real-sequence benchmark: configurations x sequences x seeds, one table.

Each run is ``superglue-ros replay --odometry --groundtruth --seed`` in a fresh
child process (so its peak RSS is its own); :mod:`.benchmark` runs them and
collects their report.json, :mod:`.table` aggregates them (mean and standard
deviation over seeds) and writes ``benchmark.md`` and ``benchmark.json``.
ROS-free and CLI-free: ``superglue_ros/tools/benchmark.py`` is the command.
"""

from .benchmark import Config, RunResult, Sequence, run_benchmark, run_one
from .table import summarise, write_table

__all__ = [
    "Config",
    "RunResult",
    "Sequence",
    "run_benchmark",
    "run_one",
    "summarise",
    "write_table",
]
