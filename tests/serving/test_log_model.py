"""``Client.log_model``: an in-memory model saved in its flavor, registered, loaded back."""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin

from corral import Client
from corral.errors import InvalidArgument
from corral.registry.entities import ModelVersion
from corral.serving import MissingDependency, Predictor, UntrustedModel, load_predictor
from tests.serving._helpers import FEATURES, iris, need, records

SUMMER = """
import numpy as np


class Summer:
    input_names = ["a", "b"]

    def __init__(self, offset):
        self.offset = offset
        self.labels = {"unit": "kg"}
        self.weights = np.array([1.0, 2.0])

    def predict(self, inputs):
        if isinstance(inputs, dict):
            inputs = np.column_stack([inputs["a"], inputs["b"]])
        return np.asarray(inputs) @ self.weights + self.offset
"""


class Clipper(TransformerMixin, BaseEstimator):
    """A transformer of the user's own: skops cannot vouch for it."""

    def fit(self, rows: Any, labels: Any = None) -> Clipper:
        return self

    def transform(self, rows: Any) -> Any:
        return np.clip(rows, 0.0, 5.0)


class Tally:
    """A python model whose state is a set: neither JSON nor an array."""

    def __init__(self) -> None:
        self.seen = {1, 2}

    def predict(self, rows: Any) -> Any:
        return [row in self.seen for row in rows]


@pytest.fixture(autouse=True)
def temporary_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Where log_model's temporary folders go: each test checks it is left empty."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _loaded(client: Client, version: ModelVersion, *, trusted: bool = False) -> Predictor:
    folder = client.fetch(version.model, version.number)
    return load_predictor(folder, version.flavor, trusted=trusted, signature=version.signature)


def _estimator() -> Any:
    from sklearn.linear_model import LogisticRegression

    features, labels = iris()
    return LogisticRegression(max_iter=1000).fit(features, labels)


def _dataframe(rows: np.ndarray) -> Any:
    pandas = need("pandas")
    return pandas.DataFrame(rows, columns=FEATURES)


@pytest.mark.parametrize("example", [_dataframe, records], ids=["dataframe", "records"])
def test_a_logged_estimator_predicts_like_the_one_in_memory(
    client: Client, temporary_dir: Path, example: Callable[[np.ndarray], Any]
) -> None:
    features, _ = iris()
    estimator = _estimator()

    version = client.log_model(estimator, "iris", example=example(features[:3]))

    assert version.flavor == "sklearn"
    assert version.signature is not None
    assert [c.name for c in version.signature.inputs] == FEATURES
    assert {f.path for f in version.files} == {"model.skops", "input_example.json"}
    predictor = _loaded(client, version)
    np.testing.assert_array_equal(
        predictor.predict(records(features[:20])), estimator.predict(features[:20])
    )
    np.testing.assert_allclose(
        predictor.predict_proba(features[:20]), estimator.predict_proba(features[:20])
    )
    assert list(temporary_dir.iterdir()) == []


def test_log_model_passes_the_version_fields_to_register(local_client: Client) -> None:
    first = local_client.log_model(_estimator(), "iris")
    second = local_client.log_model(
        _estimator(),
        "iris",
        description="retrained",
        metrics={"accuracy": 0.97},
        params={"max_iter": 1000},
        tags={"team": "plants"},
        alias="prod",
        parent_version=first.number,
    )

    assert second.number == 2
    assert second.description == "retrained"
    assert second.metrics == {"accuracy": 0.97}
    assert second.tags == {"team": "plants"}
    assert second.parent_version == 1
    assert local_client.get_version("iris", "prod").number == 2
    assert first.signature is None  # no example, no signature


@pytest.mark.parametrize("wrapped", [True, False], ids=["XGBClassifier", "Booster"])
def test_a_logged_xgboost_model_is_saved_natively(local_client: Client, wrapped: bool) -> None:
    xgb = need("xgboost")
    features, labels = iris()
    classifier = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(features, labels)
    model = classifier if wrapped else classifier.get_booster()

    version = local_client.log_model(model, "iris-xgb", example=records(features[:3]))

    assert version.flavor == "xgboost"
    assert [f.path for f in version.files if f.path != "input_example.json"] == ["model.ubj"]
    predictor = _loaded(local_client, version)
    np.testing.assert_array_equal(
        predictor.predict(records(features[:30])), classifier.predict(features[:30])
    )
    np.testing.assert_allclose(
        predictor.predict_proba(features[:30]), classifier.predict_proba(features[:30]), rtol=1e-6
    )


@pytest.mark.parametrize("wrapped", [True, False], ids=["LGBMClassifier", "Booster"])
def test_a_logged_lightgbm_model_is_saved_as_text(local_client: Client, wrapped: bool) -> None:
    lgb = need("lightgbm")
    features, labels = iris()
    classifier = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(features, labels)
    model = classifier if wrapped else classifier.booster_

    version = local_client.log_model(model, "iris-lgb", example=features[:3])

    assert version.flavor == "lightgbm"
    assert [f.path for f in version.files if f.path != "input_example.json"] == ["model.txt"]
    predictor = _loaded(local_client, version)
    np.testing.assert_array_equal(
        predictor.predict(features[:30]), classifier.predict(features[:30])
    )


