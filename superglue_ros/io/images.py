"""The one decoder of sensor_msgs Image / CompressedImage, and the image message writer.

The node, ``replay`` and ``play`` all turn image messages into numpy arrays with
:func:`decode_image`, so an offline replay sees exactly the pixels the live
node would. Only message attributes are read (``encoding``, ``height``,
``width``, ``step``, ``data``, ``format``), so rclpy messages, rosbags
dataclasses and test doubles all work.

Every rejected image raises :class:`BadImageError` with a short ``kind`` (a stable
key for counting in diagnostics) and a ``reason`` for the log. It is a
ValueError, so callers that skip bad frames catch one exception type.

Accepted raw encodings are the ROS spellings (case matters, as in
``sensor_msgs/image_encodings.hpp``): mono8, mono16, rgb8, bgr8, rgba8, bgra8,
and the generic 8UC1 (gray) and 8UC3 (OpenCV's BGR order). 16-bit pixels keep
their top byte. Data must fill ``height`` rows of ``step`` bytes (the last
row's padding may be missing) and no more. Compressed images must say jpeg or
png in ``format``; compressedDepth is refused (a depth map, not a camera image).
Depth images (RGB-D input) are decoded by :func:`decode_depth`: 16UC1 (or mono16)
millimetres and 32FC1 metres, as REP 118 has them.
"""

from __future__ import annotations

import array
from typing import Any

import cv2
import numpy as np

from superglue_ros.pipeline.types import DepthImage

from .stamps import header_fields

# encoding -> (channels, bytes per channel)
RAW_ENCODINGS: dict[str, tuple[int, int]] = {
    "mono8": (1, 1),
    "mono16": (1, 2),
    "rgb8": (3, 1),
    "bgr8": (3, 1),
    "rgba8": (4, 1),
    "bgra8": (4, 1),
    "8UC1": (1, 1),
    "8UC3": (3, 1),
}
# Encodings whose colour channels come blue first (OpenCV's order for generic 8UC3).
BGR_ORDER = frozenset({"bgr8", "bgra8", "8UC3"})
COMPRESSED_FORMATS = ("jpeg", "jpg", "png")

# Kinds of bad input, as counted in diagnostics.
BAD_INPUT_KINDS = (
    "unsupported_encoding",
    "empty_image",
    "bad_step",
    "truncated_data",
    "oversized_data",
    "corrupt_compressed",
)


class BadImageError(ValueError):
    """An image message that cannot be used; ``kind`` is one of BAD_INPUT_KINDS."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


def _as_bytes(data: Any) -> np.ndarray:
    """A message's uint8[] field (array.array, bytes, numpy array or list) as a flat uint8 view."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype.itemsize == 1 else data.view(np.uint8)
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8).reshape(-1)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """16-bit intensities to 8 bits (the top byte, as cv_bridge's mono16 -> mono8 does)."""
    if image.dtype == np.uint8:
        return image
    return (image >> 8).astype(np.uint8)


