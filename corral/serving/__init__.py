"""Serving: turning a version's files into a predictor, and keeping predictors loaded.

Owns the flavors (``sklearn`` via skops, ``onnx``, ``xgboost``, ``lightgbm``, and the
code-bearing ``python``, ``pickle`` and ``joblib`` that load only for trusted versions),
the ``Predictor`` protocol with its input layout, and ``ModelRuntime``, the memory-bounded
LRU cache of loaded versions. Also how a deployment is served: its config
(``parse_deployment``), adaptive batching (``Batcher``) and canary/shadow traffic
(``TrafficPolicy``). Knows nothing of HTTP or of where files are stored.
"""

from corral.serving.batching import Batcher, BatchPolicy
from corral.serving.deployment import Deployment, parse_deployment
from corral.serving.errors import MissingDependency, UnknownFlavor, UntrustedModel
from corral.serving.flavors import FLAVORS, Flavor, detect_flavor, get_flavor, load_predictor
from corral.serving.predictor import ArrayPredictor, Predictor, to_matrix
from corral.serving.runtime import ModelRuntime, RuntimeStats, VersionFiles
from corral.serving.traffic import Target, TrafficPolicy

__all__ = [
    "FLAVORS",
    "ArrayPredictor",
    "BatchPolicy",
    "Batcher",
    "Deployment",
    "Flavor",
    "MissingDependency",
    "ModelRuntime",
    "Predictor",
    "RuntimeStats",
    "Target",
    "TrafficPolicy",
    "UnknownFlavor",
    "UntrustedModel",
    "VersionFiles",
    "detect_flavor",
    "get_flavor",
    "load_predictor",
    "parse_deployment",
    "to_matrix",
]
