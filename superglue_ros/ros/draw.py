"""A picture of the current frame's matches to the newest keyframe (no rclpy needed)."""

from __future__ import annotations

import cv2
import numpy as np

from superglue_ros.pipeline.types import FrameResult


def _bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def draw_matches(
    frame_image: np.ndarray,
    result: FrameResult,
    keyframe_image: np.ndarray | None,
    keyframe_keypoints: np.ndarray | None,
    max_lines: int = 500,
) -> np.ndarray:
    """[H, W(+W'), 3] uint8 BGR: keyframe left, frame right, a line per match coloured by score.

    Without a keyframe image (or no keyframe yet) only the frame's keypoints are drawn.
    """
    frame = _bgr(frame_image)
    keypoints = np.asarray(result.features.keypoints, np.float32).reshape(-1, 2)
    have_keyframe = (
        keyframe_image is not None and keyframe_keypoints is not None and len(result.matches) > 0
    )
    if not have_keyframe:
        for x, y in keypoints:
            cv2.circle(frame, (round(x), round(y)), 2, (0, 255, 0), -1, cv2.LINE_AA)
        return frame
    left = _bgr(keyframe_image)
    height = max(left.shape[0], frame.shape[0])
    canvas = np.zeros((height, left.shape[1] + frame.shape[1], 3), np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = left
    canvas[: frame.shape[0], left.shape[1] :] = frame
    offset = left.shape[1]
    match = result.matches[0]
    order = np.argsort(-np.asarray(match.scores))[:max_lines]
    for i in order:
        score = float(match.scores[i])
        xk, yk = keyframe_keypoints[int(match.keyframe_indices[i])]
        xf, yf = keypoints[int(match.frame_indices[i])]
        colour = (0, int(255 * score), int(255 * (1.0 - score)))
        start, end = (round(xk), round(yk)), (round(xf) + offset, round(yf))
        cv2.line(canvas, start, end, colour, 1, cv2.LINE_AA)
        cv2.circle(canvas, start, 2, colour, -1, cv2.LINE_AA)
        cv2.circle(canvas, end, 2, colour, -1, cv2.LINE_AA)
    label = f"frame {result.frame_id} vs keyframe {match.keyframe_id}: {len(order)} matches"
    cv2.putText(canvas, label, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    return canvas
