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
from superglue_ros.pipeline.registry import choose_networks


def test_registry_covers_the_parameter_choices():
    # auto is resolved to one of them (choose_networks) before anything is built
    assert set(FRONTENDS) | {"auto"} == set(PIPELINE_SPECS["frontend"].choices)
    assert set(MATCHERS) | {"auto"} == set(PIPELINE_SPECS["matcher"].choices)


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
    ("frontend", "matcher", "missing"),
    [
        ("aliked", "lightglue", "aliked_n16_dense.onnx"),
        ("disk", "lightglue", "disk_dense.onnx"),
    ],
)
def test_runtime_onnxruntime_builds_the_exported_open_networks(
    frontend, matcher, missing, tmp_path
):
    # The registry goes to the ONNX runtime (graphs from onnx_dir) instead of refusing;
    # test/test_onnx_learned.py runs them.
    pytest.importorskip("onnxruntime", reason="runtime onnxruntime needs onnxruntime")
    params = {"frontend": frontend, "matcher": matcher, "runtime": "onnxruntime"}
    params["onnx_dir"] = str(tmp_path)
    with pytest.raises(FileNotFoundError, match=f"{missing} does not exist.*export onnx"):
        build_frontend(params)
    with pytest.raises(FileNotFoundError, match=f"lightglue_{frontend}_adaptive.*export onnx"):
        build_matcher(params)


@pytest.fixture
def no_research_weights(tmp_path, monkeypatch):
    """Nowhere holds the Magic Leap weights: an empty $SUPERGLUE_ROS_WEIGHTS and cache."""
    monkeypatch.setenv("SUPERGLUE_ROS_WEIGHTS", str(tmp_path / "env_weights"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_auto_runs_aliked_lightglue_without_the_research_weights(no_research_weights):
    config, why = choose_networks({"frontend": "auto", "matcher": "auto"})
    assert (config["frontend"], config["matcher"]) == ("aliked", "lightglue")
    assert "superpoint_v1.pth not found" in why and "superglue-ros weights download" in why
    assert "matcher auto: lightglue" in why


def test_auto_runs_superpoint_superglue_where_its_weights_are(no_research_weights):
    weights = no_research_weights / "weights"
    weights.mkdir()
    for name in ("superpoint_v1.pth", "superglue_outdoor.pth"):
        (weights / name).write_bytes(b"")  # found by name; loading is not tried here
    params = {"frontend": "auto", "matcher": "auto", "weights_dir": str(weights)}
    config, why = choose_networks({**params, "superglue.weights": "outdoor"})
    assert (config["frontend"], config["matcher"]) == ("superpoint", "superglue")
    assert "research-only" in why
    # the indoor SuperGlue file is missing: then the permissive pair runs
    config, why = choose_networks(params)
    assert config["frontend"] == "aliked" and "superglue_indoor.pth not found" in why


@pytest.mark.parametrize(
    ("frontend", "matcher"),
    [("orb", "mnn"), ("sift", "mnn"), ("aliked", "lightglue"), ("disk", "lightglue")],
)
def test_matcher_auto_takes_the_frontends_own(frontend, matcher):
    config, why = choose_networks({"frontend": frontend, "matcher": "auto"})
    assert config["matcher"] == matcher and f"matcher auto: {matcher}" in why
    assert choose_networks({"frontend": frontend, "matcher": matcher})[1] == ""


def test_frontend_auto_with_superglue_is_superpoint(no_research_weights):
    config, _ = choose_networks({"frontend": "auto", "matcher": "superglue"})
    assert config["frontend"] == "superpoint"  # its missing weights then say so at build


def test_classical_auto_builds_without_weights():
    assert isinstance(
        build_matcher({"frontend": "orb", "matcher": "auto"}), MutualNearestNeighbourMatcher
    )
