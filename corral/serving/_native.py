"""The ``onnx``, ``xgboost`` and ``lightgbm`` flavors: native formats that carry no code."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from corral.errors import InvalidArgument
from corral.registry.entities import ColumnSpec, Signature
from corral.serving._files import FileFlavor, head, pick_file
from corral.serving._imports import optional_import
from corral.serving.predictor import (
    Array,
    ArrayPredictor,
    Inputs,
    Outputs,
    Predictor,
    named_columns,
    signature_columns,
    to_matrix,
)

_ONNX_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
    "tensor(string)": object,
}
_PROBA_OUTPUTS = ("probabilities", "output_probability", "probability")


def _width_columns(name: str, dtype: str, width: Any) -> list[ColumnSpec]:
    """One vector column for a model that knows its width but not its feature names."""
    if isinstance(width, int) and width > 0:
        return [ColumnSpec(name=name, dtype=dtype, shape=[-1, width])]
    return []


def _classifier(raw: Any, columns: list[ColumnSpec], dtype: Any, kind: str) -> ArrayPredictor:
    """Labels and probabilities from a booster whose raw output is probabilities."""

    def proba(x: Array) -> Array:
        p = np.asarray(raw(x))
        return np.column_stack([1.0 - p, p]) if kind == "binary" else p

    def predict(x: Array) -> Array:
        return np.asarray(np.argmax(proba(x), axis=1))

    return ArrayPredictor(predict, columns=columns, proba=proba, dtype=dtype)


# -- onnx --------------------------------------------------------------------------------


class OnnxPredictor:
    """An ONNX Runtime session: one input fed a 2-D array, or several fed by name."""

    def __init__(self, session: Any, signature: Signature | None) -> None:
        self._session = session
        self._inputs = list(session.get_inputs())
        outputs = list(session.get_outputs())
        self._outputs = [o.name for o in outputs if o.type in _ONNX_DTYPES]
        self._proba = next(
            (o.name for o in outputs if o.name in _PROBA_OUTPUTS and o.type in _ONNX_DTYPES),
            None,
        )
        self._columns: list[ColumnSpec] = []
        self._dtype: Any = None
        if len(self._inputs) == 1:
            first = self._inputs[0]
            self._dtype = _ONNX_DTYPES.get(first.type)
            shape = list(first.shape)
            self._columns = signature_columns(signature) or _width_columns(
                first.name, str(np.dtype(self._dtype or np.float32)), shape[-1] if shape else None
            )

    @property
    def input_names(self) -> list[str]:
        if len(self._inputs) == 1:
            return [c.name for c in self._columns]
        return [i.name for i in self._inputs]

    @property
    def supports_proba(self) -> bool:
        return self._proba is not None

    def _feed(self, inputs: Inputs) -> dict[str, Array]:
        if len(self._inputs) == 1:
            return {self._inputs[0].name: to_matrix(inputs, self._columns, dtype=self._dtype)}
        if not isinstance(inputs, Mapping):
            raise InvalidArgument(
                f"this ONNX model takes several inputs: send an object with "
                f"{', '.join(self.input_names)}"
            )
        missing = [name for name in self.input_names if name not in inputs]
        if missing:
            raise InvalidArgument(f"missing ONNX inputs: {', '.join(missing)}")
        feed: dict[str, Array] = {}
        for spec in self._inputs:
            try:
                feed[spec.name] = np.asarray(inputs[spec.name], dtype=_ONNX_DTYPES.get(spec.type))
            except (TypeError, ValueError) as exc:
                raise InvalidArgument(f"ONNX input '{spec.name}' is not {spec.type}") from exc
        return feed

    def _run(self, names: list[str], inputs: Inputs) -> list[Array]:
        return list(self._session.run(names, self._feed(inputs)))

    def predict(self, inputs: Inputs) -> Outputs:
        results = self._run(self._outputs, inputs)
        if len(results) == 1:
            return results[0]
        return dict(zip(self._outputs, results, strict=True))

    def predict_proba(self, inputs: Inputs) -> Outputs:
        if self._proba is None:
            raise InvalidArgument("this ONNX model has no probability output")
        return self._run([self._proba], inputs)[0]


class OnnxFlavor(FileFlavor):
    name = "onnx"
    extra = "onnx"
    needs_trust = False

    @staticmethod
    def _is_model(path: Path) -> bool:
        return path.name.lower().endswith(".onnx")

    def load(self, folder: Path, *, trusted: bool, signature: Signature | None = None) -> Predictor:
        ort = optional_import("onnxruntime", flavor=self.name, extra=self.extra)
        path = pick_file(folder, self.name, self._is_model, "ONNX file", "model.onnx")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: warnings go to stderr, not to logging
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        return OnnxPredictor(session, signature)

    def save(self, model: Any, folder: Path, example: Any = None) -> list[str]:
        onnx = optional_import("onnx", flavor=self.name, extra=self.extra)
        if not isinstance(model, onnx.ModelProto):
            raise InvalidArgument(
                f"flavor 'onnx' saves an onnx.ModelProto, not a {type(model).__name__}; "
                "convert the model first (e.g. with skl2onnx)"
            )
        folder.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(folder / "model.onnx"))
        return ["model.onnx"]


# -- xgboost -----------------------------------------------------------------------------


class XGBoostFlavor(FileFlavor):
    name = "xgboost"
    extra = "xgboost"
    needs_trust = False

    @staticmethod
    def _is_model(path: Path) -> bool:
        # JSON and UBJSON models both open with the "learner" object.
        lower = path.name.lower()
        start = head(path, 32)
        return (
            (lower.endswith((".json", ".ubj"))) and start.startswith(b"{") and (b"learner" in start)
        )

    def load(self, folder: Path, *, trusted: bool, signature: Signature | None = None) -> Predictor:
        xgb = optional_import("xgboost", flavor=self.name, extra=self.extra)
        path = pick_file(folder, self.name, self._is_model, "XGBoost model", "model.ubj")
        booster = xgb.Booster()
        booster.load_model(str(path))
        objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
        columns = (
            signature_columns(signature)
            or named_columns(booster.feature_names or [])
            or _width_columns("input", "float32", booster.num_features())
        )
        if objective == "binary:logistic":
            return _classifier(booster.inplace_predict, columns, np.float32, "binary")
        if objective == "multi:softprob":
            return _classifier(booster.inplace_predict, columns, np.float32, "multiclass")
        return ArrayPredictor(booster.inplace_predict, columns=columns, dtype=np.float32)

    def save(self, model: Any, folder: Path, example: Any = None) -> list[str]:
        optional_import("xgboost", flavor=self.name, extra=self.extra)
        if not callable(getattr(model, "save_model", None)):
            raise InvalidArgument(f"flavor 'xgboost' cannot save a {type(model).__name__}")
        folder.mkdir(parents=True, exist_ok=True)
        model.save_model(str(folder / "model.ubj"))
        return ["model.ubj"]


# -- lightgbm ----------------------------------------------------------------------------


def _lightgbm_objective(path: Path) -> str:
    """The objective line of a LightGBM text model's header."""
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith("objective="):
                return line.removeprefix("objective=").split()[0]
            if line.startswith("Tree="):
                break
    return ""


