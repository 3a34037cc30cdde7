"""Finding, verifying, downloading and strictly loading the released weights.

The released checkpoints (Magic Leap's SuperGluePretrainedNetwork; **non-commercial
research use only** under Magic Leap's licence) are plain state dicts:

* ``superpoint_v1.pth`` - SuperPoint,
* ``superglue_indoor.pth`` / ``superglue_outdoor.pth`` - SuperGlue (one layout).

Where a file is looked for, in this order:

1. an explicit file or directory (the ``weights_dir`` parameter, ``--dir``),
2. the directory in ``$SUPERGLUE_ROS_WEIGHTS``,
3. the user cache, ``$XDG_CACHE_HOME/superglue_ros`` (``~/.cache/superglue_ros``),
   which is where ``superglue-ros weights download`` puts them.

Hash policy: files in the user cache were put there by our downloader, so a
released name there must have the released git-blob SHA-1; a mismatch (a partial
or corrupt download) is an error on load and is replaced by ``weights download``.
Files in an explicit directory or ``$SUPERGLUE_ROS_WEIGHTS`` are the user's own
(fine-tuned or test checkpoints may carry the released names) and load without
a hash check; ``weights verify`` reports whether they are the released files.
Every file, wherever it comes from, loads strictly: each missing, unexpected or
mis-shaped key is an error that names the key.

Nothing here touches the network unless ``download_weights`` is called.
"""

from __future__ import annotations

import hashlib
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
from torch import nn

from superglue_ros.models.superglue import SuperGlue
from superglue_ros.models.superpoint import SuperPoint

SUPERPOINT_FILE = "superpoint_v1.pth"
SUPERGLUE_FILES = {"indoor": "superglue_indoor.pth", "outdoor": "superglue_outdoor.pth"}

#: git-blob SHA-1 (sha1 of b"blob <size>\\0" + content) of each released file.
RELEASED_SHA1: dict[str, str] = {
    "superpoint_v1.pth": "107a444ca318d487390137d619d49f2f0a3b1ad8",
    "superglue_indoor.pth": "2b54532f1b7321505cac79ee3a2863ef2ab2d163",
    "superglue_outdoor.pth": "5ca3392bd5349790d7bc1c246961fc041b88c1e8",
}
BASE_URL = "https://github.com/magicleap/SuperGluePretrainedNetwork/raw/master/models/weights/"
ENV_VAR = "SUPERGLUE_ROS_WEIGHTS"
LICENCE_NOTE = (
    "The released SuperPoint/SuperGlue weights are for non-commercial research use only "
    "(Magic Leap licence, see github.com/magicleap/SuperGluePretrainedNetwork)."
)

Opener = Callable[[str], IO[bytes]]


class WeightsNotFoundError(FileNotFoundError):
    """No usable weights file: the message names every place looked and how to get it."""


class CorruptWeightsError(WeightsNotFoundError):
    """A released-name file in the cache does not have the released hash."""


class WeightsMismatchError(ValueError):
    """A state dict does not fit the model: names every offending key."""


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


def how_to_get(name: str, directory: Path | None = None) -> str:
    """Instructions for obtaining a weights file, online or by hand."""
    target = directory or cache_dir()
    return (
        f"Get it with `superglue-ros weights download` (into {target}), or offline: fetch "
        f"{BASE_URL}{name} on another machine and copy it into {target}, into the directory "
        f"in ${ENV_VAR}, or into the directory given as weights_dir / --dir. {LICENCE_NOTE}"
    )


def find_weights(
    name: str,
    explicit: str | Path | None = None,
    *,
    expected: Mapping[str, str] = RELEASED_SHA1,
) -> Path:
    """Path of weights file ``name`` by the lookup order, or WeightsNotFoundError.

    explicit may be a file (used as is, whatever its name) or a directory. A
    released name found in the cache is hash-checked (CorruptWeightsError).
    """
    if explicit and Path(explicit).expanduser().is_file():
        return Path(explicit).expanduser()
    looked = []
    for place in search_places(explicit):
        path = place.directory / name
        looked.append(f"  {path} ({place.origin}): {'present' if path.is_file() else 'absent'}")
        if not path.is_file():
            continue
        if place.verified and name in expected:
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


def verify_file(path: Path, expected: Mapping[str, str] = RELEASED_SHA1) -> str:
    """'ok', 'mismatch' (not the released bytes), 'unknown' (name not released), 'missing'."""
    if not path.is_file():
        return "missing"
    if path.name not in expected:
        return "unknown"
    return "ok" if git_blob_sha1(path) == expected[path.name] else "mismatch"


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
    """Download released files into directory (default: the user cache).

    A file already there with the expected hash is kept (unless force); a
    corrupt or partial one is replaced. Each file is written to a temporary
    file in the same directory, its hash checked, then renamed into place, so a
    failed download never leaves a file under the real name. Raises
    WeightsNotFoundError (with manual instructions) when a download fails.
    """
    target = Path(directory).expanduser() if directory else cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in list(names) if names is not None else list(expected):
        if name not in expected:
            raise ValueError(f"unknown weights file {name!r}; known: {', '.join(expected)}")
        path = target / name
        status = verify_file(path, expected)
        if status == "ok" and not force:
            log(f"{path}: present, verified")
            paths.append(path)
            continue
        if status == "mismatch":
            log(f"{path}: corrupt or incomplete (hash mismatch), downloading it again")
        url = base_url + name
        log(f"downloading {url} -> {path}")
        download_file(url, path, expected[name], opener)
        log(f"{path}: downloaded, verified")
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
    """A state dict from a .pth file (tensors only, loaded on the CPU)."""
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a bad file
        message = f"{path} is not a readable PyTorch checkpoint: {error}"
        raise WeightsMismatchError(message) from error
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise WeightsMismatchError(f"{path} does not hold a state dict of tensors")
    return dict(state)


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str = "") -> None:
    """module.load_state_dict(state, strict=True), with an error naming every bad key."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshaped = [
        f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped keys: {', '.join(misshaped)}")
    if problems:
        where = f" from {source}" if source else ""
        raise WeightsMismatchError(
            f"cannot load {type(module).__name__} weights{where}: " + "; ".join(problems)
        )
    module.load_state_dict(dict(state), strict=True)


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
