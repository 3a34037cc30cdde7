"""The ROS-agnostic matching pipeline: numpy images in, FrameResult out.

Importing this package needs neither ROS nor torch; torch is imported only
when a learned component (SuperPoint, SuperGlue) is built.
"""

from .baselines import MutualNearestNeighbourMatcher, OrbFrontend, SiftFrontend
from .frontend import PreprocessingFrontend, to_grayscale
from .keyframes import Keyframe, KeyframeBuffer, KeyframePolicy
from .params import PIPELINE_SPECS, Config, ParameterError, ParamSpec, validate
from .pipeline import Pipeline
from .registry import FRONTENDS, MATCHERS, build_frontend, build_matcher, check_compatible
from .tracks import TrackIdAssigner
from .types import Features, FrameResult, Frontend, KeyframeMatch, Matcher, PairMatches

__all__ = [
    "FRONTENDS",
    "MATCHERS",
    "PIPELINE_SPECS",
    "Config",
    "Features",
    "FrameResult",
    "Frontend",
    "Keyframe",
    "KeyframeBuffer",
    "KeyframeMatch",
    "KeyframePolicy",
    "Matcher",
    "MutualNearestNeighbourMatcher",
    "OrbFrontend",
    "PairMatches",
    "ParameterError",
    "ParamSpec",
    "Pipeline",
    "PreprocessingFrontend",
    "SiftFrontend",
    "TrackIdAssigner",
    "build_frontend",
    "build_matcher",
    "check_compatible",
    "to_grayscale",
    "validate",
]
