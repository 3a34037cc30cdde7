"""The ROS-agnostic synchroniser: exact and approximate policies, jitter, drops, reordering."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from superglue_ros.pipeline.synchroniser import Synchroniser

MS = 1_000_000


def run(sync: Synchroniser, events: list[tuple[int, int]]) -> list[tuple[int, ...]]:
    """Push (topic, stamp) events (the item is the stamp); the stamps of every emitted set."""
    out = []
    for topic, stamp in events:
        out += [s.stamps_ns for s in sync.push(topic, stamp, (topic, stamp))]
    return out


def test_exact_pairs_identical_stamps_in_any_arrival_order() -> None:
    sync = Synchroniser(2, "exact", queue_size=5)
    events = [(0, 1), (0, 2), (1, 2), (1, 1), (1, 3), (0, 4), (0, 3)]
    assert run(sync, events) == [(2, 2), (1, 1), (3, 3)]
    assert sync.queued == [1, 0]  # stamp 4 still waits for its right image
    assert sync.flush() == 1
    assert sync.unpaired == [1, 0]


def test_exact_queue_overflow_drops_the_oldest_stamp_and_counts_it() -> None:
    sync = Synchroniser(2, "exact", queue_size=2)
    assert run(sync, [(0, 1), (0, 2), (0, 3), (1, 1)]) == []  # stamp 1 was pushed out
    assert sync.unpaired == [1, 0]
    assert run(sync, [(1, 3)]) == [(3, 3)]


def test_approximate_pairs_within_slop_nearest_first() -> None:
    sync = Synchroniser(2, "approximate", queue_size=10, slop_ns=10 * MS)
    # Left at 0, 33, 66 ms; right a few ms late; one right lost (the 33 ms one).
    events = [(0, 0), (1, 3 * MS), (0, 33 * MS), (0, 66 * MS), (1, 64 * MS)]
    assert run(sync, events) == [(0, 3 * MS), (66 * MS, 64 * MS)]
    assert sync.flush() == 1  # the lonely left at 33 ms
    assert sync.unpaired == [1, 0]


def test_approximate_slop_is_strict_and_a_pair_needs_a_candidate_on_every_topic() -> None:
    sync = Synchroniser(2, "approximate", slop_ns=10)
    assert run(sync, [(0, 0), (1, 10)]) == []  # a span equal to the slop is not < slop
    assert run(sync, [(1, 9)]) == [(0, 9)]
    assert run(sync, [(0, 100)]) == []  # the right at 10 is 90 away: no candidate


def test_approximate_three_topics_takes_the_first_combination_under_the_slop() -> None:
    sync = Synchroniser(3, "approximate", slop_ns=10)
    # Pivot 20 on topic 2; topic 0 candidates nearest first 15 then 29; topic 1: 27, 12.
    events = [(0, 15), (0, 29), (1, 12), (1, 27)]
    assert run(sync, events) == []
    # (15, 27, 20) spans 12: refused; (15, 12, 20) spans 8: taken.
    assert run(sync, [(2, 20)]) == [(15, 12, 20)]


def test_bad_arguments_are_refused_with_a_message() -> None:
    with pytest.raises(ValueError, match="policy"):
        Synchroniser(2, "nearest")
    with pytest.raises(ValueError, match="at least 2 topics"):
        Synchroniser(1)
    with pytest.raises(ValueError, match="slop of 0 pairs nothing"):
        Synchroniser(2, "approximate", slop_ns=0)
    assert Synchroniser(2, "exact", slop_ns=0).policy == "exact"  # exact needs no slop
    with pytest.raises(ValueError, match="out of range"):
        Synchroniser(2).push(2, 0, None)


# --------------------------------------------------------------------------- parity
def reference_approximate(
    num_topics: int, queue_size: int, slop: int, events: list[tuple[int, int]]
) -> tuple[list[tuple[int, ...]], list[int]]:
    """ApproximateTimeSynchronizer's rule written out by brute force, as a reference.

    For each arrival: every combination of queued stamps (one per other topic) that
    lies within the slop of the pivot and spans less than the slop is admissible;
    the chosen one has the smallest ranks, compared topic by topic, where a stamp's
    rank is its place among that topic's candidates sorted by distance to the pivot
    (ties by queue order). Queues are lists of (stamp, arrival) kept by stamp.
    """
    queues: list[list[int]] = [[] for _ in range(num_topics)]  # stamps in queue order
    unpaired = [0] * num_topics
    emitted = []
    for topic, stamp in events:
        queue = queues[topic]
        if stamp in queue:
            unpaired[topic] += 1  # the newer message takes the old one's place
        else:
            queue.append(stamp)
        while len(queue) > queue_size:
            queue.remove(min(queue))
            unpaired[topic] += 1
        if stamp not in queue:
            continue
        ranked = []
        for other, q in enumerate(queues):
            if other == topic:
                ranked.append({stamp: 0})
                continue
            order = sorted(range(len(q)), key=lambda i, q=q: (abs(q[i] - stamp), i))
            ranked.append({q[i]: rank for rank, i in enumerate(order)})
        best = None
        for combo in itertools.product(*[list(r) for r in ranked]):
            if any(abs(s - stamp) > slop for s in combo) or max(combo) - min(combo) >= slop:
                continue
            key = tuple(r[s] for r, s in zip(ranked, combo, strict=True))
            if best is None or key < best[0]:
                best = (key, combo)
        if best is not None:
            emitted.append(best[1])
            for q, s in zip(queues, best[1], strict=True):
                q.remove(s)
    return emitted, unpaired


def camera_events(
    rng: np.random.Generator, num_topics: int, frames: int, jitter: int, drop: float, swap: float
) -> list[tuple[int, int]]:
    """Streams at 30 Hz (ms stamps) with per-topic stamp jitter, losses and late arrivals."""
    events = []
    for frame in range(frames):
        for topic in range(num_topics):
            if rng.random() < drop:
                continue
            events.append((topic, 33 * frame + int(rng.integers(-jitter, jitter + 1))))
    rng.shuffle(events[: len(events) // 10])  # a burst of reordering at the start
    for i in range(len(events) - 1):  # and neighbours swapped here and there
        if rng.random() < swap:
            events[i], events[i + 1] = events[i + 1], events[i]
    return events


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("num_topics", [2, 3])
def test_approximate_matches_the_reference_rule_under_jitter_drops_and_reordering(
    seed: int, num_topics: int
) -> None:
    rng = np.random.default_rng(seed)
    events = camera_events(rng, num_topics, frames=60, jitter=6, drop=0.1, swap=0.2)
    queue_size, slop = int(rng.integers(2, 8)), int(rng.integers(6, 25))
    sync = Synchroniser(num_topics, "approximate", queue_size=queue_size, slop_ns=slop)
    expected, unpaired = reference_approximate(num_topics, queue_size, slop, events)
    assert run(sync, events) == expected
    assert sync.unpaired == unpaired
    assert len(expected) > 10  # the streams did pair, so the comparison means something


def test_approximate_with_small_jitter_pairs_every_frame_that_has_both_images() -> None:
    rng = np.random.default_rng(7)
    events = camera_events(rng, 2, frames=100, jitter=3, drop=0.05, swap=0.3)
    sync = Synchroniser(2, "approximate", queue_size=5, slop_ns=10)
    pairs = run(sync, events)
    stamps = [set(), set()]
    for topic, stamp in events:
        stamps[topic].add(round(stamp / 33))
    assert sorted(round(p[0] / 33) for p in pairs) == sorted(stamps[0] & stamps[1])
    assert all(abs(left - right) <= 6 for left, right in pairs)
    sync.flush()
    assert sum(sync.unpaired) == len(events) - 2 * len(pairs)
