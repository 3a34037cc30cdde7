"""Tolerances from float32 rounding, for tests that compare two computations of a matcher.

Two float32 evaluations of one function (batched or pair by pair, our model or the
reference, 1 or 3 torch threads, AVX2 or AVX-512) differ only by rounding: reductions
split across threads or SIMD lanes sum in another order. Neither is the exact
result, so a fixed tolerance taken from one machine's run is no bound. Instead each
float32 result is compared with the same computation in float64 (its rounding is
2^-29 of float32's, nothing at these sizes), within

    tolerance = ERROR_FACTOR * max(measured, floor)

where `measured` is the largest |float32 - float64| of the float32 reference on this
very input, machine and thread count (its forward error: how much this input
amplifies rounding through the GNN and Sinkhorn), and `floor` is what rounding must
cost at least: the log assignment is scores + u + v, sums of terms as large as the
largest |log assignment| K (about 900 for the random test weights), each addition
rounding by up to half an ulp, so about 2 * eps32 * K whatever the order.
ERROR_FACTOR = 2: ours is another float32 evaluation of the same function (fused
weights, other GEMM shapes), whose forward error is of the same size as the
reference's but not equal to it; twice covers that. A real defect (Sinkhorn cut to
one iteration, padding that leaks into attention or the marginals) moves the log
assignment by 1e-2 and more, far above these bounds (1e-4 to 1e-3).

Matches are decisions (argmax of a row and of a column, a threshold) and flip on near
ties: if two float32 results are each within the tolerance t of float64, a comparison
of two entries can only flip where their float64 values are less than 2 t apart, and
the threshold test only where the entry is within t of it. Rows with a larger margin
must match exactly, and so must rows whose best entry is below the threshold by more
than t (they match nothing); the others are left out, and a test asserts they are few.
"""

from __future__ import annotations

import numpy as np
import torch

EPS32 = float(np.finfo(np.float32).eps)
ERROR_FACTOR = 2.0


def float32_tolerance(approx: torch.Tensor, exact: torch.Tensor) -> float:
    """ERROR_FACTOR * max(measured float32 error of approx, rounding floor), see above.

    approx: a float32 log assignment; exact: the same in float64; -inf at the same places.
    """
    approx, exact = approx.double(), exact.double()
    # float32 underflows to -inf where float64 is merely very negative (exp of it is 0 in
    # both); only entries finite in both carry a rounding error to measure
    finite = torch.isfinite(exact) & torch.isfinite(approx)
    if not bool(finite.any()):
        return 0.0
    measured = float((approx[finite] - exact[finite]).abs().max())
    floor = 2 * EPS32 * float(exact[finite].abs().max())
    return ERROR_FACTOR * max(measured, floor)


def assert_close_to_exact(got: torch.Tensor, exact: torch.Tensor, tolerance: float) -> None:
    """got (float32) within tolerance of exact (float64) where finite, -inf where exact is."""
    got, exact = got.double(), exact.double()
    finite = torch.isfinite(exact)
    assert torch.equal(finite, torch.isfinite(got)), "-inf at other places than the exact result"
    worst = float((got[finite] - exact[finite]).abs().max()) if bool(finite.any()) else 0.0
    assert worst <= tolerance, f"differs from float64 by {worst:.3g} > {tolerance:.3g}"


def decided_rows(log_assignment: np.ndarray, threshold: float, tolerance: float) -> np.ndarray:
    """[N] bool: rows whose match (mutual argmax above threshold) no rounding within
    tolerance can change, from the exact log assignment [N+1, M+1] (dustbins last)."""
    core = np.asarray(log_assignment, dtype=np.float64)[:-1, :-1]
    n, m = core.shape
    if n == 0 or m == 0:
        return np.ones(n, dtype=bool)
    best = core.argmax(axis=1)
    top = core[np.arange(n), best]
    row_gap = top - np.partition(core, -2, axis=1)[:, -2] if m > 1 else np.full(n, np.inf)
    column = core[:, best]  # [N (rows of the column), N (each row's best column)]
    rivals = np.where(np.arange(n)[:, None] == np.arange(n)[None, :], -np.inf, column)
    column_gap = np.abs(top - rivals.max(axis=0)) if n > 1 else np.full(n, np.inf)
    threshold_gap = np.abs(top - np.log(threshold))
    # A row below the threshold by more than the tolerance matches nothing, whatever
    # ties its argmax has (a one-point keyframe: every row ties in its column).
    below = top < np.log(threshold) - tolerance
    clear = (row_gap > 2 * tolerance) & (column_gap > 2 * tolerance)
    return (threshold_gap > tolerance) & (below | clear)


def assert_matches_agree(
    got: np.ndarray, exact: np.ndarray, decided: np.ndarray, min_decided: float = 0.9
) -> None:
    """matches0 got == exact on every decided row; at least min_decided of the rows decided."""
    got, exact = np.asarray(got), np.asarray(exact)
    assert got.shape == exact.shape == decided.shape
    assert decided.mean() >= min_decided if len(decided) else True, (
        f"only {decided.sum()} of {len(decided)} rows are clear of near ties"
    )
    differ = np.flatnonzero(decided & (got != exact))
    assert differ.size == 0, f"rows {differ.tolist()} match {got[differ]}, exact {exact[differ]}"


def assert_scores_close(
    matches0: np.ndarray, scores0: np.ndarray, exact: torch.Tensor, tolerance: float
) -> None:
    """A matching score is exp(log assignment): its log within tolerance of the exact one."""
    rows = np.flatnonzero(np.asarray(matches0) >= 0)
    log_exact = exact.double().numpy()[rows, np.asarray(matches0)[rows]]
    errors = np.abs(np.log(np.asarray(scores0, dtype=np.float64)[rows]) - log_exact)
    assert errors.max(initial=0.0) <= tolerance, (errors.max(initial=0.0), tolerance)


def matches_of(log_assignment: np.ndarray, threshold: float) -> np.ndarray:
    """matches0 [N] of a log assignment [N+1, M+1], as SuperGlue decides them."""
    from superglue_ros.models.superglue import extract_matches

    la = torch.from_numpy(np.asarray(log_assignment, dtype=np.float64))[None]
    valid0 = torch.ones(la.shape[:2], dtype=torch.bool)[:, :-1]
    valid1 = torch.ones(1, la.shape[2] - 1, dtype=torch.bool)
    return extract_matches(la, threshold, valid0, valid1)["matches0"][0].numpy()


def superglue_pair(frame, keyframe) -> dict:
    """SuperGlue's input (B = 1) for one unpadded pair of pipeline Features."""
    data = {}
    for i, side in enumerate((frame, keyframe)):
        data[f"keypoints{i}"] = torch.from_numpy(side.keypoints)[None]
        data[f"scores{i}"] = torch.from_numpy(side.scores)[None]
        data[f"descriptors{i}"] = torch.from_numpy(np.ascontiguousarray(side.descriptors.T))[None]
        data[f"image_size{i}"] = tuple(side.image_size)
    return data


def assert_pair_matches_float64(model, frame, keyframe, results) -> None:
    """Each PairMatches of results (frame vs keyframe in float32, however computed: batched,
    alone, another runtime) agrees with the pair in float64 computed with model's modules:
    the same matches on the rows clear of near ties, scores within the float32
    reference's own error (their logs, see above)."""
    from superglue_ros.models.reference import reference_superglue

    if len(frame) == 0 or len(keyframe) == 0:
        assert all((r.matches0 == -1).all() for r in results)
        return
    data = superglue_pair(frame, keyframe)
    exact = reference_superglue(model, data, torch.float64)["log_assignment"][0]
    tolerance = float32_tolerance(reference_superglue(model, data)["log_assignment"][0], exact)
    threshold = float(model.conf["match_threshold"])
    expected = matches_of(exact.numpy(), threshold)
    decided = decided_rows(exact.numpy(), threshold, tolerance)
    for result in results:
        assert_matches_agree(result.matches0, expected, decided)
        assert_scores_close(result.matches0, result.scores0, exact, tolerance)
