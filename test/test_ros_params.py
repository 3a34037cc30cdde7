"""Parameter files, descriptors and the launch file, without DDS."""

from __future__ import annotations

import ast
import importlib.util
import py_compile
import re

import pytest

from superglue_ros.io.yaml_files import load_params_file
from superglue_ros.pipeline.params import PIPELINE_PARAMS, validate
from superglue_ros.ros.params import (
    ALL_SPECS,
    NODE_SPECS,
    check_runtime_change,
    split,
)

from conftest import PROJECT_ROOT

CONFIG = PROJECT_ROOT / "config"
LAUNCH = PROJECT_ROOT / "launch" / "matcher.launch.py"
CONFIG_FILES = sorted(CONFIG.glob("*.yaml"))


def test_config_files_exist() -> None:
    names = {p.name for p in CONFIG_FILES}
    assert {"matcher.yaml", "indoor.yaml", "outdoor.yaml", "fast_cpu.yaml"} <= names


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_every_config_file_is_valid(path) -> None:
    values = load_params_file(path)
    unknown = set(values) - set(ALL_SPECS)
    assert not unknown, f"{path.name}: unknown parameters {unknown}"
    settings = split(values)
    validate(settings.pipeline)
    for name, value in settings.node.items():
        from superglue_ros.pipeline.params import check_value

        check_value(NODE_SPECS[name], value)


def test_matcher_yaml_documents_every_parameter_with_its_default() -> None:
    path = CONFIG / "matcher.yaml"
    values = load_params_file(path)
    # loop_closure.enabled's default depends on the map parameters: a value in the file
    # (which the launch file loads) would always count as given; it is in a comment
    dependent = {"loop_closure.enabled"}
    assert set(values) == set(ALL_SPECS) - dependent, set(ALL_SPECS) ^ set(values)
    assert "      # enabled: false" in path.read_text()
    for name, spec in ALL_SPECS.items():
        if name in dependent:
            continue
        assert values[name] == spec.default, f"{name}: {values[name]!r} != {spec.default!r}"
    # every key line is directly preceded by a comment (or is a group heading)
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^(\s+)([\w.]+):\s*(\S.*)?$", line)
        if not match or match.group(3) is None or match.group(2) == "ros__parameters":
            continue
        assert lines[i - 1].strip().startswith("#"), f"undocumented: {line.strip()}"


def test_presets_differ_from_the_defaults() -> None:
    fast = load_params_file(CONFIG / "fast_cpu.yaml")
    assert fast["superpoint.max_keypoints"] < ALL_SPECS["superpoint.max_keypoints"].default
    assert (
        fast["superglue.sinkhorn_iterations"] < ALL_SPECS["superglue.sinkhorn_iterations"].default
    )
    assert load_params_file(CONFIG / "outdoor.yaml")["superglue.weights"] == "outdoor"
    assert load_params_file(CONFIG / "indoor.yaml")["superglue.weights"] == "indoor"


def test_presets_name_scenes_and_leave_the_networks_to_what_is_installed() -> None:
    """indoor and outdoor run whatever networks are installed (auto), so they work without
    the research-only weights; fast_cpu runs the fastest pipeline on a CPU (ORB)."""
    presets = {p.stem for p in CONFIG_FILES} - {"matcher"}
    assert presets == {"indoor", "outdoor", "fast_cpu"}  # no preset named after a network
    for scene in ("indoor", "outdoor"):
        values = load_params_file(CONFIG / f"{scene}.yaml")
        assert (values["frontend"], values["matcher"]) == ("auto", "auto"), scene
        # thresholds for both networks auto may choose
        assert {"superpoint.max_keypoints", "aliked.max_keypoints"} <= set(values), scene
    fast = load_params_file(CONFIG / "fast_cpu.yaml")
    assert (fast["frontend"], fast["matcher"]) == ("orb", "mnn")
    for doc in (PROJECT_ROOT / "README.md", PROJECT_ROOT / "docs" / "ros.md", LAUNCH):
        assert "preset:=lightglue" not in doc.read_text(), doc


def test_runtime_changes() -> None:
    assert check_runtime_change("keyframes.min_matches", 10) == (10, "")
    value, reason = check_runtime_change("keyframes.min_match_ratio", 2.0)
    assert value is None and "keyframes.min_match_ratio" in reason
    value, reason = check_runtime_change("frontend", "orb")
    assert value is None and "read-only" in reason
    assert check_runtime_change("use_sim_time", True) == (True, "")
    runtime = {s.name for s in PIPELINE_PARAMS if s.runtime}
    assert runtime and all(check_runtime_change(n, ALL_SPECS[n].default)[1] == "" for n in runtime)


