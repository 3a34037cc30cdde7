"""SIGINT and SIGTERM as a stop request that a second signal cannot turn into a crash.

``ros2 launch`` forwards SIGINT to its processes and a Ctrl-C in the terminal
reaches them too, so a node under launch often gets two signals. With rclpy's
own handlers the second one raises KeyboardInterrupt wherever the shutdown is
(joining the worker, destroying the node) and the process dies with a
traceback. Here every signal only sets a flag: the first asks the process to
stop, later ones are counted and change nothing. Use with
``rclpy.init(signal_handler_options=SignalHandlerOptions.NO)`` and a spin loop
that checks the flag.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Set by the first SIGINT/SIGTERM after install(); later signals are only counted."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signals: list[str] = []  # names of the signals received, in order

    def install(self) -> StopRequest:
        """Handle SIGINT and SIGTERM in this process (call from the main thread)."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)
        return self

    def ignore_from_now(self) -> None:
        """Ignore further signals for good: at interpreter exit Python puts its default
        handlers back, and a late SIGINT would then kill the exiting process (status -2)."""
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signal.Signals(signum).name)
        self._event.set()

    def set(self) -> None:
        """Ask to stop without a signal."""
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    def reason(self) -> str:
        """What asked the process to stop, for the log."""
        if not self.signals:
            return "requested"
        extra = len(self.signals) - 1
        return self.signals[0] + (f" (+{extra} more signal(s) ignored)" if extra else "")
