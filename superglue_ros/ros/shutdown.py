"""SIGINT and SIGTERM as a stop request that a second signal cannot turn into a crash.

``ros2 launch`` forwards SIGINT to its processes and a Ctrl-C in the terminal
reaches them too, so a node under launch often gets two signals. With rclpy's
own handlers the second one raises KeyboardInterrupt wherever the shutdown is
(joining the worker, destroying the node) and the process dies with a
traceback. Here every signal only sets a flag: the first asks the process to
stop, later ones are counted and change nothing.

Both nodes run the same way: ``stop = init(args)`` before anything slow (it
installs the handlers and starts rclpy without its own), then
``spin_then_destroy(node, stop, close)``. Other programs use StopRequest with
``rclpy.init(signal_handler_options=SignalHandlerOptions.NO)`` and a spin loop
that checks the flag.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SPIN_PERIOD_S = 0.1  # how often the spin loop looks at the stop request


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


def init(args: list[str] | None = None) -> StopRequest:
    """Install the stop handlers, then rclpy.init without rclpy's signal handlers."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    stop = StopRequest().install()  # first: a signal during start-up must not raise either
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    return stop


def spin_then_destroy(
    node: Any, stop: StopRequest, close: Callable[[], None] | None = None
) -> None:
    """Spin node until stop is set (or rclpy is shut down from elsewhere), then log
    "shutting down (<reason>)" on the node's logger, run close, destroy the node and
    shut rclpy down; later signals are ignored from then on."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop.is_set():
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)
    except ExternalShutdownException:
        stop.set()
    finally:
        node.get_logger().info(f"shutting down ({stop.reason()})")
        try:
            if close is not None:
                close()
            executor.shutdown(timeout_sec=1.0)
            node.destroy_node()
            rclpy.try_shutdown()
        finally:
            stop.ignore_from_now()
