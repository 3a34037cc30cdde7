"""Named frontends and matchers: an explicit registry that fails loudly.

Each factory takes the pipeline's validated Config. The learned components are
imported inside their factories, so the classical baselines (and
``import superglue_ros.pipeline``) work without torch or the model code.

``frontend: auto`` and ``matcher: auto`` (what the scene presets set) are
resolved by :func:`choose_networks` before anything is built: SuperPoint +
SuperGlue where its research-only weights are installed, else ALIKED +
LightGlue, whose permissive weights install with the project.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .baselines import MutualNearestNeighbourMatcher, OrbFrontend, SiftFrontend
from .params import PIPELINE_SPECS, Config, validate
from .types import Frontend, Matcher

AUTO = "auto"


# runtime auto: the faster runtime per device kind and network, as measured on the
# float32 frame by `superglue-ros bench` (SuperPoint + SuperGlue: onnxruntime 0.48x
# torch) and `superglue-ros bench-onnx --threads 1` (ALIKED 1.2x, LightGlue
# 1.1-1.25x torch) on the CPU (docs/models.md, "runtime: auto"). Anything not in the
# table (DISK, every GPU: nothing measured there yet) runs torch.
AUTO_RUNTIME: dict[tuple[str, str], str] = {
    ("cpu", "superpoint"): "onnxruntime",
    ("cpu", "superglue"): "onnxruntime",
    ("cpu", "aliked"): "torch",
    ("cpu", "lightglue"): "torch",
}


def runtime_for(config: Config, network: str) -> str:
    """torch or onnxruntime for network: the runtime parameter, auto resolved by
    AUTO_RUNTIME (torch where onnxruntime is not installed, or precision is not fp32)."""
    runtime = config.text("runtime")
    if runtime != AUTO:
        return runtime
    import importlib.util

    device = config.text("device")
    if device == AUTO:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    kind = "cpu" if device == "cpu" else "cuda"
    chosen = AUTO_RUNTIME.get((kind, network), "torch")
    usable = importlib.util.find_spec("onnxruntime") is not None
    if chosen == "onnxruntime" and (not usable or config.text("precision") != "fp32"):
        return "torch"
    return chosen


def _superpoint(config: Config) -> Frontend:
    if runtime_for(config, "superpoint") == "onnxruntime":
        from .onnx_runtime import build_onnx_superpoint_frontend

        return build_onnx_superpoint_frontend(config)
    from .frontends.superpoint import build_superpoint_frontend

    return build_superpoint_frontend(config)


def _superglue(config: Config) -> Matcher:
    if runtime_for(config, "superglue") == "onnxruntime":
        from .onnx_runtime import build_onnx_superglue_matcher

        return build_onnx_superglue_matcher(config)
    from .matchers.superglue import build_superglue_matcher

    return build_superglue_matcher(config)


def _aliked(config: Config) -> Frontend:
    if runtime_for(config, "aliked") == "onnxruntime":
        from .onnx_learned import build_onnx_extractor

        return build_onnx_extractor(config, "aliked")
    from .frontends.aliked import build_aliked_frontend

    return build_aliked_frontend(config)


def _disk(config: Config) -> Frontend:
    if runtime_for(config, "disk") == "onnxruntime":
        from .onnx_learned import build_onnx_extractor

        return build_onnx_extractor(config, "disk")
    from .frontends.disk import build_disk_frontend

    return build_disk_frontend(config)


def _lightglue(config: Config) -> Matcher:
    if runtime_for(config, "lightglue") == "onnxruntime":
        from .onnx_learned import build_onnx_lightglue_matcher

        return build_onnx_lightglue_matcher(config)
    from .matchers.lightglue import build_lightglue_matcher

    return build_lightglue_matcher(config)


def _orb(config: Config) -> Frontend:
    return OrbFrontend(max_keypoints=config.integer("classical.max_keypoints"))


def _sift(config: Config) -> Frontend:
    return SiftFrontend(max_keypoints=config.integer("classical.max_keypoints"))


def _mnn(config: Config) -> Matcher:
    return MutualNearestNeighbourMatcher(ratio_test=config.number("mnn.ratio_test"))


FRONTENDS: dict[str, Callable[[Config], Frontend]] = {
    "superpoint": _superpoint,
    "aliked": _aliked,
    "disk": _disk,
    "orb": _orb,
    "sift": _sift,
}

MATCHERS: dict[str, Callable[[Config], Matcher]] = {
    "superglue": _superglue,
    "lightglue": _lightglue,
    "mnn": _mnn,
}

# Matchers trained on given descriptors: SuperGlue on SuperPoint's 256-d floats,
# LightGlue has a weights file per frontend (superpoint_lightglue.pth must be present).
REQUIRED_FRONTEND: dict[str, tuple[str, ...]] = {
    "superglue": ("superpoint",),
    "lightglue": ("aliked", "disk", "superpoint"),
}
# ALIKED networks whose descriptors are not the 128-d ones LightGlue's ALIKED weights expect.
ALIKED_NOT_FOR_LIGHTGLUE = {"t16": 64}


def _lookup(registry: Mapping[str, Callable], kind: str, name: Any) -> Callable:
    if name not in registry:
        known = ", ".join(sorted(registry))
        raise ValueError(f"unknown {kind} {name!r}; known {kind}s: {known}")
    return registry[name]


def _name(params: Mapping[str, Any] | None, kind: str) -> Any:
    """params[kind] or its default, looked up before validation so an unknown name
    is reported with the registry's list of known ones."""
    return (params or {}).get(kind, PIPELINE_SPECS[kind].default)