def test_a_logged_onnx_graph_is_saved_as_is(local_client: Client) -> None:
    need("onnxruntime")
    onnx = need("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weights = np.array([[1.0, 0.5], [2.0, -1.0]], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["scores"])],
        "scores",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 2])],
        initializer=[numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)

    version = local_client.log_model(model, "scores", example={"x": [1.0], "y": [2.0]})

    assert version.flavor == "onnx"
    predictor = _loaded(local_client, version)
    rows = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    np.testing.assert_allclose(
        predictor.predict({"x": [1.0, 3.0], "y": [2.0, 4.0]}), rows @ weights
    )


def test_a_logged_python_object_ships_its_class_and_attributes(
    client: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "summing.py").write_text(SUMMER)
    spec = importlib.util.spec_from_file_location("summing", tmp_path / "summing.py")
    assert spec is not None
    assert spec.loader is not None
    summing = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "summing", summing)  # as `import summing` would
    spec.loader.exec_module(summing)
    model = summing.Summer(offset=10.0)
    model.weights = np.array([1.0, 3.0])  # state changed after __init__ is what is saved

    version = client.log_model(model, "summer")

    assert version.flavor == "python"
    assert {f.path for f in version.files} == {
        "predictor.py",
        "code/summing.py",
        "saved_model.json",
        "saved_arrays.npz",
    }
    with pytest.raises(UntrustedModel, match="code shipped in the version"):
        _loaded(client, version)
    predictor = _loaded(client, version, trusted=True)
    assert predictor.input_names == ["a", "b"]
    np.testing.assert_array_equal(predictor.predict([[1.0, 2.0], [0.0, 1.0]]), [17.0, 13.0])
    np.testing.assert_array_equal(predictor.predict([{"a": 1.0, "b": 1.0}]), [14.0])


def _no_versions(client: Client, temporary_dir: Path) -> None:
    assert client.list_models().total == 0
    assert list(temporary_dir.iterdir()) == []


def test_an_object_corral_cannot_save_is_refused(local_client: Client, temporary_dir: Path) -> None:
    with pytest.raises(InvalidArgument, match="Corral cannot tell how to save a dict"):
        local_client.log_model({"weights": [1, 2]}, "weights")
    _no_versions(local_client, temporary_dir)


def test_an_estimator_with_a_class_of_its_own_is_refused_before_registering(
    client: Client, temporary_dir: Path
) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    features, labels = iris()
    pipeline = make_pipeline(Clipper(), LogisticRegression(max_iter=1000)).fit(features, labels)

    with pytest.raises(
        InvalidArgument, match=r"allow-list: tests\.serving\.test_log_model\.Clipper"
    ):
        client.log_model(pipeline, "clipped", example=records(features[:2]))
    _no_versions(client, temporary_dir)


def test_a_refused_model_adds_no_version_to_an_existing_model(
    local_client: Client, temporary_dir: Path
) -> None:
    local_client.log_model(_estimator(), "iris")

    with pytest.raises(InvalidArgument, match="Clipper"):
        local_client.log_model(Clipper().fit(None), "iris")
    assert local_client.list_versions("iris").total == 1
    assert list(temporary_dir.iterdir()) == []


@pytest.mark.parametrize("flavor", ["pickle", "joblib"])
def test_log_model_never_pickles(local_client: Client, temporary_dir: Path, flavor: str) -> None:
    with pytest.raises(InvalidArgument, match=f"Corral does not save '{flavor}' models"):
        local_client.log_model(_estimator(), "iris", flavor=flavor)
    _no_versions(local_client, temporary_dir)


def test_a_python_object_whose_state_is_not_json_or_arrays_is_refused(
    local_client: Client, temporary_dir: Path
) -> None:
    with pytest.raises(InvalidArgument, match="its attributes seen are neither JSON values"):
        local_client.log_model(Tally(), "tally")
    _no_versions(local_client, temporary_dir)


def test_a_class_defined_inside_a_function_is_refused(
    local_client: Client, temporary_dir: Path
) -> None:
    class Local:
        def predict(self, rows: Any) -> Any:
            return rows

    with pytest.raises(InvalidArgument, match=r"defined inside a function.*Client\.register"):
        local_client.log_model(Local(), "local")
    _no_versions(local_client, temporary_dir)


def test_a_missing_optional_library_names_the_extra_before_registering(
    local_client: Client, monkeypatch: pytest.MonkeyPatch, temporary_dir: Path
) -> None:
    estimator = _estimator()
    monkeypatch.setitem(sys.modules, "skops.io", None)  # makes `import skops.io` fail

    with pytest.raises(MissingDependency, match=r"pip install 'corral\[sklearn\]'"):
        local_client.log_model(estimator, "iris")
    _no_versions(local_client, temporary_dir)
