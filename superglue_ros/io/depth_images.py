"""Depth images from sensor_msgs/Image: 16UC1 (millimetres) and 32FC1 (metres), REP 118.

The node and replay decode depth messages here, as they decode camera images
with :func:`superglue_ros.io.images.decode_image`. A bad message raises
BadImageError with a kind counted in diagnostics, like a bad camera image.
"""

from __future__ import annotations

import array
from typing import Any

import numpy as np

from superglue_ros.pipeline.types import DepthImage

from .images import BadImageError

# encoding -> little-endian dtype of one pixel; mono16 is how some drivers send 16UC1.
DEPTH_ENCODINGS = {"16UC1": "<u2", "mono16": "<u2", "32FC1": "<f4"}


def _data(msg: Any) -> np.ndarray:
    data = msg.data
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    if isinstance(data, (bytes, bytearray, memoryview, array.array)):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8).reshape(-1)


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
    data = _data(msg)
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
