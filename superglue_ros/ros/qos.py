"""QoS profiles of the node's topics."""

from __future__ import annotations

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

RELIABILITY = {
    "best_effort": ReliabilityPolicy.BEST_EFFORT,
    "reliable": ReliabilityPolicy.RELIABLE,
}


def image_qos(reliability: str = "best_effort", depth: int = 1) -> QoSProfile:
    """Camera input: the sensor-data profile (best effort, keep last, small depth) by default.

    A best-effort subscription also receives from reliable publishers; ``reliable``
    is for links where every frame must arrive (replay in lock-step).
    """
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=RELIABILITY[reliability],
        durability=DurabilityPolicy.VOLATILE,
    )


def output_qos(depth: int = 10) -> QoSProfile:
    """Per-frame outputs: reliable (matches reliable and best-effort subscribers), volatile."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


def keyframes_qos(depth: int = 10) -> QoSProfile:
    """Keyframes: reliable and transient local, so a late back-end still gets the recent ones."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )
