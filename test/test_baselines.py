"""ORB / SIFT frontends and the mutual nearest neighbour matcher."""

from __future__ import annotations

import numpy as np
import pytest

from superglue_ros.pipeline import (
    Features,
    MutualNearestNeighbourMatcher,
    OrbFrontend,
    SiftFrontend,
)
from superglue_ros.pipeline.baselines import hamming_distances, l2_distances

from synthetic import sequence, textured_image, translation


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return textured_image(240, 320, seed=1)


def random_features(count: int, rng: np.random.Generator, binary: bool) -> Features:
    if binary:
        descriptors = rng.integers(0, 256, size=(count, 32), dtype=np.uint8)
    else:
        descriptors = rng.normal(size=(count, 16)).astype(np.float32)
    return Features(
        keypoints=rng.random((count, 2)).astype(np.float32) * 100,
        scores=np.ones(count, np.float32),
        descriptors=descriptors,
        image_size=(100, 100),
    )


@pytest.mark.parametrize(
    ("frontend", "dtype", "dim"), [(OrbFrontend, np.uint8, 32), (SiftFrontend, np.float32, 128)]
)
def test_frontend_output_shapes(image, frontend, dtype, dim):
    features = frontend(max_keypoints=200).extract(image)
    assert 50 < len(features) <= 200
    assert features.keypoints.shape == (len(features), 2)
    assert features.keypoints.dtype == np.float32
    assert features.scores.shape == (len(features),) and features.scores.dtype == np.float32
    assert (features.scores > 0).all()
    assert features.descriptors.shape == (len(features), dim)
    assert features.descriptors.dtype == dtype
    assert features.image_size == (240, 320)


@pytest.mark.parametrize(
    ("frontend", "dtype", "dim"), [(OrbFrontend, np.uint8, 32), (SiftFrontend, np.float32, 128)]
)
def test_frontend_blank_image_gives_empty_features(frontend, dtype, dim):
    features = frontend().extract(np.full((120, 160), 128, np.uint8))
    assert len(features) == 0
    assert features.keypoints.shape == (0, 2)
    assert features.descriptors.shape == (0, dim) and features.descriptors.dtype == dtype


def test_distances_match_brute_force():
    rng = np.random.default_rng(0)
    a, b = random_features(5, rng, True), random_features(7, rng, True)
    expected = [[np.unpackbits(x ^ y).sum() for y in b.descriptors] for x in a.descriptors]
    np.testing.assert_array_equal(hamming_distances(a.descriptors, b.descriptors), expected)
    a, b = random_features(5, rng, False), random_features(7, rng, False)
    expected = np.linalg.norm(a.descriptors[:, None] - b.descriptors[None], axis=2)
    # float32 |a|^2 + |b|^2 - 2ab over D = 16 N(0, 1) entries: the squared distance errs by
    # ~2 D eps32 (|a|^2 + |b|^2) ~ 1e-4, the distance (~5) by ~1e-5: 1e-4 bounds it.
    np.testing.assert_allclose(l2_distances(a.descriptors, b.descriptors), expected, atol=1e-4)


@pytest.mark.parametrize("binary", [True, False])
def test_mnn_finds_shuffled_copies(binary):
    rng = np.random.default_rng(1)
    frame = random_features(50, rng, binary)
    permutation = rng.permutation(50)
    keyframe = Features(
        frame.keypoints[permutation], frame.scores, frame.descriptors[permutation], (100, 100)
    )
    (pair,) = MutualNearestNeighbourMatcher().match(frame, [keyframe])
    assert pair.matches0.dtype == np.int64
    np.testing.assert_array_equal(permutation[pair.matches0], np.arange(50))
    # Identical descriptors: exact for bits, a float32 cosine over D = 16 off by ~D eps32.
    np.testing.assert_allclose(pair.scores0, 1.0, atol=1e-5)


def test_mnn_matches_are_mutual_and_scores_zero_where_unmatched():
    rng = np.random.default_rng(2)
    frame, keyframe = random_features(80, rng, True), random_features(60, rng, True)
    (pair,) = MutualNearestNeighbourMatcher().match(frame, [keyframe])
    distances = hamming_distances(frame.descriptors, keyframe.descriptors)
    for i, j in enumerate(pair.matches0):
        if j >= 0:
            assert distances[i].argmin() == j and distances[:, j].argmin() == i
    matched = pair.matches0 >= 0
    assert (pair.scores0[~matched] == 0).all()
    assert ((pair.scores0[matched] > 0) & (pair.scores0[matched] <= 1)).all()
    assert len(np.unique(pair.matches0[matched])) == matched.sum()


def test_ratio_test_keeps_only_distinctive_matches():
    rng = np.random.default_rng(3)
    frame, keyframe = random_features(100, rng, False), random_features(100, rng, False)
    matcher = MutualNearestNeighbourMatcher()
    plain = matcher.match(frame, [keyframe])[0].matches0
    matcher.update_params({"mnn.ratio_test": 0.8, "keyframes.min_matches": 3})
    assert matcher.ratio_test == 0.8
    with pytest.raises(ValueError, match="mnn.ratio_test"):  # checked like every matcher
        matcher.update_params({"mnn.ratio_test": 1.5})
    assert matcher.ratio_test == 0.8
    strict = matcher.match(frame, [keyframe])[0].matches0
    assert 0 < (strict >= 0).sum() < (plain >= 0).sum()
    distances = np.sort(l2_distances(frame.descriptors, keyframe.descriptors), axis=1)
    kept = strict >= 0
    assert (distances[kept, 0] < 0.8 * distances[kept, 1]).all()


def test_mnn_several_keyframes_equal_pairwise():
    frames = sequence([translation(0, 0), translation(4, 2), translation(-6, 3)])
    orb = OrbFrontend(300)
    frame, *keyframes = [orb.extract(image) for image in frames.images]
    matcher = MutualNearestNeighbourMatcher()
    batched = matcher.match(frame, keyframes)
    for keyframe, pair in zip(keyframes, batched, strict=True):
        (single,) = matcher.match(frame, [keyframe])
        np.testing.assert_array_equal(pair.matches0, single.matches0)
        assert (pair.matches0 >= 0).sum() > 100


def test_mnn_handles_empty_sides():
    rng = np.random.default_rng(4)
    some, none = random_features(10, rng, True), random_features(0, rng, True)
    matcher = MutualNearestNeighbourMatcher(ratio_test=0.8)
    pairs = matcher.match(some, [none, some])
    assert pairs[0].matches0.tolist() == [-1] * 10
    assert (pairs[1].matches0 >= 0).all()
    (pair,) = matcher.match(none, [some])
    assert pair.matches0.shape == (0,) and pair.scores0.shape == (0,)
    assert matcher.match(some, []) == []


def test_mnn_rejects_mixed_descriptors():
    rng = np.random.default_rng(5)
    with pytest.raises(ValueError, match="different kinds"):
        MutualNearestNeighbourMatcher().match(
            random_features(5, rng, True), [random_features(5, rng, False)]
        )
