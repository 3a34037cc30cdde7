"""The registry of frontends and matchers fails loudly on unknown names."""

from __future__ import annotations

import pytest

from superglue_ros.pipeline import (
    FRONTENDS,
    MATCHERS,
    PIPELINE_SPECS,
    MutualNearestNeighbourMatcher,
    OrbFrontend,
    SiftFrontend,
    build_frontend,
    build_matcher,
)


def test_registry_covers_the_parameter_choices():
    assert set(FRONTENDS) == set(PIPELINE_SPECS["frontend"].choices)
    assert set(MATCHERS) == set(PIPELINE_SPECS["matcher"].choices)


def test_unknown_frontend_lists_known_names():
    with pytest.raises(ValueError, match="unknown frontend 'akaze'.*orb, sift, superpoint"):
        build_frontend({"frontend": "akaze"})


def test_unknown_matcher_lists_known_names():
    with pytest.raises(ValueError, match="unknown matcher 'loftr'.*lightglue, mnn, superglue"):
        build_matcher({"frontend": "orb", "matcher": "loftr"})


@pytest.mark.parametrize("frontend", ["orb", "sift"])
def test_lightglue_needs_a_frontend_it_has_weights_for(frontend):
    with pytest.raises(ValueError, match="lightglue.*aliked, disk, superpoint"):
        build_matcher({"frontend": frontend, "matcher": "lightglue"})


def test_lightglue_refuses_aliked_t16_descriptors():
    with pytest.raises(ValueError, match="t16.*64-d.*128-d"):
        build_matcher({"frontend": "aliked", "matcher": "lightglue", "aliked.model": "t16"})


@pytest.mark.parametrize("frontend", ["orb", "sift"])
def test_superglue_needs_superpoint(frontend):
    with pytest.raises(ValueError, match="superglue.*superpoint"):
        build_matcher({"frontend": frontend, "matcher": "superglue"})


def test_classical_components_take_their_parameters():
    params = {"classical.max_keypoints": 123, "mnn.ratio_test": 0.7}
    orb = build_frontend({"frontend": "orb", **params})
    assert isinstance(orb, OrbFrontend) and orb.max_keypoints == 123
    assert isinstance(build_frontend({"frontend": "sift", **params}), SiftFrontend)
    mnn = build_matcher({"frontend": "sift", "matcher": "mnn", **params})
    assert isinstance(mnn, MutualNearestNeighbourMatcher) and mnn.ratio_test == 0.7


@pytest.mark.parametrize(
    ("frontend", "matcher"),
    [("aliked", "lightglue"), ("disk", "lightglue"), ("superpoint", "lightglue")],
)
def test_networks_without_an_onnx_export_refuse_runtime_onnxruntime(frontend, matcher):
    params = {"frontend": frontend, "matcher": matcher, "runtime": "onnxruntime"}
    with pytest.raises(ValueError, match="no ONNX export yet.*runtime: torch"):
        build_frontend(params) if frontend != "superpoint" else build_matcher(params)
