"""matcher_node over real DDS on the exported SuperPoint + SuperGlue ONNX graphs (the torch
end-to-end run is in test_node_backends.py)."""

from __future__ import annotations

import pytest

from ros_helpers import (
    NodeProcess,
    probe,  # noqa: F401  (fixture)
    publish_lockstep,
    reliable,
    sequence_frames,
    wait_subscribed,
    wait_until,
)

pytestmark = pytest.mark.slow


def test_node_runs_the_onnx_graphs(ros_env, tmp_path, probe) -> None:  # noqa: F811
    """runtime onnxruntime in the node: graphs exported by the CLI, matched over DDS, and
    the same matches as the pipeline on torch for the same frames."""
    pytest.importorskip("onnxruntime", reason="runtime onnxruntime needs onnxruntime")
    import numpy as np
    import superglue_ros_msgs.msg as msgs
    from sensor_msgs.msg import Image

    from superglue_ros.io.yaml_files import dump_params_file
    from superglue_ros.pipeline import Pipeline
    from superglue_ros.tools.cli import main

    from conftest import SHARED
    from model_weights import write_small_checkpoints

    weights = write_small_checkpoints(tmp_path / "weights", SHARED / "fixtures")
    pipeline_params = {
        "frontend": "superpoint",
        "matcher": "superglue",
        "device": "cpu",
        "weights_dir": str(weights),
        "superpoint.max_keypoints": 128,
        "superglue.sinkhorn_iterations": 10,
        "max_image_side": 320,
    }
    params_file = dump_params_file(tmp_path / "export.yaml", pipeline_params)
    onnx_dir = tmp_path / "onnx"
    assert main(["export", "onnx", "--out", str(onnx_dir), "--params", str(params_file)]) == 0
    frames, stamps, _ = sequence_frames(4)
    params = {
        **pipeline_params,
        "runtime": "onnxruntime",
        "onnx_dir": str(onnx_dir),
        "image_reliability": "reliable",
        "image_qos_depth": 5,
    }
    corrs = probe.collect("correspondences", msgs.Correspondences, reliable(100))
    image_pub = probe.publisher("image", Image, reliable(5))
    with NodeProcess(ros_env, tmp_path, params) as node:
        wait_subscribed(image_pub, node, timeout=120)
        wait_until(lambda: probe.node.count_publishers("correspondences") > 0, 10, "publishers")
        publish_lockstep(node, image_pub, corrs, frames, stamps, timeout=60)
        assert "onnxruntime" in node.output()
        code, _ = node.interrupt()
        assert code == 0, node.output()
    reference = Pipeline.from_params(pipeline_params)
    for corr, frame, stamp in zip(corrs, frames, stamps, strict=True):
        expected = reference.process(frame, stamp)
        assert corr.is_keyframe == expected.is_keyframe
        assert len(corr.features.scores) == len(expected.features) > 0
        assert [m.keyframe_id for m in corr.matches] == [m.keyframe_id for m in expected.matches]
        for received, match in zip(corr.matches, expected.matches, strict=True):
            np.testing.assert_array_equal(received.frame_indices, match.frame_indices)
            np.testing.assert_array_equal(received.keyframe_indices, match.keyframe_indices)
    assert sum(len(m.frame_indices) for c in corrs for m in c.matches) > 0
