"""Code-bearing flavors: ``python`` (shipped code), ``pickle`` and ``joblib``.

Loading any of them runs code from the version, so each loads only when the version is
trusted; otherwise ``UntrustedModel`` names the safe flavors instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import pickle
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from corral.errors import InvalidArgument
from corral.registry.entities import Signature
from corral.serving._files import FileFlavor, head, pick_file
from corral.serving._imports import optional_import
from corral.serving._sklearn import estimator_predictor
from corral.serving.errors import SAFE_FLAVORS, UntrustedModel
from corral.serving.predictor import Inputs, Outputs, Predictor

PYTHON_FILE = "predictor.py"
_PICKLE_SUFFIXES = (".pkl", ".pickle")


def _refuse_save(flavor: str) -> InvalidArgument:
    return InvalidArgument(f"Corral does not save '{flavor}' models; save in {SAFE_FLAVORS}")


class _UserPredictor:
    """A user's ``Model`` object: it receives an array or a dict of column arrays."""

    def __init__(self, model: Any) -> None:
        if not callable(getattr(model, "predict", None)):
            raise InvalidArgument(f"{PYTHON_FILE}: Model has no predict() method")
        self._model = model

    @property
    def input_names(self) -> list[str]:
        return [str(n) for n in getattr(self._model, "input_names", [])]

    @property
    def supports_proba(self) -> bool:
        return callable(getattr(self._model, "predict_proba", None))

    @staticmethod
    def _normalise(inputs: Inputs) -> Any:
        if isinstance(inputs, np.ndarray | Mapping):
            return inputs
        if isinstance(inputs, Sequence) and inputs and isinstance(inputs[0], Mapping):
            names = list(inputs[0])
            return {n: np.asarray([row[n] for row in inputs]) for n in names}
        return np.asarray(inputs)

    def predict(self, inputs: Inputs) -> Outputs:
        return self._model.predict(self._normalise(inputs))  # type: ignore[no-any-return]

    def predict_proba(self, inputs: Inputs) -> Outputs:
        if not self.supports_proba:
            raise InvalidArgument("this model does not predict probabilities")
        return self._model.predict_proba(self._normalise(inputs))  # type: ignore[no-any-return]


class PythonFlavor:
    """``predictor.py`` defines ``Model``; ``Model(folder)`` (or ``Model()``) is served."""

    name = "python"
    extra = ""
    needs_trust = True

    def detect(self, paths: list[Path]) -> bool:
        return any(p.name == PYTHON_FILE for p in paths)

    def load(self, folder: Path, *, trusted: bool, signature: Signature | None = None) -> Predictor:
        path = pick_file(
            folder, self.name, lambda p: p.name == PYTHON_FILE, PYTHON_FILE, PYTHON_FILE
        )
        if not trusted:
            raise UntrustedModel(self.name, f"'{PYTHON_FILE}' is code shipped in the version")
        # A name per file content, so two versions never share (or replace) a module.
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        module_name = f"corral_user_model_{digest}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise InvalidArgument(f"cannot import '{PYTHON_FILE}'")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        model_class = getattr(module, "Model", None)
        if not isinstance(model_class, type):
            raise InvalidArgument(f"'{PYTHON_FILE}' defines no class Model")
        takes_folder = len(inspect.signature(model_class).parameters) > 0
        return _UserPredictor(model_class(folder) if takes_folder else model_class())

    def save(self, model: Any, folder: Path, example: Any = None) -> list[str]:
        raise _refuse_save(self.name)


class PickleFlavor(FileFlavor):
    name = "pickle"
    extra = ""
    needs_trust = True

    @staticmethod
    def _is_model(path: Path) -> bool:
        start = head(path, 2)
        is_pickle = len(start) == 2 and start[0] == 0x80 and 2 <= start[1] <= 5
        return path.name.lower().endswith(_PICKLE_SUFFIXES) or is_pickle

    def load(self, folder: Path, *, trusted: bool, signature: Signature | None = None) -> Predictor:
        path = pick_file(folder, self.name, self._is_model, "pickle file", "model.pkl")
        if not trusted:
            raise UntrustedModel(self.name, f"unpickling '{path.name}' can run any code")
        with path.open("rb") as fh:
            model = pickle.load(fh)
        return estimator_predictor(model, signature, self.name)

    def save(self, model: Any, folder: Path, example: Any = None) -> list[str]:
        raise _refuse_save(self.name)


class JoblibFlavor(FileFlavor):
    name = "joblib"
    extra = "sklearn"  # joblib ships with scikit-learn
    needs_trust = True

    @staticmethod
    def _is_model(path: Path) -> bool:
        return path.name.lower().endswith(".joblib")

    def load(self, folder: Path, *, trusted: bool, signature: Signature | None = None) -> Predictor:
        path = pick_file(folder, self.name, self._is_model, "joblib file", "model.joblib")
        if not trusted:
            raise UntrustedModel(
                self.name, f"loading '{path.name}' unpickles it, which can run any code"
            )
        joblib = optional_import("joblib", flavor=self.name, extra=self.extra)
        return estimator_predictor(joblib.load(path), signature, self.name)

    def save(self, model: Any, folder: Path, example: Any = None) -> list[str]:
        raise _refuse_save(self.name)