class LightGBMFlavor(FileFlavor):
    name = "lightgbm"
    extra = "lightgbm"
    needs_trust = False

    @staticmethod
    def _is_model(path: Path) -> bool:
        return head(path, 16).startswith(b"tree\nversion=")

    def load(self, folder: Path, *, trusted: bool, signature: Signature | None = None) -> Predictor:
        lgb = optional_import("lightgbm", flavor=self.name, extra=self.extra)
        path = pick_file(folder, self.name, self._is_model, "LightGBM text model", "model.txt")
        booster = lgb.Booster(model_file=str(path))
        columns = signature_columns(signature) or named_columns(booster.feature_name())
        objective = _lightgbm_objective(path)
        if objective == "binary":
            return _classifier(booster.predict, columns, np.float64, "binary")
        if objective in ("multiclass", "multiclassova"):
            return _classifier(booster.predict, columns, np.float64, "multiclass")
        return ArrayPredictor(booster.predict, columns=columns, dtype=np.float64)

    def save(self, model: Any, folder: Path, example: Any = None) -> list[str]:
        lgb = optional_import("lightgbm", flavor=self.name, extra=self.extra)
        booster = getattr(model, "booster_", model)  # LGBMModel wraps a Booster
        if not isinstance(booster, lgb.Booster):
            raise InvalidArgument(f"flavor 'lightgbm' cannot save a {type(model).__name__}")
        folder.mkdir(parents=True, exist_ok=True)
        booster.save_model(str(folder / "model.txt"))
        return ["model.txt"]
