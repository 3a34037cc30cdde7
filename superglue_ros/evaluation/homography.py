"""Known warps of one picture: the sequences ``homography-bag`` writes, and their truth.

Frame 0 is the centre of a source photo (or a procedural texture); frame i is the
source warped by a homography H_i that drifts smoothly from frame to frame
(rotation, scale, translation, perspective), then blurred, noised and re-exposed at
random. H_i maps frame-0 pixels to frame-i pixels (pixel centres at integers);
:func:`write_homographies` stores one 3 x 3 matrix per frame keyed by its stamp and
:func:`load_homographies` reads them back for ``replay --homographies``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from superglue_ros.evaluation.textures import procedural_texture

FORMAT = "superglue_ros homographies v1"


@dataclass(frozen=True)
class Motion:
    """How far the view drifts (per-frame random-walk steps and their bounds)."""

    rotation_deg: float = 2.5  # step of the in-plane rotation
    max_rotation_deg: float = 20.0
    log_scale: float = 0.04  # step of log(scale)
    max_log_scale: float = 0.25
    translation: float = 0.025  # step, fraction of the image width
    max_translation: float = 0.15
    perspective: float = 8e-5  # step of each projective term (1/px)
    max_perspective: float = 4e-4


@dataclass(frozen=True)
class Photometric:
    """Random appearance changes applied to every frame after frame 0."""

    gain: tuple[float, float] = (0.6, 1.4)  # exposure multiplier
    gamma: tuple[float, float] = (0.75, 1.3)
    blur_sigma: tuple[float, float] = (0.0, 1.8)  # Gaussian blur, px (0: none)
    noise_sigma: tuple[float, float] = (1.0, 7.0)  # additive Gaussian noise, grey levels


def homography_about_centre(
    angle_deg: float, log_scale: float, shift: np.ndarray, perspective: np.ndarray, size: tuple
) -> np.ndarray:
    """[3, 3] H = T(c) [s R, t; p^T, 1] T(-c) for an image of size (width, height)."""
    centre = np.array([(size[0] - 1) / 2, (size[1] - 1) / 2])
    angle = np.deg2rad(angle_deg)
    rotation = np.exp(log_scale) * np.array(
        [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    )
    core = np.eye(3)
    core[:2, :2] = rotation
    core[:2, 2] = shift
    core[2, :2] = perspective
    to_centre, from_centre = np.eye(3), np.eye(3)
    to_centre[:2, 2] = centre
    from_centre[:2, 2] = -centre
    h = to_centre @ core @ from_centre
    return h / h[2, 2]


def drifting_homographies(
    count: int, size: tuple[int, int], rng: np.random.Generator, motion: Motion = Motion()
) -> list[np.ndarray]:
    """count homographies from frame 0 (identity first), a bounded random walk."""
    angle, log_scale = 0.0, 0.0
    shift, perspective = np.zeros(2), np.zeros(2)
    out = [np.eye(3)]
    width = size[0]
    for _ in range(count - 1):
        angle = np.clip(
            angle + rng.normal(0, motion.rotation_deg),
            -motion.max_rotation_deg,
            motion.max_rotation_deg,
        )
        log_scale = np.clip(
            log_scale + rng.normal(0, motion.log_scale), -motion.max_log_scale, motion.max_log_scale
        )
        limit = motion.max_translation * width
        shift = np.clip(shift + rng.normal(0, motion.translation * width, 2), -limit, limit)
        perspective = np.clip(
            perspective + rng.normal(0, motion.perspective, 2),
            -motion.max_perspective,
            motion.max_perspective,
        )
        out.append(homography_about_centre(angle, log_scale, shift, perspective, size))
    return out


def degrade(
    image: np.ndarray, rng: np.random.Generator, looks: Photometric = Photometric()
) -> np.ndarray:
    """Exposure, gamma, blur and noise at random: [H, W, 3] uint8 -> [H, W, 3] uint8."""
    import cv2

    pixels = image.astype(np.float32) / 255.0
    pixels = np.clip(pixels * rng.uniform(*looks.gain), 0.0, 1.0) ** rng.uniform(*looks.gamma)
    sigma = rng.uniform(*looks.blur_sigma)
    if sigma > 0.3:
        pixels = cv2.GaussianBlur(pixels, (0, 0), sigma)
    pixels = pixels * 255.0 + rng.normal(0, rng.uniform(*looks.noise_sigma), pixels.shape)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def source_canvas(photo: np.ndarray, size: tuple[int, int], margin: float = 0.3) -> np.ndarray:
    """The photo scaled so that it covers the frame size plus margin on every side."""
    import cv2

    width, height = size
    need = (width * (1 + 2 * margin), height * (1 + 2 * margin))
    scale = max(need[0] / photo.shape[1], need[1] / photo.shape[0])
    if abs(scale - 1.0) > 1e-3:
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        new_size = (round(photo.shape[1] * scale), round(photo.shape[0] * scale))
        photo = cv2.resize(photo, new_size, interpolation=interpolation)
    return photo


def render_sequence(
    canvas: np.ndarray, homographies: list[np.ndarray], size: tuple[int, int], seed: int
) -> list[np.ndarray]:
    """Frame i = canvas around its centre warped by homographies[i], degraded (not frame 0)."""
    import cv2

    rng = np.random.default_rng(seed + 1)
    width, height = size
    offset = np.eye(3)
    offset[:2, 2] = [-(canvas.shape[1] - width) / 2, -(canvas.shape[0] - height) / 2]
    frames = []
    for index, h in enumerate(homographies):
        frame = cv2.warpPerspective(
            canvas, h @ offset, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        frames.append(frame if index == 0 else degrade(frame, rng))
    return frames


def write_homographies(path: Path, stamps: list[int], homographies: list[np.ndarray]) -> None:
    """JSON: per frame its stamp (ns) and H (frame-0 pixels -> this frame's pixels)."""
    frames = [
        {"stamp_ns": int(s), "H": np.asarray(h, dtype=float).tolist()}
        for s, h in zip(stamps, homographies, strict=True)
    ]
    path.write_text(json.dumps({"format": FORMAT, "reference": "frame 0", "frames": frames}))


def load_homographies(path: Path) -> dict[int, np.ndarray]:
    """{stamp_ns: [3, 3] H to the first frame} from a file written by write_homographies."""
    try:
        document = json.loads(Path(path).read_text())
        frames = document["frames"]
        table = {int(f["stamp_ns"]): np.asarray(f["H"], dtype=np.float64) for f in frames}
    except OSError as error:
        raise ValueError(f"cannot read homographies {path}: {error.strerror}") from error
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"homographies {path} is not a homography file: {error}") from error
    bad = [s for s, h in table.items() if h.shape != (3, 3) or not np.isfinite(h).all()]
    if bad:
        raise ValueError(f"homographies {path}: not a finite 3 x 3 matrix at stamp(s) {bad[:5]}")
    return table


