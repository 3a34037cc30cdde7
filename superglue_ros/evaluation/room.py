"""Image sequences with exact camera poses: a textured room rendered along a known path.

The room is a box (floor, four walls, ceiling) with two boxes standing on the
floor; every face is tiled with pictures (real photographs passed in by the
user, or procedural textures). Each textured quad is drawn with a perspective
warp of its picture (a mip level chosen from the warp's scale, so far surfaces
do not alias) into a z-buffer, so nearer surfaces hide farther ones. That z-buffer is the
exact depth of each pixel (render returns both), and a rectified stereo pair is two
renders from cameras a baseline apart along x (right_camera_pose).

World frame: metres, z up, floor at z = 0. Poses are camera-to-world with
OpenCV camera axes (x right, y down, z forward), as in TUM ground truth files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from superglue_ros.odometry.types import CameraIntrinsics

ROOM_SIZE = (6.0, 5.0, 2.6)  # x, y, z extent in metres, centred on x = y = 0
TILE_M = 2.0  # pictures are about this wide on walls, floor and ceiling
NEAR_M = 0.05  # surfaces closer to the camera than this are clipped
MIP_LEVELS = 4
TEXTURE_SIDE = 1024  # longer side of a picture after loading


@dataclass
class Quad:
    """A planar textured rectangle.

    corners: [4, 3] world points where the picture's top-left, top-right,
    bottom-right and bottom-left corners go. mips: the picture ([H, W, 3] uint8
    RGB) and its successive half-size versions. shade: brightness factor.
    """

    corners: np.ndarray
    mips: list[np.ndarray]
    shade: float


def mip_pyramid(picture: np.ndarray) -> list[np.ndarray]:
    """The picture and MIP_LEVELS - 1 successive halvings."""
    levels = [picture]
    for _ in range(MIP_LEVELS - 1):
        levels.append(cv2.pyrDown(levels[-1]))
    return levels


def fit_texture(picture: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 RGB with the longer side TEXTURE_SIDE (gray is made RGB)."""
    if picture.ndim == 2:
        picture = np.dstack([picture] * 3)
    scale = TEXTURE_SIDE / max(picture.shape[:2])
    size = (round(picture.shape[1] * scale), round(picture.shape[0] * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(picture), size, interpolation=interpolation)


def _tiled_face(
    origin: np.ndarray, along: np.ndarray, down: np.ndarray, pictures: list, shade: float
) -> list[Quad]:
    """Quads tiling the rectangle origin + s * along + t * down (s, t in [0, 1])."""
    along, down = np.asarray(along, np.float64), np.asarray(down, np.float64)
    columns = max(1, round(np.linalg.norm(along) / TILE_M))
    rows = max(1, round(np.linalg.norm(down) / TILE_M))
    quads = []
    for row in range(rows):
        for column in range(columns):
            top_left = origin + along * column / columns + down * row / rows
            step_s, step_t = along / columns, down / rows
            corners = np.array(
                [top_left, top_left + step_s, top_left + step_s + step_t, top_left + step_t]
            )
            quads.append(Quad(corners, pictures.pop(0), shade))
    return quads


def build_room(
    pictures: Sequence[np.ndarray], rng: np.random.Generator, with_boxes: bool = True
) -> list[Quad]:
    """The room's quads; pictures are used in turn (repeated when there are too few)."""
    mips = [mip_pyramid(fit_texture(p)) for p in pictures]
    order = [mips[i % len(mips)] for i in rng.permutation(max(len(mips), 64))]
    hx, hy, sz = ROOM_SIZE[0] / 2, ROOM_SIZE[1] / 2, ROOM_SIZE[2]
    top = np.array([0.0, 0.0, sz])
    quads: list[Quad] = []
    # Walls seen from inside: picture up is world up, left to right along the wall.
    walls = [
        (np.array([-hx, hy, 0.0]), np.array([2 * hx, 0.0, 0.0]), 0.95),  # y = +hy
        (np.array([hx, hy, 0.0]), np.array([0.0, -2 * hy, 0.0]), 0.85),  # x = +hx
        (np.array([hx, -hy, 0.0]), np.array([-2 * hx, 0.0, 0.0]), 1.0),  # y = -hy
        (np.array([-hx, -hy, 0.0]), np.array([0.0, 2 * hy, 0.0]), 0.9),  # x = -hx
    ]
    for start, along, shade in walls:
        quads += _tiled_face(start + top, along, -top, order, shade)
    quads += _tiled_face(np.array([-hx, hy, 0.0]), [2 * hx, 0, 0], [0, -2 * hy, 0], order, 0.8)
    quads += _tiled_face(np.array([-hx, -hy, sz]), [2 * hx, 0, 0], [0, 2 * hy, 0], order, 1.05)
    if with_boxes:
        for centre, size in (((2.0, 1.6), (0.8, 0.6, 0.9)), ((-2.1, -1.5), (0.6, 0.8, 1.2))):
            quads += box_quads(np.array([*centre, 0.0]), np.array(size), order)
    return quads


def box_quads(base_centre: np.ndarray, size: np.ndarray, pictures: list) -> list[Quad]:
    """The four sides and the top of a box standing on the floor."""
    dx, dy, dz = size / 2
    x0, y0 = base_centre[:2]
    corners = [
        np.array([x0 - dx, y0 - dy]),
        np.array([x0 + dx, y0 - dy]),
        np.array([x0 + dx, y0 + dy]),
        np.array([x0 - dx, y0 + dy]),
    ]
    quads = []
    for a, b in zip(corners, corners[1:] + corners[:1], strict=True):
        top_a, top_b = np.array([*a, 2 * dz]), np.array([*b, 2 * dz])
        quad = np.array([top_a, top_b, [*b, 0.0], [*a, 0.0]])
        quads.append(Quad(quad, pictures.pop(0), 0.9))
    top = np.array([[*c, 2 * dz] for c in corners])
    quads.append(Quad(top, pictures.pop(0), 1.1))
    return quads


def look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[4, 4] camera-to-world of a camera at position looking at target, z up, no roll."""
    forward = np.asarray(target, np.float64) - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, :3] = np.column_stack([right, down, forward])
    pose[:3, 3] = position
    return pose


def camera_path(frames: int, length_m: float) -> list[np.ndarray]:
    """Camera-to-world poses, equally spaced along a path of length_m metres.

    The camera moves sideways along an elliptic arc around the room's centre at
    about 1.4 m height (rising and falling by 0.15 m once), looking outwards and
    slightly down; it turns by half the angle it travels around the centre, so
    consecutive views overlap.
    """
    if frames < 2:
        raise ValueError(f"a path needs at least 2 frames, got {frames}")
    radii = np.array([1.3, 0.9])
    angles = np.linspace(0.0, 2 * np.pi, 8193)
    ellipse = radii * np.column_stack([np.cos(angles), np.sin(angles)])
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(ellipse, axis=0), axis=1))])
    if length_m <= 0 or length_m > 0.9 * arc[-1]:
        raise ValueError(f"path length must be in (0, {0.9 * arc[-1]:.1f}] m, got {length_m}")
    # Centred on the +y side; arc lengths measured from angle 0 wrap once around.
    middle = np.interp(np.pi / 2, angles, arc)

    def curve(planar: float, samples: int) -> np.ndarray:
        """[samples, 3] points along the arc of planar length `planar`, with the height wave."""
        distance = np.linspace(0.0, planar, samples)
        angle = np.interp((middle - planar / 2 + distance) % arc[-1], arc, angles)
        height = 1.4 + 0.15 * np.sin(2 * np.pi * distance / planar)
        return np.column_stack([radii[0] * np.cos(angle), radii[1] * np.sin(angle), height])

    planar = length_m
    for _ in range(20):  # the height wave lengthens the path: shorten the arc to match
        dense = curve(planar, 4001)
        planar *= length_m / np.sum(np.linalg.norm(np.diff(dense, axis=0), axis=1))
    dense = curve(planar, 4001)
    travelled = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(dense, axis=0), axis=1))])
    poses = []
    for i in range(frames):
        along = np.interp(length_m * i / (frames - 1), travelled, np.arange(len(dense)))
        position = np.array(
            [np.interp(along, np.arange(len(dense)), dense[:, j]) for j in range(3)]
        )
        angle = np.arctan2(position[1] / radii[1], position[0] / radii[0])
        heading = np.pi / 2 + 0.5 * (angle - np.pi / 2)
        target = position + [np.cos(heading), np.sin(heading), -0.25]
        poses.append(look_at(position, target))
    return poses


# build_room gives each face its own picture when handed this many (its placement is a
# permutation of max(pictures, 64) slots taken modulo the picture count).
DISTINCT_PICTURES = 64
LOOP_RADII = (1.2, 0.9)  # x, y semi-axes of the loop path (m): 1.6-1.8 m from the walls


def loop_path(frames: int) -> list[np.ndarray]:
    """Camera-to-world poses once round the room, looking outwards, back to the start.

    The camera goes round an ellipse (LOOP_RADII) about the room's centre at
    about 1.4 m height (a 0.1 m height wave, three periods a round), looking
    outwards (along the ellipse's normal) and slightly down, so it sees every
    wall in turn. The frames are evenly spaced in angle and the last one lands
    half a step short of the first: the view returns to the start, but not
    pixel-exact, as a real return never is.
    """
    if frames < 8:
        raise ValueError(f"a loop path needs at least 8 frames, got {frames}")
    poses = []
    for i in range(frames):
        angle = 2 * np.pi * i / (frames - 0.5)
        a, b = LOOP_RADII
        position = np.array([a * np.cos(angle), b * np.sin(angle), 1.4 + 0.1 * np.sin(3 * angle)])
        normal = np.array([b * np.cos(angle), a * np.sin(angle)])
        normal /= np.linalg.norm(normal)
        poses.append(look_at(position, position + [*normal, -0.25]))
    return poses


def repeat_wall_picture(quads: list[Quad], walls: int) -> list[Quad]:
    """quads with the first wall's middle picture also on the middle tile of the next
    walls - 1 walls (perceptual aliasing: one texture in several places).

    quads: build_room's output (its first quads are the wall tiles, wall after
    wall, in the order y = +hy, x = +hx, y = -hy, x = -hx). The repeated tiles keep their own
    shade, as the same poster on differently lit walls.
    """
    if not 2 <= walls <= 4:
        raise ValueError(f"a picture can repeat on 2 to 4 walls, got {walls}")
    tiles_per_wall = wall_tile_counts()
    starts = np.concatenate([[0], np.cumsum(tiles_per_wall)[:-1]])
    middles = [int(start + count // 2) for start, count in zip(starts, tiles_per_wall, strict=True)]
    picture = quads[middles[0]].mips
    repeated = list(quads)
    for index in middles[1:walls]:
        repeated[index] = Quad(quads[index].corners, picture, quads[index].shade)
    return repeated


def wall_tile_counts() -> list[int]:
    """How many tiles build_room puts on each wall, in its wall order."""
    columns = [max(1, round(side / TILE_M)) for side in (ROOM_SIZE[0], ROOM_SIZE[1])] * 2
    rows = max(1, round(ROOM_SIZE[2] / TILE_M))
    return [c * rows for c in columns]


def clip_near(points: np.ndarray, near: float = NEAR_M) -> np.ndarray:
    """Sutherland-Hodgman: the [M, 3] camera-frame polygon's part with z >= near."""
    out = []
    for i in range(len(points)):
        a, b = points[i], points[(i + 1) % len(points)]
        if a[2] >= near:
            out.append(a)
        if (a[2] >= near) != (b[2] >= near):
            t = (near - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out).reshape(-1, 3)


def render(
    quads: Sequence[Quad],
    camera: CameraIntrinsics,
    pose: np.ndarray,
    noise: float = 0.0,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """[H, W, 3] uint8 RGB view of the quads from pose (camera-to-world), and its z-buffer:
    [H, W] float32 depth (camera z, metres) of the surface drawn at each pixel centre,
    inf where none is."""
    width, height = camera.width, camera.height
    k = camera.matrix
    world_to_camera = np.linalg.inv(pose)
    rotation, translation = world_to_camera[:3, :3], world_to_camera[:3, 3]
    image = np.zeros((height, width, 3), np.float32)
    depth = np.full((height, width), np.inf, np.float32)
    # Rays through every pixel (z = 1), for the depth of each plane.
    u, v = np.meshgrid(np.arange(width), np.arange(height))
    rays = np.stack(
        [(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, np.ones_like(u, float)], -1
    )
    for quad in quads:
        corners = quad.corners @ rotation.T + translation
        clipped = clip_near(corners)
        if len(clipped) < 3:
            continue
        projected = clipped[:, :2] / clipped[:, 2:] * [camera.fx, camera.fy] + [
            camera.cx,
            camera.cy,
        ]
        low, high = projected.min(axis=0), projected.max(axis=0)
        if high[0] < 0 or high[1] < 0 or low[0] >= width or low[1] >= height:
            continue
        mask = np.zeros((height, width), np.uint8)
        polygon = np.clip(projected, -4 * max(width, height), 4 * max(width, height))
        cv2.fillPoly(mask, [np.round(polygon * 16).astype(np.int32)], 1, shift=4)
        inside = mask.astype(bool)
        if not inside.any():
            continue
        # Plane n . X = d in the camera frame; depth along each pixel ray.
        normal = np.cross(corners[1] - corners[0], corners[3] - corners[0])
        normal /= np.linalg.norm(normal)
        plane_d = float(normal @ corners[0])
        denominator = rays[inside] @ normal
        plane_depth = np.where(np.abs(denominator) > 1e-9, plane_d / denominator, np.inf)
        nearer = (plane_depth > 0) & (plane_depth < depth[inside])
        if not nearer.any():
            continue
        # Texture pixel (a, b, 1) -> camera point: corner0 + a * e_s + b * e_t.
        base = quad.mips[0]
        edge_s = (corners[1] - corners[0]) / base.shape[1]
        edge_t = (corners[3] - corners[0]) / base.shape[0]
        homography = k @ np.column_stack([edge_s, edge_t, corners[0]])
        level = mip_level(homography, projected.mean(axis=0))
        scale = 2.0**level
        level_homography = homography @ np.diag([scale, scale, 1.0])
        warped = cv2.warpPerspective(
            quad.mips[level],
            level_homography,
            (width, height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        rows, cols = np.nonzero(inside)
        rows, cols = rows[nearer], cols[nearer]
        image[rows, cols] = warped[rows, cols] * quad.shade
        depth[rows, cols] = plane_depth[nearer]
    if noise > 0:
        rng = rng or np.random.default_rng(0)
        image += rng.normal(0.0, noise, size=image.shape).astype(np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), depth


def right_camera_pose(left_pose: np.ndarray, baseline_m: float) -> np.ndarray:
    """Camera-to-world of the right camera of a rectified pair: the left camera moved
    baseline_m along its own x axis, same orientation (so rows stay rows)."""
    offset = np.eye(4)
    offset[0, 3] = baseline_m
    return left_pose @ offset


def depth_image(depth_m: np.ndarray, units_per_m: float) -> np.ndarray:
    """[H, W] uint16 of a metric depth map at units_per_m (1000: 16UC1 millimetres; 5000:
    TUM RGB-D PNGs), rounded; 0, the drivers' "no depth", where there is no surface or the
    depth does not fit in 16 bits."""
    scaled = np.asarray(depth_m, np.float64) * units_per_m
    valid = np.isfinite(scaled) & (scaled > 0) & (scaled < 65535.5)
    return np.where(valid, np.round(np.where(valid, scaled, 0.0)), 0).astype(np.uint16)


def mip_level(homography: np.ndarray, pixel: np.ndarray) -> int:
    """Mip level whose texels are about one image pixel where the quad is drawn."""
    inverse = np.linalg.inv(homography)
    point = np.array([pixel[0], pixel[1], 1.0])
    mapped = inverse @ point
    # Jacobian of the image -> texture map at pixel.
    jacobian = (inverse[:2, :2] * mapped[2] - np.outer(mapped[:2], inverse[2, :2])) / mapped[2] ** 2
    texels_per_pixel = np.sqrt(abs(np.linalg.det(jacobian)))
    if not np.isfinite(texels_per_pixel) or texels_per_pixel <= 1:
        return 0
    return int(min(MIP_LEVELS - 1, np.floor(np.log2(texels_per_pixel))))
