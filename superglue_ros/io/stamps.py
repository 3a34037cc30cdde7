"""builtin_interfaces/Time <-> integer nanoseconds, written once for every shell."""

from __future__ import annotations

from typing import Any

NSEC_PER_SEC = 1_000_000_000


def stamp_to_ns(stamp: Any) -> int:
    """A builtin_interfaces/Time (anything with ``sec`` and ``nanosec``) -> nanoseconds."""
    return int(stamp.sec) * NSEC_PER_SEC + int(stamp.nanosec)


def stamp_fields(stamp_ns: int) -> dict[str, int]:
    """Nanoseconds -> builtin_interfaces/Time fields ``{"sec", "nanosec"}``."""
    sec, nanosec = divmod(int(stamp_ns), NSEC_PER_SEC)
    return {"sec": sec, "nanosec": nanosec}


def header_fields(stamp_ns: int, frame_id: str) -> dict[str, Any]:
    """std_msgs/Header fields of a stamp in nanoseconds."""
    return {"stamp": stamp_fields(stamp_ns), "frame_id": frame_id}
