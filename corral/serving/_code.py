"""Code-bearing flavors: ``python`` (shipped code), ``pickle`` and ``joblib``.

Loading any of them runs code from the version, so each loads only when the version is
trusted; otherwise ``UntrustedModel`` names the safe flavors instead. Corral saves an
in-memory object as ``python`` by shipping its class's source file and its attributes
(JSON values, and NumPy arrays in an ``.npz``); it never saves a pickle.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import json
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
# What PythonFlavor.save writes beside the predictor.py below.
_SAVED_MODEL = "saved_model.json"  # {"code": ..., "class": ..., "attributes": ..., "arrays": ...}
_SAVED_ARRAYS = "saved_arrays.npz"
_SAVED_CODE = "code"
# The predictor.py of a saved object: rebuilds it from its class and attributes (no pickle).
_SAVED_PREDICTOR = f'''"""Written by Client.log_model: serves the object in {_SAVED_MODEL}."""

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np


def _module(path):
    name = "corral_saved_code_" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
    return sys.modules[name]


class Model:
    """The saved object, rebuilt without calling its __init__; Corral serves its predict."""

    def __init__(self, folder):
        folder = Path(folder)
        saved = json.loads((folder / "{_SAVED_MODEL}").read_text(encoding="utf-8"))
        cls = _module(folder.joinpath(*saved["code"].split("/")))
        for part in saved["class"].split("."):
            cls = getattr(cls, part)
        model = cls.__new__(cls)
        model.__dict__.update(saved["attributes"])
        if saved["arrays"]:  # saved in this order as arr_0, arr_1, ...
            with np.load(folder / "{_SAVED_ARRAYS}", allow_pickle=False) as arrays:
                for index, name in enumerate(saved["arrays"]):
                    setattr(model, name, arrays[f"arr_{{index}}"])
        self._model = model

    def __getattr__(self, name):
        if name == "_model":  # not built (yet): no recursion
            raise AttributeError(name)
        return getattr(self._model, name)
'''


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
        source = _class_source(model)
        attributes, arrays = _attributes(model)
        code = f"{_SAVED_CODE}/{source.name}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / _SAVED_CODE).mkdir(exist_ok=True)
        (folder / _SAVED_CODE / source.name).write_bytes(source.read_bytes())
        (folder / PYTHON_FILE).write_text(_SAVED_PREDICTOR, encoding="utf-8")
        saved = {
            "code": code,
            "class": type(model).__qualname__,
            "attributes": attributes,
            "arrays": list(arrays),
        }
        (folder / _SAVED_MODEL).write_text(json.dumps(saved, indent=1), encoding="utf-8")
        written = [PYTHON_FILE, code, _SAVED_MODEL]
        if arrays:
            # Positional names: an attribute called "file" cannot clash with savez's argument.
            np.savez(folder / _SAVED_ARRAYS, *arrays.values())
            written.append(_SAVED_ARRAYS)
        return written


def _refuse_python(model: Any, reason: str) -> InvalidArgument:
    return InvalidArgument(
        f"Corral does not save this {type(model).__name__} as a 'python' model: {reason}; "
        f"else write a folder with a {PYTHON_FILE} that defines class Model and register the "
        "folder with Client.register"
    )


def _class_source(model: Any) -> Path:
    """The .py file that defines the object's class, shippable on its own."""
    cls = type(model)
    if not callable(getattr(model, "predict", None)):
        raise _refuse_python(model, "it has no predict() method")
    if cls.__module__ == "__main__":
        raise _refuse_python(
            model,
            "its class is defined in __main__ (a script or a notebook), whose code would run "
            "again on load; move the class into a module file",
        )
    if "<locals>" in cls.__qualname__:
        raise _refuse_python(model, "its class is defined inside a function; define it in a module")
    file = getattr(sys.modules.get(cls.__module__), "__file__", None)
    if not file or not file.endswith(".py"):
        raise _refuse_python(model, f"its class comes from '{cls.__module__}', not a .py file")
    source = Path(file)
    tree = ast.parse(source.read_bytes(), filename=str(source))
    if any(isinstance(node, ast.ImportFrom) and node.level for node in ast.walk(tree)):
        raise _refuse_python(
            model,
            f"'{source.name}' has relative imports, which do not resolve once the file is "
            "shipped alone; import its package absolutely",
        )
    return source


def _attributes(model: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The object's attributes: JSON values, and NumPy arrays of plain (non-object) data."""
    slots: set[str] = set()
    for cls in type(model).__mro__:
        declared = getattr(cls, "__slots__", ())
        slots.update([declared] if isinstance(declared, str) else declared)
    slots -= {"__dict__", "__weakref__"}
    if slots or not hasattr(model, "__dict__"):
        raise _refuse_python(model, "it keeps attributes in __slots__")
    values: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    refused: list[str] = []
    for name, value in vars(model).items():
        if type(value) is np.ndarray and not value.dtype.hasobject:
            arrays[name] = value
        elif _is_json(value):
            values[name] = value
        else:
            refused.append(name)
    if refused:
        raise _refuse_python(
            model,
            f"its attributes {', '.join(sorted(refused))} are neither JSON values nor NumPy "
            "arrays, and Corral does not pickle them",
        )
    return values, arrays


def _is_json(value: Any) -> bool:
    """Whether a value survives a JSON round trip unchanged."""
    try:
        return bool(json.loads(json.dumps(value, allow_nan=False)) == value)
    except (TypeError, ValueError):
        return False


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
