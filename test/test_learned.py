"""SuperPoint frontend (frontends/superpoint) and SuperGlue matcher (matchers/superglue)."""

from __future__ import annotations

import numpy as np
import pytest

from superglue_ros.models.weights import ENV_VAR, WeightsNotFoundError
from superglue_ros.pipeline import PIPELINE_SPECS, Pipeline, build_frontend, build_matcher
from superglue_ros.pipeline.devices import resolve_device
from superglue_ros.pipeline.types import Features

from model_weights import SMALL_PIPELINE_PARAMS, write_test_checkpoints
from numerics import EPS32, assert_pair_matches_float64


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory, fixtures_dir):
    return write_test_checkpoints(tmp_path_factory.mktemp("weights"), fixtures_dir)


@pytest.fixture(scope="module")
def frontend(weights_dir):
    return build_frontend({**SMALL_PIPELINE_PARAMS, "weights_dir": str(weights_dir)})


@pytest.fixture(scope="module")
def matcher(weights_dir):
    return build_matcher({**SMALL_PIPELINE_PARAMS, "weights_dir": str(weights_dir)})


def empty_features(size=(200, 260)) -> Features:
    return Features(
        keypoints=np.zeros((0, 2), np.float32),
        scores=np.zeros(0, np.float32),
        descriptors=np.zeros((0, 256), np.float32),
        image_size=size,
    )


def test_frontend_extracts_features(frontend, parity_images) -> None:
    features = frontend.extract(parity_images[0])
    assert 0 < len(features) <= 128
    assert features.keypoints.dtype == np.float32 and features.keypoints.shape[1] == 2
    assert features.descriptors.shape == (len(features), 256)
    assert features.descriptors.dtype == np.float32
    # Normalised in float32: off 1 by at most ~D eps32 (3e-5 for D = 256) in the worst
    # rounding of the sum of squares; an unnormalised descriptor is off by O(1).
    norms = np.linalg.norm(features.descriptors, axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=features.descriptors.shape[1] * EPS32)
    assert features.image_size == (200, 260)
    assert "superpoint" in frontend.description
    with pytest.raises(ValueError, match="uint8"):
        frontend.extract(parity_images[0].astype(np.float32))


def test_matcher_batch_equals_pair_by_pair(frontend, matcher, parity_images) -> None:
    frame = frontend.extract(parity_images[0])
    keyframes = [
        frontend.extract(parity_images[1]),
        empty_features(),
        # Fewer points than the others: padded in the batch.
        Features(frame.keypoints[:50], frame.scores[:50], frame.descriptors[:50], frame.image_size),
        frame,
    ]
    together = matcher.match(frame, keyframes)
    assert len(together) == len(keyframes)
    for keyframe, pair in zip(keyframes, together, strict=True):
        [alone] = matcher.match(frame, [keyframe])
        # Batched and alone are two float32 evaluations (other GEMM shapes): each against
        # the pair in float64, within the float32 reference's own error (numerics.py).
        assert_pair_matches_float64(matcher.model, frame, keyframe, [pair, alone])
        assert pair.matches0.dtype == np.int64 and pair.scores0.dtype == np.float32
        assert pair.matches0.shape == (len(frame),)
        assert pair.matches0.max() < len(keyframe)
        assert np.all(pair.scores0[pair.matches0 < 0] == 0)
    assert np.all(together[1].matches0 == -1)  # the keyframe without keypoints
    assert (together[3].matches0 >= 0).sum() > 0  # the frame against itself
    assert (together[2].matches0 >= 0).sum() > 0  # the padded keyframe matches too


def test_empty_cases(frontend, matcher, parity_images) -> None:
    frame = frontend.extract(parity_images[0])
    assert matcher.match(frame, []) == []
    empty = empty_features()
    out = matcher.match(empty, [frame, empty])
    assert [p.matches0.shape for p in out] == [(0,), (0,)]
    assert all(np.all(p.matches0 == -1) for p in matcher.match(frame, [empty, empty]))


def test_update_match_threshold(frontend, matcher, parity_images) -> None:
    frame = frontend.extract(parity_images[0])
    before = (matcher.match(frame, [frame])[0].matches0 >= 0).sum()
    try:
        matcher.update_params({"superglue.match_threshold": 1.0, "keyframes.min_matches": 5})
        assert (matcher.match(frame, [frame])[0].matches0 >= 0).sum() == 0
        with pytest.raises(ValueError, match="match_threshold"):
            matcher.update_params({"superglue.match_threshold": 2.0})
    finally:
        matcher.update_params({"superglue.match_threshold": 0.2})
    assert (matcher.match(frame, [frame])[0].matches0 >= 0).sum() == before


def test_keyframe_tensors_are_cached(frontend, matcher, parity_images) -> None:
    keyframe = frontend.extract(parity_images[1])
    first = matcher._tensors(keyframe)
    assert matcher._tensors(keyframe) is first
    copy = Features(keyframe.keypoints, keyframe.scores, keyframe.descriptors, keyframe.image_size)
    assert matcher._tensors(copy) is not first
    # The cache holds the buffer's keyframes and as many frames, sized from the config.
    assert matcher.cache_size == 2 * PIPELINE_SPECS["keyframes.buffer_size"].default
    for _ in range(matcher.cache_size + 3):
        matcher._tensors(Features(copy.keypoints, copy.scores, copy.descriptors, copy.image_size))
    assert len(matcher._cache) == matcher.cache_size


def test_wrong_descriptors_are_a_value_error(matcher) -> None:
    orb_like = Features(
        np.zeros((3, 2), np.float32), np.ones(3, np.float32), np.zeros((3, 32), np.uint8), (10, 10)
    )
    with pytest.raises(ValueError, match="float descriptors"):
        matcher.match(orb_like, [orb_like])


def test_pipeline_runs_superpoint_superglue(weights_dir, parity_images) -> None:
    pipeline = Pipeline.from_params({**SMALL_PIPELINE_PARAMS, "weights_dir": str(weights_dir)})
    assert "superglue(indoor)" in pipeline.description
    first = pipeline.process(parity_images[0], 0)
    second = pipeline.process(parity_images[0], 10**8)
    assert first.is_keyframe and len(second.matches) == 1
    assert len(second.matches[0].frame_indices) > 0  # the same image matches itself
    pipeline.update_params({"superglue.match_threshold": 1.0})
    assert pipeline.params["superglue.match_threshold"] == 1.0
    third = pipeline.process(parity_images[0], 2 * 10**8)
    assert third.matches and all(len(m.frame_indices) == 0 for m in third.matches)


def test_missing_weights_raise_weights_not_found(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(WeightsNotFoundError, match="superpoint_v1.pth"):
        build_frontend({**SMALL_PIPELINE_PARAMS, "weights_dir": str(tmp_path / "nothing")})
    with pytest.raises(WeightsNotFoundError, match="superglue_outdoor.pth"):
        build_matcher({**SMALL_PIPELINE_PARAMS, "superglue.weights": "outdoor"})


def test_device_names(monkeypatch) -> None:
    import torch

    assert resolve_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"  # auto prefers CUDA when there is one
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
