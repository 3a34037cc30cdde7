"""The node tests' own image message helper (the baseline's end-to-end run over DDS is in
test_node_backends.py)."""

from __future__ import annotations

import numpy as np
import pytest

from ros_helpers import (
    image_msg,
    probe,  # noqa: F401  (fixture)
    stamp_ns,
)

pytestmark = pytest.mark.slow


def test_image_message_helper_matches_the_frame() -> None:
    """The test's own publisher helper sends what it is given (guards the checks above)."""
    pytest.importorskip("sensor_msgs")
    from superglue_ros.io.images import image_to_array

    frame = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = image_msg(frame, 5_000_000_007)
    np.testing.assert_array_equal(image_to_array(msg), frame)
    assert stamp_ns(msg.header.stamp) == 5_000_000_007