def test_descriptors_carry_ranges_and_read_only() -> None:
    pytest.importorskip("rcl_interfaces", reason="needs ROS 2 messages (make test installs them)")
    from rcl_interfaces.msg import ParameterType

    from superglue_ros.ros.params import descriptor_for

    d = descriptor_for(ALL_SPECS["keyframes.min_match_ratio"])
    assert d.type == ParameterType.PARAMETER_DOUBLE and not d.read_only
    assert d.floating_point_range[0].from_value == 0.0 and d.floating_point_range[0].to_value == 1.0
    d = descriptor_for(ALL_SPECS["superpoint.max_keypoints"])
    assert d.read_only and d.integer_range[0].from_value == -1
    d = descriptor_for(ALL_SPECS["frontend"])
    assert "superpoint" in d.additional_constraints and d.description
    for spec in ALL_SPECS.values():
        assert descriptor_for(spec).description.startswith(spec.description)


def test_launch_file_compiles_and_declares_its_arguments() -> None:
    py_compile.compile(str(LAUNCH), doraise=True)
    tree = ast.parse(LAUNCH.read_text())
    declared = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", "") == "DeclareLaunchArgument"
        and node.args
        and isinstance(node.args[0], ast.Constant)  # names from a table are declared in a loop
    }
    wanted = {"image", "camera_info", "params_file", "weights_dir", "device", "precision"}
    assert wanted | {"namespace", "use_sim_time", "preset"} <= declared
    functions = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    for preset in ("indoor", "outdoor", "fast_cpu"):
        assert preset in LAUNCH.read_text() and (CONFIG / f"{preset}.yaml").is_file()


def test_launch_description_builds_where_launch_exists() -> None:
    if importlib.util.find_spec("launch_ros") is None:
        pytest.skip("launch_ros is not installed (no ROS 2 distribution here)")
    spec = importlib.util.spec_from_file_location("matcher_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert description.entities


def test_docs_list_every_parameter() -> None:
    text = (PROJECT_ROOT / "docs" / "ros.md").read_text()
    missing = [name for name in ALL_SPECS if f"`{name}`" not in text]
    assert not missing, f"docs/ros.md does not document {missing}"


def test_odometry_parameters_cover_the_backend_conf_with_its_defaults() -> None:
    """Drift: a back-end setting added to default_conf needs its row (description, range)."""
    from superglue_ros.odometry.backend import default_conf
    from superglue_ros.ros import odometry_params

    assert set(odometry_params._BACKEND) == set(default_conf)
    for name, default in default_conf.items():
        spec = odometry_params.ODOMETRY_SPECS["backend." + name]
        assert spec.default == default and type(spec.default) is type(default), name
        assert spec.description and not spec.runtime, name
        if not isinstance(default, str | bool):
            assert spec.min_value is not None and spec.min_value <= default <= spec.max_value
    text = (PROJECT_ROOT / "docs" / "ros.md").read_text()
    missing = [name for name in odometry_params.ODOMETRY_SPECS if f"`{name}`" not in text]
    assert not missing, f"docs/ros.md does not document {missing}"


def test_odometry_parameters_are_checked_with_the_backend_relations() -> None:
    from superglue_ros.pipeline.params import ParameterError
    from superglue_ros.ros.odometry_params import split

    node, conf = split({"world_frame": "map", "backend.window_keyframes": 5})
    assert node["world_frame"] == "map" and node["input_qos_depth"] == 100
    assert conf["window_keyframes"] == 5 and conf["robust_loss"] == "cauchy"
    with pytest.raises(ParameterError, match="backend.robust_loss"):
        split({"backend.robust_loss": "l2"})
    with pytest.raises(ParameterError, match="backend.min_pnp_inliers"):
        split({"backend.min_pnp_inliers": -1})
    with pytest.raises(ParameterError, match="unknown"):
        split({"backend.window": 5})
    with pytest.raises(ValueError, match="window_keyframes must exceed fixed_keyframes"):
        split({"backend.window_keyframes": 2, "backend.fixed_keyframes": 2})


def test_odometry_descriptors_say_range_and_read_only() -> None:
    pytest.importorskip("rcl_interfaces", reason="descriptors are rcl_interfaces messages")
    from superglue_ros.ros.odometry_params import ODOMETRY_SPECS
    from superglue_ros.ros.params import descriptor_for

    descriptor = descriptor_for(ODOMETRY_SPECS["backend.min_pnp_inliers"])
    assert descriptor.read_only and "Range [0, 100000]" in descriptor.description
    assert descriptor.integer_range[0].to_value == 100000
    assert "cauchy" in descriptor_for(ODOMETRY_SPECS["backend.robust_loss"]).description


def test_loop_closure_is_declared_on_when_the_node_is_given_a_map() -> None:
    from types import SimpleNamespace

    from superglue_ros.ros.params import with_override_defaults

    def declared_default(**given: object) -> object:
        overrides = {name.replace("__", "."): SimpleNamespace(value=v) for name, v in given.items()}
        node = SimpleNamespace(_parameter_overrides=overrides)
        return with_override_defaults(node)["loop_closure.enabled"].default

    assert declared_default() is False
    assert declared_default(map__save_path="") is False
    assert declared_default(map__save_path="/maps/lab.npz") is True
    assert declared_default(map__load_path="/maps/lab.npz") is True
    assert ALL_SPECS["loop_closure.enabled"].default is False  # the table is not changed
