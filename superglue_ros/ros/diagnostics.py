"""The node's counters and the /diagnostics status built from them (no rclpy needed).

The worker and the callbacks update :class:`Stats` under its lock; the timer
takes a :meth:`Stats.snapshot` and :func:`build_status` turns it into the level,
message and key/values of one diagnostic_msgs/DiagnosticStatus.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

STATS_WINDOW_S = 5.0  # rates and latencies in /diagnostics cover this many seconds

# diagnostic_msgs/DiagnosticStatus levels (the message constants, without importing it)
OK, WARN, ERROR = 0, 1, 2


@dataclass(frozen=True)
class Snapshot:
    """Stats at one moment: totals since start and the recent window."""

    received: int
    processed: int
    dropped: int
    keyframes: int
    keyframes_buffered: int
    processing_errors: int
    time_jumps: int
    bad_inputs: dict[str, int]
    rate_hz: float
    latencies_ms: list[float]
    stage_ms: dict[str, list[float]]


@dataclass
class Stats:
    """Counters for /diagnostics; every method is thread-safe."""

    received: int = 0
    processed: int = 0
    dropped: int = 0
    keyframes: int = 0
    keyframes_buffered: int = 0
    processing_errors: int = 0
    time_jumps: int = 0
    bad_inputs: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # (monotonic time done, latency ms, stage timings ms) of recently processed frames
    recent: deque[tuple[float, float, dict[str, float]]] = field(default_factory=deque)
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def frame_received(self, dropped: bool) -> None:
        with self.lock:
            self.received += 1
            self.dropped += int(dropped)

    def bad_input(self, kind: str) -> None:
        with self.lock:
            self.bad_inputs[kind] += 1

    def processing_error(self) -> None:
        with self.lock:
            self.processing_errors += 1

    def time_jump(self) -> None:
        with self.lock:
            self.time_jumps += 1

    def frame_processed(
        self, is_keyframe: bool, keyframes_buffered: int, latency_ms: float, timings_ms: dict
    ) -> None:
        done = time.monotonic()
        with self.lock:
            self.processed += 1
            self.keyframes += int(is_keyframe)
            self.keyframes_buffered = keyframes_buffered
            self.recent.append((done, latency_ms, dict(timings_ms)))
            self._trim(done)

    def _trim(self, now: float) -> None:
        while self.recent and self.recent[0][0] < now - STATS_WINDOW_S:
            self.recent.popleft()

    def snapshot(self, now: float | None = None) -> Snapshot:
        """The counters now, with the rate and latencies of the last STATS_WINDOW_S."""
        now = time.monotonic() if now is None else now
        with self.lock:
            self._trim(now)
            window = min(STATS_WINDOW_S, max(now - self.started, 1e-3))
            stages: dict[str, list[float]] = defaultdict(list)
            for _, _, timings in self.recent:
                for stage, ms in timings.items():
                    stages[stage].append(ms)
            return Snapshot(
                received=self.received,
                processed=self.processed,
                dropped=self.dropped,
                keyframes=self.keyframes,
                keyframes_buffered=self.keyframes_buffered,
                processing_errors=self.processing_errors,
                time_jumps=self.time_jumps,
                bad_inputs=dict(self.bad_inputs),
                rate_hz=len(self.recent) / window,
                latencies_ms=[latency for _, latency, _ in self.recent],
                stage_ms=dict(stages),
            )


def build_status(
    snapshot: Snapshot, backend: str, camera_info: bool, qos_warnings: Sequence[str] = ()
) -> tuple[int, str, dict[str, str]]:
    """(level, message, key/values) of the matching status.

    ERROR once any frame failed to process, WARN while a QoS warning stands and no
    frame was processed, for skipped bad images or when most frames are dropped,
    else OK with the processing rate. qos_warnings: what qos_watch said, in order.
    """
    latencies = snapshot.latencies_ms
    bad = sum(snapshot.bad_inputs.values())
    values = {
        "backend": backend,
        "frames_received": snapshot.received,
        "frames_processed": snapshot.processed,
        "frames_dropped": snapshot.dropped,
        "processing_errors": snapshot.processing_errors,
        "time_jumps": snapshot.time_jumps,
        "bad_inputs": bad,
        **{f"bad_input.{k}": v for k, v in sorted(snapshot.bad_inputs.items())},
        "keyframes_created": snapshot.keyframes,
        "keyframes_buffered": snapshot.keyframes_buffered,
        "processing_rate_hz": f"{snapshot.rate_hz:.2f}",
        "latency_ms.mean": f"{np.mean(latencies):.1f}" if latencies else "nan",
        "latency_ms.max": f"{np.max(latencies):.1f}" if latencies else "nan",
        **{f"stage_ms.{k}": f"{np.mean(v):.1f}" for k, v in sorted(snapshot.stage_ms.items())},
        "camera_info": "received" if camera_info else "missing",
    }
    if qos_warnings:
        values["qos_warning"] = " | ".join(qos_warnings)
    level, message = OK, f"{snapshot.rate_hz:.1f} frames/s"
    if snapshot.processing_errors:
        level, message = ERROR, "processing errors"
    elif qos_warnings and not snapshot.processed:
        level, message = WARN, "no frames: check the image QoS"
    elif bad:
        level, message = WARN, f"{bad} bad images skipped"
    elif snapshot.received and snapshot.dropped > snapshot.processed:
        level, message = WARN, "dropping most frames"
    return level, message, {k: str(v) for k, v in values.items()}