def image_to_array(msg: Any) -> np.ndarray:
    """sensor_msgs/Image -> [H, W] uint8 gray or [H, W, 3] uint8 RGB (a copy).

    Checks the encoding, the size, the row step and the data length; raises
    BadImageError naming the problem. mono16 keeps its top 8 bits and honours
    ``is_bigendian``; alpha channels are dropped; bgr is reordered to rgb.
    """
    encoding = str(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if encoding not in RAW_ENCODINGS:
        raise BadImageError(
            "unsupported_encoding",
            f"encoding {encoding!r} is not one of {', '.join(RAW_ENCODINGS)}",
        )
    if height == 0 or width == 0:
        raise BadImageError("empty_image", f"image is {width}x{height} pixels")
    channels, depth = RAW_ENCODINGS[encoding]
    row_bytes = width * channels * depth
    if step < row_bytes or step % depth:
        raise BadImageError(
            "bad_step",
            f"step {step} does not fit {width} px of {encoding} ({row_bytes} bytes a row)",
        )
    data = _as_bytes(msg.data)
    # The last row's padding is sometimes left out; everything else must be there.
    needed = (height - 1) * step + row_bytes
    if data.size < needed:
        raise BadImageError(
            "truncated_data",
            f"{data.size} bytes of data, {height} rows of step {step} need {height * step}",
        )
    if data.size > height * step:
        raise BadImageError(
            "oversized_data",
            f"{data.size} bytes of data, {height} rows of step {step} are {height * step}",
        )
    rows = np.lib.stride_tricks.as_strided(data, shape=(height, row_bytes), strides=(step, 1))
    rows = np.array(rows)  # contiguous copy: never keep a view of the message buffer
    if depth == 2:
        dtype = np.dtype(">u2") if bool(getattr(msg, "is_bigendian", False)) else np.dtype("<u2")
        pixels = rows.view(dtype).astype(np.uint16)
    else:
        pixels = rows
    pixels = _to_uint8(pixels.reshape(height, width, channels))
    if channels == 1:
        return np.ascontiguousarray(pixels[:, :, 0])
    if encoding in BGR_ORDER:
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return np.ascontiguousarray(pixels[:, :, :3])


def compressed_to_array(msg: Any) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg or png) -> [H, W] uint8 gray or [H, W, 3] uint8 RGB."""
    fmt = str(msg.format).lower()
    # image_transport writes e.g. "bgr8; jpeg compressed bgr8"; plain "jpeg"/"png" also occur.
    if "compresseddepth" in fmt or not any(name in fmt for name in COMPRESSED_FORMATS):
        raise BadImageError(
            "unsupported_encoding", f"compressed format {msg.format!r} is not jpeg or png"
        )
    data = _as_bytes(msg.data)
    if data.size == 0:
        raise BadImageError("empty_image", "compressed image has no data")
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as error:
        raise BadImageError("corrupt_compressed", f"cannot decode: {error}") from error
    if image is None or image.size == 0:
        reason = f"cannot decode {data.size} bytes as {msg.format!r}"
        raise BadImageError("corrupt_compressed", reason)
    image = _to_uint8(image)
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    if image.shape[2] == 1:
        return np.ascontiguousarray(image[:, :, 0])
    return np.ascontiguousarray(image[:, :, 2::-1])  # BGR(A) -> RGB


def decode_image(msg: Any) -> np.ndarray:
    """sensor_msgs/Image or CompressedImage -> [H, W] uint8 gray or [H, W, 3] uint8 RGB.

    A message with a ``format`` field is a CompressedImage. Raises BadImageError.
    """
    if hasattr(msg, "format"):
        return compressed_to_array(msg)
    return image_to_array(msg)


# encoding -> little-endian dtype of one pixel; mono16 is how some drivers send 16UC1.
DEPTH_ENCODINGS = {"16UC1": "<u2", "mono16": "<u2", "32FC1": "<f4"}


def decode_depth(msg: Any) -> DepthImage:
    """sensor_msgs/Image (16UC1 / mono16 millimetres, 32FC1 metres) -> DepthImage (a copy).

    Raises BadImageError naming the problem (encoding, size, step, data length).
    """
    encoding = str(msg.encoding)
    if encoding not in DEPTH_ENCODINGS:
        raise BadImageError(
            "unsupported_encoding",
            f"depth encoding {encoding!r} is not one of {', '.join(DEPTH_ENCODINGS)}",
        )
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise BadImageError("empty_image", f"depth image is {width}x{height} pixels")
    dtype = np.dtype(DEPTH_ENCODINGS[encoding])
    if bool(getattr(msg, "is_bigendian", False)):
        dtype = dtype.newbyteorder(">")
    row_bytes = width * dtype.itemsize
    if step < row_bytes:
        raise BadImageError(
            "bad_step", f"step {step} does not fit {width} px of {encoding} ({row_bytes} bytes)"
        )
    data = _as_bytes(msg.data)
    if data.size < (height - 1) * step + row_bytes:
        raise BadImageError(
            "truncated_data", f"{data.size} bytes of depth, {height} rows of step {step}"
        )
    if data.size > height * step:
        raise BadImageError(
            "oversized_data", f"{data.size} bytes of depth, {height} rows of step {step}"
        )
    rows = np.lib.stride_tricks.as_strided(data, shape=(height, row_bytes), strides=(step, 1))
    pixels = np.array(rows).view(dtype).reshape(height, width)
    native = np.uint16 if dtype.kind == "u" else np.float32
    return DepthImage(pixels.astype(native))


def array_to_image_fields(image: np.ndarray, encoding: str | None = None) -> dict[str, Any]:
    """uint8 [H, W] or [H, W, C] array -> sensor_msgs/Image fields (header left out).

    encoding defaults to mono8 for 2-D arrays and rgb8 / rgba8 for 3 / 4 channels.
    """
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if encoding is None:
        encoding = "mono8" if image.ndim == 2 else {3: "rgb8", 4: "rgba8"}[image.shape[2]]
    channels, depth = RAW_ENCODINGS[encoding]
    if depth != 1 or (image.ndim == 2) != (channels == 1):
        raise ValueError(f"a {image.shape} uint8 array cannot be sent as {encoding}")
    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    return {
        "height": height,
        "width": width,
        "encoding": encoding,
        "is_bigendian": 0,
        "step": width * channels,
        "data": image.reshape(-1),
    }


def image_fields(image: np.ndarray, stamp_ns: int, frame_id: str) -> dict[str, Any]:
    """sensor_msgs/Image fields with header of [H, W] uint8 gray (mono8) or [H, W, 3] RGB (rgb8)."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.shape[2:] not in ((), (3,)):
        raise ValueError(f"expected a uint8 gray or RGB image, got {image.dtype} {image.shape}")
    return {"header": header_fields(stamp_ns, frame_id), **array_to_image_fields(image)}


def depth_image_fields(depth: np.ndarray, stamp_ns: int, frame_id: str) -> dict[str, Any]:
    """sensor_msgs/Image fields with header of [H, W] uint16 depth (16UC1, millimetres)."""
    if depth.dtype != np.uint16 or depth.ndim != 2:
        raise ValueError(f"expected a uint16 [H, W] depth image, got {depth.dtype} {depth.shape}")
    depth = np.ascontiguousarray(depth, dtype="<u2")
    height, width = depth.shape
    return {
        "header": header_fields(stamp_ns, frame_id),
        "height": height,
        "width": width,
        "encoding": "16UC1",
        "is_bigendian": 0,
        "step": 2 * width,
        "data": depth.view(np.uint8).reshape(-1),
    }


def compressed_image_fields(image: np.ndarray, fmt: str = "jpeg") -> dict[str, Any]:
    """sensor_msgs/CompressedImage fields (header left out) of a uint8 gray or RGB image."""
    if fmt not in ("jpeg", "png"):
        raise ValueError(f"compressed format must be jpeg or png, got {fmt!r}")
    bgr = image if image.ndim == 2 else image[:, :, ::-1]
    ok, data = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", np.ascontiguousarray(bgr))
    if not ok:
        raise ValueError(f"cannot encode a {image.dtype} {image.shape} image as {fmt}")
    return {"format": fmt, "data": data.reshape(-1)}
