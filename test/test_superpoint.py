"""SuperPoint: reference parity on the fixture and input edge cases."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from superglue_ros.models.superpoint import SuperPoint, simple_nms
from superglue_ros.models.weights import build_superpoint

from numerics import EPS32, ERROR_FACTOR


@pytest.fixture(scope="module")
def fixture(fixtures_dir):
    with np.load(fixtures_dir / "superpoint_parity_small.npz") as npz:
        return {key: npz[key] for key in npz.files}


@pytest.fixture(scope="module")
def state(fixture):
    return {k[8:]: torch.from_numpy(v) for k, v in fixture.items() if k.startswith("weights/")}


@pytest.fixture(scope="module")
def model(fixture, state):
    return build_superpoint(state, json.loads(str(fixture["config"])))


def small(fixture, height=83, width=125):
    """An odd-sized crop of the fixture image (uint8 [1, 1, H, W])."""
    return torch.from_numpy(fixture["image0"][100 : 100 + height, 200 : 200 + width].copy())[
        None, None
    ]


def dense_scores_float64(model, image: torch.Tensor) -> np.ndarray:
    """The score map [H, W] before NMS computed in float64 with model's weights: the exact
    result against which float32 rounding is measured (numerics.py)."""
    net = copy.deepcopy(model).to(memory_format=torch.contiguous_format).double()
    x = image.double()
    with torch.inference_mode():
        for first, second in (
            (net.conv1a, net.conv1b),
            (net.conv2a, net.conv2b),
            (net.conv3a, net.conv3b),
        ):
            x = F.max_pool2d(F.relu(second(F.relu(first(x)))), kernel_size=2, stride=2)
        x = F.relu(net.conv4b(F.relu(net.conv4a(x))))
        scores = F.softmax(net.convPb(F.relu(net.convPa(x))), 1)[:, :-1]
    b, _, h, w = scores.shape
    scores = scores.permute(0, 2, 3, 1).reshape(b, h, w, 8, 8)
    return scores.permute(0, 1, 3, 2, 4).reshape(h * 8, w * 8).numpy()


def test_matches_reference_fixture(fixture, model) -> None:
    """Ours against the original code's float32 output (the fixture), both against float64."""
    image = torch.from_numpy(fixture["image0"])[None, None].float() / 255.0
    out = model.extract(image)
    exact = dense_scores_float64(model, image)
    ours, ref = out["keypoints"][0].numpy(), fixture["out0/keypoints"]
    ref_scores = fixture["out0/scores"]

    def exact_at(points: np.ndarray) -> np.ndarray:
        return exact[points[:, 1].astype(int), points[:, 0].astype(int)]

    # As numerics.py: twice the original's own float32 error (the fixture against float64,
    # the same on every machine: 2.1e-6 here), at least rounding (scores are <= 1).
    tolerance = ERROR_FACTOR * max(np.abs(ref_scores - exact_at(ref)).max(), 2 * EPS32)
    assert tolerance <= 1e-4, tolerance  # rounding, not another network
    np.testing.assert_allclose(out["scores"][0].numpy(), exact_at(ours), rtol=0, atol=tolerance)
    # The same keypoint set, except where a rounding within tolerance decides: at the
    # max_keypoints boundary (the weakest score kept) or between NMS neighbours.
    weakest = float(exact_at(ref).min())
    radius = 2 * int(model.conf["nms_radius"])  # two suppression rounds reach this far
    ours_set, ref_set = {tuple(p) for p in ours.tolist()}, {tuple(p) for p in ref.tolist()}
    differ = ours_set ^ ref_set
    for x, y in differ:
        score = exact[int(y), int(x)]
        window = exact[max(int(y) - radius, 0) : int(y) + radius + 1]
        window = window[:, max(int(x) - radius, 0) : int(x) + radius + 1].ravel()
        rival = np.min(np.abs(window[window != score] - score), initial=np.inf)
        assert min(abs(score - weakest), rival) <= 2 * tolerance, ((x, y), score, weakest)
    assert len(differ) <= 0.01 * len(ref), f"{len(differ)} of {len(ref)} keypoints differ"
    ref_index = {tuple(p): i for i, p in enumerate(ref.tolist())}
    ours_index = [i for i, p in enumerate(ours.tolist()) if tuple(p) in ref_index]
    ref_order = [ref_index[tuple(ours[i].tolist())] for i in ours_index]
    # Unit descriptors sampled alike: float32 error per entry ~1e-6 relative, so a cosine
    # below 0.9999 is a sampling or normalisation defect, not rounding.
    cosine = (
        out["descriptors"][0].numpy()[:, ours_index] * fixture["out0/descriptors"][:, ref_order]
    ).sum(0)
    assert cosine.min() >= 0.9999


