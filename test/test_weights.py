"""Weights: strict loading, config inference, lookup order, hashes, download, CLI."""

from __future__ import annotations

import io
import json
import urllib.error

import pytest
import torch

from superglue_ros.models import weights as w
from superglue_ros.tools.cli import main


@pytest.fixture(scope="module")
def layout(fixtures_dir):
    return json.loads((fixtures_dir / "official_checkpoint_layout.json").read_text())


def random_state(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator)
    return state


@pytest.fixture
def no_weights_env(tmp_path, monkeypatch):
    """No $SUPERGLUE_ROS_WEIGHTS, an empty cache under tmp_path."""
    monkeypatch.delenv(w.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "superglue_ros"


def test_official_layout_loads_strictly_with_inferred_config(layout) -> None:
    superpoint = w.build_superpoint(random_state(layout["superpoint_v1"]))
    assert superpoint.conf["descriptor_dim"] == 256
    state = random_state(layout["superglue_indoor_and_outdoor"])
    conf = w.superglue_conf_from_state(state)
    assert conf["descriptor_dim"] == 256
    assert conf["keypoint_encoder"] == [32, 64, 128, 256]
    assert conf["GNN_layers"] == ["self", "cross"] * 9
    model = w.build_superglue(state)
    assert set(model.state_dict()) == set(state)
    assert not model.training


@pytest.mark.parametrize("problem", ["missing", "unexpected", "misshaped"])
def test_strict_loading_names_the_bad_key(layout, problem) -> None:
    state = random_state(layout["superglue_indoor_and_outdoor"])
    key = "gnn.layers.7.attn.proj.1.weight"
    if problem == "missing":
        del state[key]
    elif problem == "unexpected":
        state["gnn.layers.7.attn.extra"] = torch.zeros(3)
        key = "gnn.layers.7.attn.extra"
    else:
        state[key] = torch.zeros(256, 128, 1)
    with pytest.raises(
        w.WeightsMismatchError, match=problem.replace("misshaped", "mis-shaped")
    ) as error:
        # the config comes from the layout's own sizes, so only the bad key is wrong
        w.build_superglue(
            state, w.superglue_conf_from_state(random_state(layout["superglue_indoor_and_outdoor"]))
        )
    assert key in str(error.value)


def test_superpoint_missing_key_is_named(layout) -> None:
    state = random_state(layout["superpoint_v1"])
    del state["convPb.bias"]
    with pytest.raises(w.WeightsMismatchError, match="convPb.bias"):
        w.build_superpoint(state)


def test_git_blob_sha1() -> None:
    # `printf 'hello\n' | git hash-object --stdin`
    assert w.git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_lookup_order_explicit_env_cache(tmp_path, monkeypatch, no_weights_env) -> None:
    explicit, env = tmp_path / "explicit", tmp_path / "env"
    for directory in (explicit, env, no_weights_env):
        directory.mkdir(parents=True)
    table = {"superpoint_v1.pth": w.git_blob_sha1(b"cache")}
    (no_weights_env / "superpoint_v1.pth").write_bytes(b"cache")
    name = "superpoint_v1.pth"
    assert w.find_weights(name, explicit, expected=table) == no_weights_env / name
    monkeypatch.setenv(w.ENV_VAR, str(env))
    (env / name).write_bytes(b"env: any bytes, not hash-checked")
    assert w.find_weights(name, explicit, expected=table) == env / name
    (explicit / name).write_bytes(b"explicit: any bytes")
    assert w.find_weights(name, explicit, expected=table) == explicit / name
    assert w.find_weights(name, explicit / name) == explicit / name  # a file path


def test_not_found_names_every_place_and_how_to_get_it(
    tmp_path, monkeypatch, no_weights_env
) -> None:
    monkeypatch.setenv(w.ENV_VAR, str(tmp_path / "env_dir"))
    with pytest.raises(w.WeightsNotFoundError) as error:
        w.load_superglue("outdoor", tmp_path / "given")
    message = str(error.value)
    assert isinstance(error.value, FileNotFoundError)
    for text in (
        str(tmp_path / "given" / "superglue_outdoor.pth"),
        str(tmp_path / "env_dir" / "superglue_outdoor.pth"),
        str(no_weights_env / "superglue_outdoor.pth"),
        "superglue-ros weights download",
        w.BASE_URL + "superglue_outdoor.pth",
        "non-commercial",
    ):
        assert text in message


def fake_opener(files: dict[str, bytes], calls: list[str]):
    def opener(url: str):
        calls.append(url)
        name = url.rsplit("/", 1)[-1]
        if name not in files:
            raise urllib.error.URLError("no route to host")
        return io.BytesIO(files[name])

    return opener


def test_download_verifies_and_replaces_a_corrupt_cache_file(no_weights_env) -> None:
    good = b"pretend checkpoint bytes" * 100
    table = {"superglue_indoor.pth": w.git_blob_sha1(good)}
    calls: list[str] = []
    opener = fake_opener({"superglue_indoor.pth": good}, calls)
    cached = no_weights_env / "superglue_indoor.pth"
    no_weights_env.mkdir(parents=True)
    cached.write_bytes(good[:100])  # a partial download
    with pytest.raises(w.CorruptWeightsError, match="corrupt"):
        w.find_weights("superglue_indoor.pth", expected=table)
    [path] = w.download_weights(expected=table, opener=opener, base_url="https://x/", log=str)
    assert path == cached and cached.read_bytes() == good
    assert calls == ["https://x/superglue_indoor.pth"]
    assert w.find_weights("superglue_indoor.pth", expected=table) == cached
    w.download_weights(expected=table, opener=opener, log=str)  # verified: not fetched again
    assert len(calls) == 1
    assert [p.name for p in no_weights_env.iterdir()] == ["superglue_indoor.pth"]


def test_download_from_file_url(tmp_path, no_weights_env) -> None:
    source = tmp_path / "mirror"
    source.mkdir()
    content = b"\x00\x01 weights" * 1000
    (source / "superpoint_v1.pth").write_bytes(content)
    table = {"superpoint_v1.pth": w.git_blob_sha1(content)}
    [path] = w.download_weights(expected=table, base_url=source.as_uri() + "/", log=str)
    assert path.read_bytes() == content


def test_bad_download_leaves_nothing_and_offline_says_what_to_do(tmp_path) -> None:
    table = {"superpoint_v1.pth": w.git_blob_sha1(b"the real bytes")}
    target = tmp_path / "dir"
    opener = fake_opener({"superpoint_v1.pth": b"tampered bytes"}, [])
    with pytest.raises(w.WeightsNotFoundError, match="corrupt"):
        w.download_weights(None, target, expected=table, opener=opener, log=str)
    assert list(target.iterdir()) == []
    with pytest.raises(w.WeightsNotFoundError) as error:
        w.download_weights(None, target, expected=table, opener=fake_opener({}, []), log=str)
    assert "no route to host" in str(error.value)
    assert str(target) in str(error.value) and w.BASE_URL in str(error.value)
    assert list(target.iterdir()) == []


def test_nothing_downloads_when_building_or_loading(tmp_path, monkeypatch, layout) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("network used")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    torch.save(random_state(layout["superpoint_v1"]), tmp_path / "superpoint_v1.pth")
    model = w.load_superpoint(tmp_path, {"max_keypoints": 5})
    assert model.conf["max_keypoints"] == 5


def test_weights_cli_where_and_verify(tmp_path, capsys, no_weights_env) -> None:
    (tmp_path / "superpoint_v1.pth").write_bytes(b"not the released file")
    assert main(["weights", "where", "--dir", str(tmp_path)]) == 1  # two files missing
    out = capsys.readouterr().out
    assert f"{tmp_path / 'superpoint_v1.pth'} (explicit): present  <- used" in out
    assert str(no_weights_env / "superglue_indoor.pth") in out
    assert w.BASE_URL + "superglue_indoor.pth" in out
    assert main(["weights", "verify", "--dir", str(tmp_path), "--name", "superpoint_v1.pth"]) == 1
    assert "DIFFERS from the released file" in capsys.readouterr().out
    assert main(["weights", "verify", "--name", "nope.pth"]) == 2


def test_load_checkpoint_refuses_corrupt_and_foreign_files(tmp_path) -> None:
    """A damaged download or a file of something else is a clear error naming the file."""
    from superglue_ros.models.weights import WeightsMismatchError, load_checkpoint

    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip" * 10)
    with pytest.raises(WeightsMismatchError, match="corrupt.pth is not a readable PyTorch"):
        load_checkpoint(corrupt)
    truncated = tmp_path / "truncated.pth"
    torch.save({"w": torch.ones(1000)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:500])
    with pytest.raises(WeightsMismatchError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pth"
    torch.save({"epoch": 3, "w": torch.ones(2)}, foreign)
    with pytest.raises(WeightsMismatchError, match="does not hold a state dict of tensors"):
        load_checkpoint(foreign)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"w": torch.arange(3.0)}}, wrapped)
    assert torch.equal(load_checkpoint(wrapped)["w"], torch.arange(3.0))