def write_bag(frames: list[np.ndarray], stamps: list[int], output: Path) -> None:
    """frames as sensor_msgs/Image rgb8 on /camera/image_raw in a new mcap bag."""
    from superglue_ros.io import images, rosbag

    typestore = rosbag.make_typestore()
    writer = rosbag.open_writer(output, "mcap")
    try:
        connection = writer.add_connection("/camera/image_raw", rosbag.IMAGE, typestore=typestore)
        for frame, stamp in zip(frames, stamps, strict=True):
            fields = images.image_fields(frame, stamp, "camera")
            rosbag.write_message(writer, typestore, connection, stamp, rosbag.IMAGE, fields)
    finally:
        writer.close()


def make_sequence(
    source: Path | None, count: int, size: tuple[int, int], seed: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(frames, homographies): a photo (or, source None, a procedural texture) seen drifting."""
    from superglue_ros.io import image_files

    rng = np.random.default_rng(seed)
    if source is None:
        canvas = procedural_texture(rng, (int(size[0] * 1.6), int(size[1] * 1.6)))
    else:
        photo = image_files.read_image(source)
        if photo.ndim == 2:
            photo = np.dstack([photo] * 3)
        canvas = source_canvas(photo, size)
    homographies = drifting_homographies(count, size, rng)
    return render_sequence(canvas, homographies, size, seed), homographies