def test_uint8_and_non_contiguous_inputs_give_the_float_result(fixture, model) -> None:
    image = small(fixture)
    as_float = model.extract(image.float() / 255.0)
    as_uint8 = model.extract(image)
    strided = image.transpose(2, 3).contiguous().transpose(2, 3)  # same values, other strides
    assert not strided.is_contiguous()
    as_strided = model.extract(strided)
    for other in (as_uint8, as_strided):
        for key in ("keypoints", "scores", "descriptors"):
            torch.testing.assert_close(other[key][0], as_float[key][0])


def test_odd_sizes_keep_keypoints_inside_and_off_the_border(fixture, model) -> None:
    out = model.extract(small(fixture, 83, 125))
    kpts = out["keypoints"][0]
    border = model.conf["remove_borders"]
    assert len(kpts) > 0
    # the score map covers 8 * floor(side / 8) pixels, as in the reference
    assert kpts[:, 0].min() >= border and kpts[:, 0].max() < 120 - border
    assert kpts[:, 1].min() >= border and kpts[:, 1].max() < 80 - border
    assert out["descriptors"][0].shape == (256, len(kpts))
    torch.testing.assert_close(out["descriptors"][0].norm(dim=0), torch.ones(len(kpts)))


def test_keypoint_limits(fixture, state) -> None:
    image = small(fixture, 96, 128)
    unlimited = build_superpoint(state, {"max_keypoints": -1}).extract(image)
    n_all = len(unlimited["keypoints"][0])
    assert n_all > 10
    # without a limit the keypoints come in raster order (row, then column)
    rows = unlimited["keypoints"][0][:, 1] * 10000 + unlimited["keypoints"][0][:, 0]
    assert torch.all(rows[1:] > rows[:-1])
    limited = build_superpoint(state, {"max_keypoints": 10}).extract(image)
    assert len(limited["keypoints"][0]) == 10
    assert torch.all(limited["scores"][0][:-1] >= limited["scores"][0][1:])
    one = build_superpoint(state, {"max_keypoints": 1}).extract(image)
    assert one["keypoints"][0].shape == (1, 2) and one["descriptors"][0].shape == (256, 1)
    assert one["scores"][0][0] == unlimited["scores"][0].max()


def test_zero_keypoints(fixture, state) -> None:
    model = build_superpoint(state, {"keypoint_threshold": 1.0})
    out = model.extract(small(fixture))
    assert out["keypoints"][0].shape == (0, 2)
    assert out["scores"][0].shape == (0,)
    assert out["descriptors"][0].shape == (256, 0)
    flat = model.extract(torch.zeros(1, 1, 64, 64))
    assert flat["keypoints"][0].shape == (0, 2)


def test_batch_equals_single_images(fixture, model) -> None:
    image = small(fixture, 64, 96)
    other = torch.flip(image, dims=[3])
    both = model.extract(torch.cat([image, other]))
    for i, single in enumerate((image, other)):
        alone = model.extract(single)
        for key in ("keypoints", "scores", "descriptors"):
            torch.testing.assert_close(both[key][i], alone[key][0])


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (torch.zeros(64, 64), "4 dimensions"),
        (torch.zeros(1, 64, 64), "4 dimensions"),
        (torch.zeros(1, 3, 64, 64), "1 channel"),
        (torch.zeros(1, 1, 64, 64, dtype=torch.int32), "dtype"),
        (torch.zeros(1, 1, 4, 64), "at least 8"),
        (np.zeros((1, 1, 64, 64), np.float32), "torch.Tensor"),
    ],
)
def test_bad_input_raises_value_error(model, image, message) -> None:
    with pytest.raises(ValueError, match=message):
        model({"image": image})


