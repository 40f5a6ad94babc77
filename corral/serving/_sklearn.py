"""The ``sklearn`` flavor: scikit-learn estimators saved with skops, never unpickled.

skops lists the types in a file it does not trust by default; Corral loads the file only
when each of them is a scikit-learn, NumPy or SciPy class (or a NumPy ufunc), and passes
skops that explicit list, never ``trusted=True``.
"""

from __future__ import annotations

import importlib
import io
import zipfile
from pathlib import Path
from typing import Any

from corral.errors import InvalidArgument
from corral.registry.entities import ColumnSpec, Signature
from corral.serving._files import head, pick_file
from corral.serving._imports import optional_import
from corral.serving.errors import UntrustedModel
from corral.serving.predictor import (
    ArrayPredictor,
    Predictor,
    named_columns,
    signature_columns,
)

MODEL_FILE = "model.skops"
_ALLOWED_PACKAGES = frozenset({"sklearn", "numpy", "scipy"})
# Modules of those packages that have no business in a model file (and may do work on import).
_DENIED_MODULES = frozenset({"testing", "tests", "_testing", "distutils", "f2py", "conftest"})
# Classes of those packages that touch the file system when they are built.
_DENIED_TYPES = frozenset({"numpy.memmap", "numpy.lib.npyio.DataSource", "numpy.DataSource"})


def allowed_type(name: str) -> bool:
    """Whether a type skops reports may load without an admin's trust."""
    module_name, _, attr = name.rpartition(".")
    parts = module_name.split(".")
    if parts[0] not in _ALLOWED_PACKAGES or _DENIED_MODULES.intersection(parts):
        return False
    if name in _DENIED_TYPES:
        return False
    try:  # only ever imports modules of scikit-learn, NumPy and SciPy
        value = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        return False
    if isinstance(value, type):
        full = f"{value.__module__}.{value.__qualname__}"
        return value.__module__.split(".")[0] in _ALLOWED_PACKAGES and full not in _DENIED_TYPES
    import numpy as np

    return isinstance(value, np.ufunc)


def estimator_columns(estimator: Any, signature: Signature | None) -> list[ColumnSpec]:
    """The signature's columns, else the estimator's own feature names or width."""
    columns = signature_columns(signature)
    if columns:
        return columns
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return named_columns([str(n) for n in names])
    width = getattr(estimator, "n_features_in_", None)
    if isinstance(width, int):
        return [ColumnSpec(name="input", dtype="float64", shape=[-1, width])]
    return []


def estimator_predictor(estimator: Any, signature: Signature | None, flavor: str) -> Predictor:
    """A predictor over any object with scikit-learn's ``predict`` (and ``predict_proba``)."""
    if not callable(getattr(estimator, "predict", None)):
        raise InvalidArgument(
            f"the '{flavor}' model is a {type(estimator).__name__}, which has no predict()"
        )
    proba = getattr(estimator, "predict_proba", None)
    return ArrayPredictor(
        estimator.predict,
        columns=estimator_columns(estimator, signature),
        proba=proba if callable(proba) else None,
    )


def _is_skops(path: Path) -> bool:
    if path.name.lower().endswith(".skops"):
        return True
    if head(path, 4) != b"PK\x03\x04":
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return "schema.json" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


class SklearnFlavor:
    name = "sklearn"
    extra = "sklearn"
    needs_trust = False

    def detect(self, paths: list[Path]) -> bool:
        return any(_is_skops(p) for p in paths)

    def load(self, folder: Path, *, trusted: bool, signature: Signature | None = None) -> Predictor:
        sio = optional_import("skops.io", flavor=self.name, extra=self.extra)
        path = pick_file(folder, self.name, _is_skops, "skops file", MODEL_FILE)
        data = path.read_bytes()  # read once: the bytes checked are the bytes loaded
        untrusted = self.untrusted_types(data, path.name)
        refused = [t for t in untrusted if not allowed_type(t)]
        if refused and not trusted:
            raise UntrustedModel(
                self.name,
                f"'{path.name}' contains types outside Corral's scikit-learn/NumPy/SciPy "
                f"allow-list: {', '.join(refused)}",
            )
        estimator = sio.load(io.BytesIO(data), trusted=untrusted)
        return estimator_predictor(estimator, signature, self.name)

    def untrusted_types(self, data: bytes, filename: str) -> list[str]:
        """Every type in a skops file that skops does not trust by default."""
        sio = optional_import("skops.io", flavor=self.name, extra=self.extra)
        try:
            return list(sio.get_untrusted_types(data=data))
        except (zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise InvalidArgument(f"'{filename}' is not a valid skops file: {exc}") from exc

    def save(self, model: Any, folder: Path, example: Any = None) -> list[str]:
        sio = optional_import("skops.io", flavor=self.name, extra=self.extra)
        folder.mkdir(parents=True, exist_ok=True)
        sio.dump(model, folder / MODEL_FILE)
        return [MODEL_FILE]
