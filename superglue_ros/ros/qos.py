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


def keep_last(
    depth: int, reliability: ReliabilityPolicy, durability: DurabilityPolicy
) -> QoSProfile:
    """A keep-last profile: every topic of the node is one, differing in these three."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=reliability, durability=durability
    )


def image_qos(reliability: str = "best_effort", depth: int = 1) -> QoSProfile:
    """Camera input: the sensor-data profile (best effort, keep last, small depth) by default.

    A best-effort subscription also receives from reliable publishers; ``reliable``
    is for links where every frame must arrive (replay in lock-step).
    """
    return keep_last(depth, RELIABILITY[reliability], DurabilityPolicy.VOLATILE)


def output_qos(depth: int = 10) -> QoSProfile:
    """Per-frame outputs: reliable (matches reliable and best-effort subscribers), volatile."""
    return keep_last(depth, ReliabilityPolicy.RELIABLE, DurabilityPolicy.VOLATILE)


def keyframes_qos(depth: int = 10) -> QoSProfile:
    """Keyframes: reliable and transient local, so a late back-end still gets the recent ones."""
    return keep_last(depth, ReliabilityPolicy.RELIABLE, DurabilityPolicy.TRANSIENT_LOCAL)
