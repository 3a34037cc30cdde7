"""The shared parameter schema: defaults, validation and params files."""

from __future__ import annotations

from pathlib import Path

import pytest

from superglue_ros.io.yaml_files import dump_params_file, load_params_file
from superglue_ros.pipeline.params import PIPELINE_SPECS, defaults, flatten, unflatten, validate


def test_every_default_passes_its_own_validation() -> None:
    assert validate({}) == defaults()


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("frontend", "akaze", "one of superpoint, aliked, disk, orb, sift"),
        ("keyframes.buffer_size", 0, "[1, 32]"),
        ("keyframes.buffer_size", 2.5, "must be an integer"),
        ("superglue.match_threshold", "high", "must be a number"),
        ("superglue.match_threshold", 1.5, "[0.0, 1.0]"),
        ("superpoint.max_keypoints", 0, "(or -1)"),
        ("precision", 16, "must be a string"),
        ("device", "tpu", "must be auto, cpu, cuda or cuda:N"),
        ("device", "cuda:x", "must be auto, cpu, cuda or cuda:N"),
    ],
)
def test_bad_values_name_the_parameter(name: str, value: object, fragment: str) -> None:
    with pytest.raises(ValueError) as error:
        validate({name: value})
    assert f"'{name}'" in str(error.value)
    assert fragment in str(error.value)


@pytest.mark.parametrize("frontend", ["orb", "sift", "superpoint", "aliked", "disk", "auto"])
def test_device_is_checked_whatever_the_frontend(frontend: str) -> None:
    with pytest.raises(ValueError, match="'device' must be auto, cpu, cuda or cuda:N; got 'tpu'"):
        validate({"frontend": frontend, "device": "tpu"})
    for device in ("auto", "cpu", "cuda", "cuda:0", "cuda:12"):
        assert validate({"frontend": frontend, "device": device})["device"] == device


def test_minus_one_means_all_keypoints_and_ints_widen_to_floats() -> None:
    values = validate({"superpoint.max_keypoints": -1, "keyframes.max_parallax_px": 10})
    assert values["superpoint.max_keypoints"] == -1
    assert isinstance(values["keyframes.max_parallax_px"], float)


def test_booleans_are_not_numbers() -> None:
    with pytest.raises(ValueError, match="must be an integer"):
        validate({"keyframes.min_matches": True})


def test_unknown_names_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown parameter.*keyframes.bufer_size"):
        validate({"keyframes.bufer_size": 3})


def test_only_thresholds_change_at_run_time() -> None:
    runtime = {name for name, spec in PIPELINE_SPECS.items() if spec.runtime}
    assert "keyframes.min_matches" in runtime
    assert "superglue.match_threshold" in runtime
    assert not runtime & {"frontend", "matcher", "device", "keyframes.buffer_size"}


def test_flatten_joins_nested_names() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}


def test_dumped_files_read_back(tmp_path: Path) -> None:
    values = {"frontend": "orb", "keyframes.min_matches": 12, "superglue.match_threshold": 0.3}
    assert unflatten(values)["keyframes"] == {"min_matches": 12}
    path = dump_params_file(tmp_path / "params.yaml", values)
    assert "ros__parameters" in path.read_text()
    assert load_params_file(path) == values


def test_ros_style_and_plain_files_read_the_same(tmp_path: Path) -> None:
    ros = tmp_path / "ros.yaml"
    ros.write_text("matcher_node:\n  ros__parameters:\n    keyframes:\n      min_matches: 12\n")
    plain = tmp_path / "plain.yaml"
    plain.write_text("keyframes:\n  min_matches: 12\n")
    assert load_params_file(ros) == load_params_file(plain) == {"keyframes.min_matches": 12}


def test_unreadable_and_malformed_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read parameters file"):
        load_params_file(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_params_file(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ValueError, match="mapping at the top level"):
        load_params_file(scalar)


def test_validate_returns_a_frozen_typed_config() -> None:
    from superglue_ros.pipeline.params import Config

    config = validate({"keyframes.min_matches": 12})
    assert isinstance(config, Config)
    with pytest.raises(TypeError):
        config["keyframes.min_matches"] = 13  # type: ignore[index]
    assert config.integer("keyframes.min_matches") == 12
    assert config.number("keyframes.max_parallax_px") == 40.0
    assert config.text("frontend") == "superpoint"
    with pytest.raises(TypeError, match="not a float"):
        config.number("keyframes.min_matches")  # a caller reading the wrong type is a bug
    # Checked once: a Config passed on is not validated again, it is the same object.
    assert validate(config) is config


def test_validate_names_every_bad_value_at_once() -> None:
    from superglue_ros.pipeline.params import ParameterError

    with pytest.raises(ParameterError) as error:
        validate({"frontend": "akaze", "keyframes.buffer_size": 0, "nope": 1})
    assert len(error.value.problems) == 3
    for name in ("frontend", "keyframes.buffer_size", "nope"):
        assert name in str(error.value)


def test_runtime_changes_are_checked_in_one_place() -> None:
    from superglue_ros.pipeline.params import check_runtime_changes

    config = validate({})
    changed = config.with_changes({"keyframes.min_matches": 5})
    assert changed["keyframes.min_matches"] == 5 and config["keyframes.min_matches"] == 80
    assert check_runtime_changes({"mnn.ratio_test": 1}) == {"mnn.ratio_test": 1.0}
    for changes, message in [
        ({"keyframes.buffer_size": 8}, "read-only"),
        ({"nope": 1}, "unknown parameter"),
        ({"superglue.match_threshold": 2.0}, r"\[0.0, 1.0\]"),
    ]:
        with pytest.raises(ValueError, match=message):
            config.with_changes(changes)
        with pytest.raises(ValueError, match=message):
            check_runtime_changes(changes)


def test_component_defaults_come_from_the_table() -> None:
    from superglue_ros.pipeline.keyframes import POLICY_PARAMS, KeyframePolicy

    policy = KeyframePolicy()
    for name, attribute in POLICY_PARAMS.items():
        assert getattr(policy, attribute) == PIPELINE_SPECS[name].default
    assert KeyframePolicy.from_config(validate({})) == policy
    tuned = KeyframePolicy.from_config(validate({"keyframes.min_matches": 7}))
    assert tuned.min_matches == 7
