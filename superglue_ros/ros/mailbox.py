"""A one-slot mailbox between the image callback and the worker thread (no rclpy needed).

The callback only puts the newest frame here; the worker takes it. A frame
still waiting when the next arrives is replaced (dropped, and said so), so a
slow model never queues frames or blocks the executor.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Pending:
    """The newest received frame, waiting for the worker."""

    msg: Any  # sensor_msgs Image or CompressedImage
    received: float  # time.monotonic() at arrival


class FrameMailbox:
    """Holds at most one frame; put() replaces, take() waits. Thread-safe."""

    def __init__(self) -> None:
        self._slot: Pending | None = None
        self._closed = False
        self._cond = threading.Condition()

    def put(self, msg: Any) -> bool:
        """Store msg as the newest frame; True when it replaced one nobody took (a drop)."""
        with self._cond:
            dropped = self._slot is not None
            self._slot = Pending(msg, time.monotonic())
            self._cond.notify()
        return dropped

    def take(self, timeout_s: float) -> Pending | None:
        """The waiting frame (the slot is emptied), or None after timeout_s or once closed."""
        with self._cond:
            if self._slot is None and not self._closed:
                self._cond.wait(timeout=timeout_s)
            pending, self._slot = self._slot, None
        return pending

    def close(self) -> None:
        """Wake every waiting take(); later takes return at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