def check_compatible(frontend: str, matcher: str, aliked_model: str = "n16") -> None:
    """Raise ValueError when the matcher cannot match this frontend's descriptors."""
    required = REQUIRED_FRONTEND.get(matcher)
    if required is not None and frontend not in required:
        raise ValueError(
            f"matcher {matcher!r} only works with frontend(s) {', '.join(required)} "
            f"(it was trained on their descriptors); got frontend {frontend!r}"
        )
    if matcher == "lightglue" and frontend == "aliked" and aliked_model in ALIKED_NOT_FOR_LIGHTGLUE:
        raise ValueError(
            f"aliked.model {aliked_model!r} gives {ALIKED_NOT_FOR_LIGHTGLUE[aliked_model]}-d "
            "descriptors; LightGlue's ALIKED weights expect 128-d (use n16, n16rot or n32, or "
            "matcher mnn)"
        )


# matcher auto: the matcher each frontend's descriptors were trained with.
MATCHER_FOR_FRONTEND = {
    "superpoint": "superglue",
    "aliked": "lightglue",
    "disk": "lightglue",
    "orb": "mnn",
    "sift": "mnn",
}


def _missing_research_weights(config: Config, matcher: str) -> str | None:
    """None when SuperPoint (and the weights of the matcher it would run with) are
    found by the weights lookup, else the first line of why not."""
    from superglue_ros.models.weights import SUPERGLUE_FILES, SUPERPOINT_FILE, find_weights

    names = [SUPERPOINT_FILE]
    if matcher in (AUTO, "superglue"):
        names.append(SUPERGLUE_FILES[config.text("superglue.weights")])
    try:
        for name in names:
            find_weights(name, config.text("weights_dir") or None)
        if matcher == "lightglue":
            from superglue_ros.models.weights import find_weights

            find_weights("superpoint_lightglue.pth", config.text("weights_dir") or None)
    except FileNotFoundError as error:  # also a corrupt file
        return str(error).splitlines()[0].removesuffix(" Looked in:").rstrip(".")
    return None


def choose_networks(params: Mapping[str, Any] | None = None) -> tuple[Config, str]:
    """params validated, with ``auto`` frontend/matcher replaced by what runs here;
    and why, for the log ("" when neither was auto).

    frontend auto: SuperPoint when its research-only weights (and the matcher's)
    are found, else ALIKED (permissive weights; SuperGlue keeps SuperPoint, it
    matches nothing else). matcher auto: the matcher of MATCHER_FOR_FRONTEND.
    """
    config = validate(params or {})
    frontend, matcher = config.text("frontend"), config.text("matcher")
    if AUTO not in (frontend, matcher):
        return config, ""
    reasons = []
    if frontend == AUTO:
        missing = None if matcher == "superglue" else _missing_research_weights(config, matcher)
        if missing is None:
            frontend = "superpoint"
            reasons.append(
                "frontend auto: superpoint, its weights are installed (research-only licence)"
                if matcher != "superglue"
                else "frontend auto: superpoint, the only frontend superglue matches"
            )
        else:
            frontend = "aliked"
            reasons.append(
                "frontend auto: aliked (permissive weights), as SuperPoint's research-only "
                f"weights are not installed: {missing} (`superglue-ros weights where` lists "
                "the places looked, `superglue-ros weights download` gets them)"
            )
    if matcher == AUTO:
        matcher = MATCHER_FOR_FRONTEND[frontend]
        reasons.append(f"matcher auto: {matcher}, trained on {frontend} descriptors")
    chosen = validate({**config, "frontend": frontend, "matcher": matcher}, config.specs)
    return chosen, "; ".join(reasons)


def build_frontend(params: Mapping[str, Any] | None = None) -> Frontend:
    """The frontend named by params['frontend'] (auto: see choose_networks), configured
    from params (a Config or plain values, validated here when plain)."""
    if _name(params, "frontend") != AUTO:
        _lookup(FRONTENDS, "frontend", _name(params, "frontend"))
    config, _ = choose_networks(params)
    return FRONTENDS[config.text("frontend")](config)


def build_matcher(params: Mapping[str, Any] | None = None) -> Matcher:
    """The matcher named by params['matcher'] (auto: see choose_networks), configured
    from params; the one place that checks it fits params['frontend']."""
    for kind, registry in (("matcher", MATCHERS), ("frontend", FRONTENDS)):
        if _name(params, kind) != AUTO:
            _lookup(registry, kind, _name(params, kind))
    config, _ = choose_networks(params)
    factory = MATCHERS[config.text("matcher")]
    check_compatible(config.text("frontend"), config.text("matcher"), config.text("aliked.model"))
    return factory(config)
