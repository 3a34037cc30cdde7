"""Named frontends and matchers: an explicit registry that fails loudly.

Each factory takes the pipeline's dotted parameters. The learned components are
imported inside their factories, so the classical baselines (and
``import superglue_ros.pipeline``) work without torch or the model code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .baselines import MutualNearestNeighbourMatcher, OrbFrontend, SiftFrontend
from .params import defaults
from .types import Frontend, Matcher


def _superpoint(params: Mapping[str, Any]) -> Frontend:
    from .learned import build_superpoint_frontend

    return build_superpoint_frontend(params)


def _superglue(params: Mapping[str, Any]) -> Matcher:
    from .learned import build_superglue_matcher

    return build_superglue_matcher(params)


def _orb(params: Mapping[str, Any]) -> Frontend:
    return OrbFrontend(max_keypoints=params["classical.max_keypoints"])


def _sift(params: Mapping[str, Any]) -> Frontend:
    return SiftFrontend(max_keypoints=params["classical.max_keypoints"])


def _mnn(params: Mapping[str, Any]) -> Matcher:
    return MutualNearestNeighbourMatcher(ratio_test=params["mnn.ratio_test"])


FRONTENDS: dict[str, Callable[[Mapping[str, Any]], Frontend]] = {
    "superpoint": _superpoint,
    "orb": _orb,
    "sift": _sift,
}

MATCHERS: dict[str, Callable[[Mapping[str, Any]], Matcher]] = {
    "superglue": _superglue,
    "mnn": _mnn,
}

# Matchers trained on one descriptor: SuperGlue expects SuperPoint's 256-d floats.
REQUIRED_FRONTEND: dict[str, str] = {"superglue": "superpoint"}


def _lookup(registry: Mapping[str, Callable], kind: str, name: Any) -> Callable:
    if name not in registry:
        known = ", ".join(sorted(registry))
        raise ValueError(f"unknown {kind} {name!r}; known {kind}s: {known}")
    return registry[name]


def _complete(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults overlaid with params, so factories can read any name."""
    return {**defaults(), **(params or {})}


def check_compatible(frontend: str, matcher: str) -> None:
    """Raise ValueError when the matcher cannot match this frontend's descriptors."""
    required = REQUIRED_FRONTEND.get(matcher)
    if required is not None and frontend != required:
        raise ValueError(
            f"matcher {matcher!r} only works with frontend {required!r} "
            f"(it was trained on its descriptors); got frontend {frontend!r}"
        )


def build_frontend(params: Mapping[str, Any] | None = None) -> Frontend:
    """The frontend named by params['frontend'], configured from params."""
    params = _complete(params)
    return _lookup(FRONTENDS, "frontend", params["frontend"])(params)


def build_matcher(params: Mapping[str, Any] | None = None) -> Matcher:
    """The matcher named by params['matcher']; checks it fits params['frontend']."""
    params = _complete(params)
    factory = _lookup(MATCHERS, "matcher", params["matcher"])
    _lookup(FRONTENDS, "frontend", params["frontend"])
    check_compatible(params["frontend"], params["matcher"])
    return factory(params)
