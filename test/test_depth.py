"""RGB-D input: keypoint depths from 16UC1 / 32FC1 images against a scene's exact depth."""

from __future__ import annotations

import numpy as np
import pytest
from stereo_scene import BoxScene

from superglue_ros.pipeline.depth import DepthReader, register_depth
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


def plane_depth(k: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[H, W] float64 depth (m) of the plane 0.3 y + z = 2 (tilted about x) seen with k."""
    rows, cols = np.mgrid[0 : size[0], 0 : size[1]].astype(np.float64)
    ray_y = (rows - k[1, 2]) / k[1, 1]
    return 2.0 / (0.3 * ray_y + 1.0) + 0.0 * cols


def test_register_depth_moves_the_depth_camera_pixels_into_the_colour_camera() -> None:
    size = (120, 160)
    k_depth = np.array([[200.0, 0, 79.5], [0, 200.0, 59.5], [0, 0, 1]])
    k_colour = np.array([[180.0, 0, 80.5], [0, 180.0, 58.5], [0, 0, 1]])  # 7-Scenes-like
    depth = plane_depth(k_depth, size).astype(np.float32)
    exact = plane_depth(k_colour, size)
    registered = register_depth(depth, k_depth, k_colour, size)
    # The depth camera sees (u - cx) / fx up to 79.5 / 200 px: colour pixels inside that
    # view, with a pixel of margin, all get a value (depth pixels land 0.9 px apart).
    rows, cols = np.mgrid[0 : size[0], 0 : size[1]]
    in_view = (np.abs(cols - k_colour[0, 2]) / 180 < 78.5 / 200) & (
        np.abs(rows - k_colour[1, 2]) / 180 < 58.5 / 200
    )
    assert np.isfinite(registered[in_view]).all()
    assert not np.isfinite(registered[~in_view & (np.abs(rows - 58.5) > 60 * 0.95)]).any()
    # Each value is the depth of a point that projects within half a pixel of its pixel.
    slope = np.abs(np.diff(exact, axis=0)).max() + np.abs(np.diff(exact, axis=1)).max()
    found = np.isfinite(registered)
    error = np.abs(registered[found] - exact[found])
    assert error.max() <= 0.5 * slope * 1.01 + 1e-6
    # Read without registering, the same pixels are far more wrong.
    unregistered = np.abs(depth[found] - exact[found])
    assert np.median(unregistered) > 3 * np.median(error)
    # Millimetres: the same pixels, the same values (nearest wins, 0 where none).
    millimetres = register_depth(np.round(depth * 1000).astype(np.uint16), k_depth, k_colour, size)
    np.testing.assert_array_equal(millimetres, np.where(found, np.round(registered * 1000), 0))


def test_register_depth_keeps_the_nearest_surface() -> None:
    size = (40, 40)
    k_depth = np.array([[40.0, 0, 19.5], [0, 40.0, 19.5], [0, 0, 1]])
    k_colour = np.array([[20.0, 0, 19.5], [0, 20.0, 19.5], [0, 0, 1]])  # 2 x 2 -> 1 pixel
    depth = np.full(size, 3000, np.uint16)
    depth[10:30:2, 10:30:2] = 1000  # one near pixel in each 2 x 2 block
    depth[0, 0] = 0  # no measurement
    registered = register_depth(depth, k_depth, k_colour, size)
    assert (registered[15:25, 15:25] == 1000).all()
    assert registered[10, 10] == 3000 and registered[0, 0] == 0
