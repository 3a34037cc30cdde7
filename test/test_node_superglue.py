"""matcher_node over real DDS with SuperPoint + SuperGlue, weights written by the model
tests' helper (fixture/random weights: the computation is real, the matches are not good)."""

from __future__ import annotations

import time

import pytest

from model_weights import write_test_checkpoints
from ros_helpers import (
    NodeProcess,
    camera_info_msg,
    check_frame_outputs,
    diagnostics_values,
    probe,  # noqa: F401  (fixture)
    publish_lockstep,
    reliable,
    sequence_frames,
    wait_subscribed,
    wait_until,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def weights_dir(tmp_path, fixtures_dir):
    return write_test_checkpoints(tmp_path / "weights", fixtures_dir)


def test_superpoint_superglue_end_to_end(ros_env, tmp_path, probe, weights_dir) -> None:  # noqa: F811
    import superglue_ros_msgs.msg as msgs
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, Image, PointCloud

    frames, stamps, camera_yaml = sequence_frames(6)
    info = camera_info_msg(camera_yaml, frames[0].shape[1], frames[0].shape[0])
    params = {
        "frontend": "superpoint",
        "matcher": "superglue",
        "weights_dir": str(weights_dir),
        "device": "cpu",
        "superpoint.max_keypoints": 256,
        "superglue.sinkhorn_iterations": 10,
        "max_image_side": 320,
        "image_reliability": "reliable",
        "image_qos_depth": 5,
        "diagnostics_period": 0.2,
    }
    corrs = probe.collect("correspondences", msgs.Correspondences, reliable(100))
    keyframes = probe.collect("keyframes", msgs.Correspondences, reliable(100, True))
    vins = probe.collect("features_vins", PointCloud, reliable(100))
    diagnostics = probe.collect("/diagnostics", DiagnosticArray, reliable(100))
    image_pub = probe.publisher("image", Image, reliable(5))
    info_pub = probe.publisher("camera_info", CameraInfo, reliable(5))
    with NodeProcess(ros_env, tmp_path, params) as node:
        wait_subscribed(image_pub, node, timeout=120)
        wait_until(lambda: probe.node.count_publishers("correspondences") > 0, 10, "publishers")
        # camera_info is another topic: make sure the node knows K before the first frame
        wait_until(lambda: info_pub.get_subscription_count() > 0, 10, "camera_info sub", node)
        info_pub.publish(info)
        time.sleep(0.5)
        seconds = publish_lockstep(
            node, image_pub, corrs, frames, stamps, info_pub, info, timeout=60
        )
        wait_until(lambda: len(vins) >= len(frames), 10, "features_vins", node)
        check_frame_outputs(corrs, keyframes, stamps, vins, info)
        assert all(c.features.descriptor_dim == 256 for c in corrs)
        assert all(len(c.features.descriptors) == 256 * len(c.features.scores) for c in corrs)
        assert all(0 < len(c.features.scores) <= 256 for c in corrs)
        wait_until(
            lambda: "superglue" in diagnostics_values(diagnostics).get("backend", ""), 5, "diag"
        )
        values = diagnostics_values(diagnostics)
        print(
            f"superpoint+superglue on CPU: {[round(s, 2) for s in seconds]} s per frame; {values}"
        )
        code, elapsed = node.interrupt()
        assert code == 0, node.output()
        assert elapsed < 5.0


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
