"""Median wall-clock times for the benchmarks (``bench``, ``bench-lightglue``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def _no_sync() -> None:
    pass


def median_ms(
    fn: Callable[[], Any], repeats: int, warmup: int = 1, sync: Callable[[], None] = _no_sync
) -> float:
    """Median ms of fn over repeats calls, after warmup calls; sync waits for the device."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def paired_median_ms(
    ours: Callable[[], Any],
    baseline: Callable[[], Any],
    repeats: int,
    warmup: int = 1,
    sync: Callable[[], None] = _no_sync,
) -> tuple[float, float]:
    """Median ms of ours and of baseline, run alternately (baseline first on even repeats),
    so that machine load hits both alike."""
    for _ in range(warmup):
        baseline()
        ours()
    sync()
    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    order = (("baseline", baseline), ("ours", ours))
    for i in range(repeats):
        for name, fn in order if i % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            fn()
            sync()
            times[name].append(1e3 * (time.perf_counter() - start))
    return statistics.median(times["ours"]), statistics.median(times["baseline"])
