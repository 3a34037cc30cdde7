"""Pairing of several time-stamped streams into sets: one place for the node and replay.

A stereo frame needs a left and a right image, an RGB-D frame a colour and a depth
image, taken at one moment. Live topics arrive in any order, with jitter and
losses; a bag holds them in recording order. Both shells push each message here
with its topic index and header stamp and get back complete sets, so a bag
replays exactly as the live node would have paired it. No ROS here: items are
whatever the shell pushes (messages, decoded images).

The two policies follow ROS message_filters' Python synchronisers:

``exact`` (TimeSynchronizer): a set is the messages of one identical stamp on
every topic; when a message completes one or more sets, they are emitted oldest
first.

``approximate`` (ApproximateTimeSynchronizer): the message that just arrived is
the pivot. From every other topic's queue the candidates are the messages within
``slop`` of the pivot, nearest first (ties: the one queued first). Combinations
of candidates are tried in that order (the first topic's nearest with the second
topic's nearest, then the second topic's next nearest, ...) and the first whose
stamps span less than ``slop`` is emitted. A pivot with no candidate on some topic
waits in its queue for a later pivot.

In both, each topic keeps at most ``queue_size`` messages by stamp: a message on
a stamp already queued replaces it, and an overfull queue loses its oldest stamp
(which may be the message just pushed). Emitted messages leave their queues;
the others stay until pushed out. Every message that leaves without being
emitted is counted in ``unpaired`` (per topic), the figure /diagnostics shows.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .params import PIPELINE_SPECS

POLICIES = ("exact", "approximate")


@dataclass
class SyncedSet:
    """One message per topic, in topic order, with their stamps (ns)."""

    items: tuple[Any, ...]
    stamps_ns: tuple[int, ...]

    @property
    def stamp_ns(self) -> int:
        """The stamp of the set: the first topic's (the image the pipeline processes)."""
        return self.stamps_ns[0]


@dataclass
class Synchroniser:
    """Pairs messages of ``num_topics`` streams; see the module docstring for the rules.

    Not thread-safe: a shell with several callback threads holds a lock around push().
    """

    num_topics: int
    # Defaults: the parameter table's sync.* values (defaults live there only).
    policy: str = str(PIPELINE_SPECS["sync.policy"].default)
    queue_size: int = int(PIPELINE_SPECS["sync.queue_size"].default)
    slop_ns: int = round(float(PIPELINE_SPECS["sync.slop_s"].default) * 1e9)
    # Per topic: stamp -> item, in the order they were queued (the tie break).
    _queues: list[dict[int, Any]] = field(init=False, repr=False)
    unpaired: list[int] = field(init=False)

    def __post_init__(self) -> None:
        if self.num_topics < 2:
            raise ValueError(f"a synchroniser needs at least 2 topics, got {self.num_topics}")
        if self.policy not in POLICIES:
            raise ValueError(
                f"sync policy must be one of {', '.join(POLICIES)}; got {self.policy!r}"
            )
        if self.queue_size < 1:
            raise ValueError(f"sync queue size must be at least 1, got {self.queue_size}")
        if self.slop_ns < 0:
            raise ValueError(f"sync slop must not be negative, got {self.slop_ns} ns")
        if self.policy == "approximate" and self.slop_ns == 0:
            # Stamps must span less than the slop: with 0 nothing would ever pair.
            raise ValueError(
                "approximate sync with a slop of 0 pairs nothing; set sync.slop_s above 0, "
                "or sync.policy exact for identical stamps"
            )
        self._queues = [{} for _ in range(self.num_topics)]
        self.unpaired = [0] * self.num_topics

    def push(self, topic: int, stamp_ns: int, item: Any) -> list[SyncedSet]:
        """Queue item (its header stamp in ns) on topic; return the sets it completed."""
        if not 0 <= topic < self.num_topics:
            raise ValueError(f"topic index {topic} out of range 0..{self.num_topics - 1}")
        stamp_ns = int(stamp_ns)
        queue = self._queues[topic]
        if stamp_ns in queue:
            self.unpaired[topic] += 1  # replaced by a message of the same stamp
        queue[stamp_ns] = item
        while len(queue) > self.queue_size:
            del queue[min(queue)]
            self.unpaired[topic] += 1
        if self.policy == "exact":
            sets = self._exact()
        else:
            found = self._approximate(topic, stamp_ns) if stamp_ns in queue else None
            sets = [] if found is None else [found]
        return sets

    def flush(self) -> int:
        """End of stream: count every queued message as unpaired; return how many there were."""
        left = 0
        for topic, queue in enumerate(self._queues):
            self.unpaired[topic] += len(queue)
            left += len(queue)
            queue.clear()
        return left

    @property
    def queued(self) -> list[int]:
        """How many messages wait on each topic."""
        return [len(queue) for queue in self._queues]

    def _take(self, stamps: Sequence[int]) -> SyncedSet:
        items = tuple(queue.pop(stamp) for queue, stamp in zip(self._queues, stamps, strict=True))
        return SyncedSet(items, tuple(stamps))

    def _exact(self) -> list[SyncedSet]:
        common = set(self._queues[0]).intersection(*self._queues[1:])
        return [self._take([stamp] * self.num_topics) for stamp in sorted(common)]

    def _approximate(self, pivot_topic: int, pivot_ns: int) -> SyncedSet | None:
        candidates: list[list[int]] = []
        for topic, queue in enumerate(self._queues):
            if topic == pivot_topic:
                candidates.append([pivot_ns])
                continue
            near = [s for s in queue if abs(s - pivot_ns) <= self.slop_ns]
            if not near:
                return None
            # sorted() is stable: equal distances keep their queue order.
            candidates.append(sorted(near, key=lambda s: abs(s - pivot_ns)))
        for stamps in itertools.product(*candidates):
            if max(stamps) - min(stamps) < self.slop_ns:
                return self._take(stamps)
        return None
