"""RGB-D input: keypoint depths from 16UC1 / 32FC1 images against a scene's exact depth."""

from __future__ import annotations

import numpy as np
import pytest
from stereo_scene import BoxScene

from superglue_ros.pipeline.depth import DepthReader
from superglue_ros.pipeline.types import Companions, DepthImage

from synthetic import orb_pipeline

SCENE = BoxScene()


def test_depth_image_units_and_invalid_values() -> None:
    millimetres = DepthImage(np.array([[0, 1500], [65535, 250]], dtype=np.uint16))
    np.testing.assert_allclose(
        millimetres.metres(), [[np.nan, 1.5], [65.535, 0.25]], rtol=1e-6, equal_nan=True
    )
    metres = DepthImage(np.array([[np.nan, np.inf], [-1.0, 2.5]], dtype=np.float32))
    np.testing.assert_array_equal(metres.metres(), [[np.nan, np.nan], [np.nan, 2.5]])
    with pytest.raises(ValueError, match="16UC1"):
        DepthImage(np.zeros((2, 2), np.float64)).metres()


def test_a_hole_takes_the_nearest_surface_and_a_valid_centre_keeps_its_own() -> None:
    depth = np.full((9, 9), 4.0, dtype=np.float32)
    depth[:, :4] = 2.0  # a nearer surface on the left, the edge between columns 3 and 4
    depth[4, 3:6] = 0.0  # a hole along the edge (the foreground's shadow)
    reader = DepthReader(window_px=2)
    keypoints = np.array([[4.0, 4.0], [5.0, 4.0], [6.0, 6.0], [2.0, 6.0], [4.6, 1.4]])
    got = reader.read(DepthImage(depth), keypoints)
    # In a hole: the nearer surface; on a valid pixel: that pixel's surface, even at the edge.
    np.testing.assert_array_equal(got, [2.0, 2.0, 4.0, 2.0, 4.0])
    empty = np.zeros((9, 9), np.float32)
    assert np.isnan(reader.read(DepthImage(empty), keypoints)).all()
    outside = reader.read(DepthImage(depth), np.array([[-3.0, 4.0], [4.0, 9.6]]))
    assert np.isnan(outside).all()


def test_noise_on_one_surface_is_smoothed_by_the_median() -> None:
    rng = np.random.default_rng(0)
    depth = (2.0 + 0.01 * rng.standard_normal((41, 41))).astype(np.float32)
    keypoints = rng.uniform(5, 35, size=(200, 2))
    single = DepthReader(window_px=0).read(DepthImage(depth), keypoints)
    window = DepthReader(window_px=2).read(DepthImage(depth), keypoints)
    assert np.std(window - 2.0) < 0.5 * np.std(single - 2.0)


def test_depth_range_makes_near_and_far_nan() -> None:
    depth = np.array([[0.05, 1.0, 50.0]], dtype=np.float32)
    keypoints = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    got = DepthReader(min_m=0.1, max_m=40.0, window_px=0).read(DepthImage(depth), keypoints)
    np.testing.assert_array_equal(np.isnan(got), [True, False, True])


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_pipeline_depths_match_the_exact_depth_of_a_generated_scene(encoding: str) -> None:
    color, depth = SCENE.rgbd()
    # Holes: 10 % of the pixels read nothing, as on a real sensor.
    holes = np.random.default_rng(1).random(depth.shape) < 0.1
    depth[holes] = 0.0
    # 16UC1 holds whole millimetres: half a millimetre of rounding.
    quantum = 0.0
    if encoding == "16UC1":
        depth, quantum = np.rint(depth * 1000).astype(np.uint16), 0.5e-3
    pipeline = orb_pipeline({"input": "rgbd"})
    result = pipeline.process(color, 0, Companions(depth=DepthImage(depth)))
    keypoints = result.features.keypoints
    assert result.depths is not None and result.depths.shape == (len(keypoints),)
    assert result.right_x is None
    away = ~SCENE.near_box_edge(keypoints, radius=2)
    assert away.sum() > 100 and (~away).sum() > 5  # both kinds of keypoint are tested
    exact = SCENE.exact_depth(keypoints[away])
    # A window's same-surface median is the depth of the rounded pixel's row (depth is
    # monotonic in the row), which is at most half a row from the keypoint.
    tolerance = 0.5 * SCENE.max_depth_slope() + quantum + 1e-5
    np.testing.assert_allclose(result.depths[away], exact, rtol=0, atol=tolerance)
    # At the box's edge a keypoint gets one of the two surfaces, never a blend; the
    # plane's pixels in the window may all lie on one side, up to 2 rows away.
    edge = keypoints[~away]
    surfaces = np.stack([np.full(len(edge), SCENE.box_depth_m), SCENE.depth_at(edge[:, 1])])
    error = np.abs(result.depths[~away][None] - surfaces).min(axis=0)
    assert (error <= 2.5 * SCENE.max_depth_slope() + quantum + 1e-5).all()
    assert pipeline.keyframes[0].depths is not None


def test_rgbd_input_refuses_a_frame_without_depth_or_of_another_size() -> None:
    color, depth = SCENE.rgbd()
    pipeline = orb_pipeline({"input": "rgbd"})
    with pytest.raises(ValueError, match="input rgbd needs a depth image"):
        pipeline.process(color, 0)
    with pytest.raises(ValueError, match="aligned to colour"):
        pipeline.process(color, 0, Companions(depth=DepthImage(depth[:, :-1])))
    with pytest.raises(ValueError, match="input mono needs no companion"):
        orb_pipeline().process(color, 0, Companions(depth=DepthImage(depth)))
    assert pipeline.keyframes == []


def test_an_empty_depth_range_is_refused_at_start_and_at_run_time() -> None:
    with pytest.raises(ValueError, match="'depth.min_m' .5.0. must be below 'depth.max_m'"):
        orb_pipeline({"depth.min_m": 5.0, "depth.max_m": 2.0})
    pipeline = orb_pipeline({"input": "rgbd"})
    with pytest.raises(ValueError, match="must be below"):
        pipeline.update_params({"depth.max_m": 0.05})
    assert pipeline.config["depth.max_m"] == 40.0  # nothing applied
    pipeline.update_params({"depth.max_m": 2.0})
    color, depth = SCENE.rgbd()
    result = pipeline.process(color, 0, Companions(depth=DepthImage(depth)))
    assert np.nanmax(result.depths) <= 2.0 and np.isnan(result.depths).any()