def test_bad_options_raise_value_error() -> None:
    with pytest.raises(ValueError, match="max_keypoints"):
        SuperPoint({"max_keypoints": 0})
    with pytest.raises(ValueError, match="unknown"):
        SuperPoint({"max_keypionts": 5})
    with pytest.raises(ValueError, match="precision"):
        SuperPoint({"precision": "int8"})


def test_separable_nms_keeps_isolated_maxima() -> None:
    scores = torch.zeros(1, 20, 20)
    scores[0, 5, 5], scores[0, 6, 6], scores[0, 15, 15] = 0.9, 0.8, 0.5
    kept = simple_nms(scores, 2)
    assert kept[0, 5, 5] == 0.9 and kept[0, 15, 15] == 0.5 and kept[0, 6, 6] == 0


def test_bf16_autocast_runs_on_cpu(fixture, state) -> None:
    model = build_superpoint(state, {"precision": "bf16", "max_keypoints": 50})
    out = model.extract(small(fixture))
    assert out["keypoints"][0].dtype == torch.float32
    assert out["descriptors"][0].dtype == torch.float32
    # bf16 really ran (the scores are not fp32's bit for bit) and computes the same thing:
    # nearly the same keypoints (47 of 50 here), descriptors with cosine ~1 to fp32's.
    exact = build_superpoint(state, {"precision": "fp32", "max_keypoints": 50}).extract(
        small(fixture)
    )
    assert not torch.equal(out["scores"][0], exact["scores"][0])
    ours = dict(zip(map(tuple, out["keypoints"][0].tolist()), out["descriptors"][0].T, strict=True))
    theirs = dict(
        zip(map(tuple, exact["keypoints"][0].tolist()), exact["descriptors"][0].T, strict=True)
    )
    common = ours.keys() & theirs.keys()
    assert len(common) >= 0.8 * len(theirs)
    assert min(float(torch.dot(ours[k], theirs[k])) for k in common) > 0.999


def test_separable_and_square_window_max_agree() -> None:
    from superglue_ros.models.reference import square_window_max

    scores = torch.rand(2, 37, 53)
    for radius in (0, 1, 4):
        torch.testing.assert_close(
            simple_nms(scores, radius), simple_nms(scores, radius, square_window_max)
        )


def test_numpy_keypoint_selection_equals_torch() -> None:
    """The onnxruntime path's numpy select_keypoints (torch-free on purpose) gives the
    torch one's keypoints and scores bit for bit: distinct scores, so that the order
    under a limit is defined (ties may come out in another order under a limit); with
    ties and no limit both keep raster order."""
    from superglue_ros.models.superpoint import select_keypoints
    from superglue_ros.pipeline.onnx_runtime import select_keypoints as select_numpy

    rng = np.random.default_rng(0)
    distinct = (rng.permutation(40 * 60).reshape(40, 60) / (40 * 60)).astype(np.float32)
    tied = (rng.integers(0, 4, (40, 60)) / 4).astype(np.float32)
    cases = [(distinct, limit) for limit in (-1, 0, 1, 25, 1500, 5000)] + [(tied, -1)]
    for scores, limit in cases:
        for border in (0, 1, 4, 25):
            expected = select_keypoints(torch.from_numpy(scores), 0.3, border, limit)
            got = select_numpy(scores, 0.3, border, limit)
            for ours, theirs in zip(got, expected, strict=True):
                assert ours.dtype == np.float32
                np.testing.assert_array_equal(ours, theirs.numpy(), f"{limit=} {border=}")
    assert len(select_numpy(distinct, 0.3, 25, -1)[0]) == 0  # border past the middle
