"""Every flavor serves through both protocols: plain JSON and OIP V2, over a real server.

Each model is logged from memory (``Client.log_model``) or registered from a folder, then
asked over HTTP; the answers must equal the model's own predictions. Code-bearing
versions answer only once trusted.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from corral import Client
from corral.config import Settings
from tests.fixtures.corral import ServerThread
from tests.serving._helpers import FEATURES, iris, need, records

PREDICTOR = """
import numpy as np


class Model:
    input_names = ["a", "b"]

    def __init__(self, folder):
        self.offset = float((folder / "offset.txt").read_text())

    def predict(self, inputs):
        return np.asarray(inputs).sum(axis=1) + self.offset
"""


@dataclass
class Case:
    name: str
    rows: np.ndarray
    expected: list[Any]
    columns: list[str]


@dataclass
class Farm:
    url: str
    client: Client
    cases: dict[str, Case]


def _sklearn(client: Client, features: np.ndarray, labels: np.ndarray) -> Case:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=500).fit(features, labels)
    client.log_model(model, "iris-sklearn", example=records(features[:3]))
    return Case("iris-sklearn", features[:7], model.predict(features[:7]).tolist(), FEATURES)


def _xgboost(client: Client, features: np.ndarray, labels: np.ndarray) -> Case:
    xgb = need("xgboost")
    model = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(features, labels)
    client.log_model(model, "iris-xgboost", example=records(features[:3]))
    return Case("iris-xgboost", features[:7], model.predict(features[:7]).tolist(), FEATURES)


def _lightgbm(client: Client, features: np.ndarray, labels: np.ndarray) -> Case:
    lgb = need("lightgbm")
    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(features, labels)
    client.log_model(model, "iris-lightgbm", example=records(features[:3]))
    return Case("iris-lightgbm", features[:7], model.predict(features[:7]).tolist(), FEATURES)


def _onnx(client: Client) -> Case:
    need("onnxruntime")
    need("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weights = np.array([[1.0], [2.0]], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["score"])],
        "score",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1])],
        initializer=[numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    client.log_model(model, "linear-onnx", example={"x": [1.0], "y": [2.0]})
    rows = np.array([[1.0, 2.0], [3.0, 4.0], [0.5, -1.0]])
    return Case("linear-onnx", rows, (rows @ weights).tolist(), ["x", "y"])


def _python(client: Client, folder: Path) -> Case:
    folder.mkdir()
    (folder / "predictor.py").write_text(PREDICTOR)
    (folder / "offset.txt").write_text("10")
    client.register("summer", folder, flavor="python", example=[{"a": 1.0, "b": 2.0}])
    rows = np.array([[1.0, 2.0], [3.0, 4.0]])
    return Case("summer", rows, [13.0, 17.0], ["a", "b"])


def _pickle(client: Client, folder: Path, features: np.ndarray, labels: np.ndarray) -> Case:
    from sklearn.tree import DecisionTreeClassifier

    model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(features, labels)
    folder.mkdir()
    (folder / "model.pkl").write_bytes(pickle.dumps(model))
    client.register("iris-pickle", folder, flavor="pickle", example=records(features[:3]))
    return Case("iris-pickle", features[:5], model.predict(features[:5]).tolist(), FEATURES)


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    tmp = tmp_path_factory.mktemp("flavors")
    settings = Settings(home=tmp / "home", route_poll_seconds=0.05)
    features, labels = iris()
    with Client(settings=settings, actor="tester") as client:
        built = [
            _sklearn(client, features, labels),
            _xgboost(client, features, labels),
            _lightgbm(client, features, labels),
            _onnx(client),
            _python(client, tmp / "python"),
            _pickle(client, tmp / "pickle", features, labels),
        ]
        with ServerThread(settings) as server:
            yield Farm(server.url, client, {case.name: case for case in built})


SAFE = ["iris-sklearn", "iris-xgboost", "iris-lightgbm", "linear-onnx"]
CODE = ["summer", "iris-pickle"]


def _ask(farm: Farm, case: Case) -> tuple[httpx.Response, httpx.Response]:
    plain = httpx.post(
        f"{farm.url}/api/v1/models/{case.name}/predict",
        json={"inputs": [dict(zip(case.columns, map(float, r), strict=True)) for r in case.rows]},
        timeout=60,
    )
    tensor = {
        "name": "input-0",
        "shape": list(case.rows.shape),
        "datatype": "FP64",
        "data": case.rows.ravel().tolist(),
    }
    oip = httpx.post(
        f"{farm.url}/v2/models/{case.name}/infer", json={"inputs": [tensor]}, timeout=60
    )
    return plain, oip


def _same(got: list[Any], expected: list[Any]) -> None:
    np.testing.assert_allclose(
        np.asarray(got, dtype=float), np.asarray(expected, dtype=float), rtol=1e-5
    )


@pytest.mark.parametrize("name", SAFE)
def test_a_safe_flavor_answers_plain_json_and_oip(farm: Farm, name: str) -> None:
    case = farm.cases[name]
    plain, oip = _ask(farm, case)
    assert plain.status_code == 200, plain.text
    _same(plain.json()["predictions"], case.expected)
    assert oip.status_code == 200, oip.text
    output = oip.json()["outputs"][0]
    _same(output["data"], np.asarray(case.expected).ravel().tolist())


@pytest.mark.parametrize("name", CODE)
def test_a_code_bearing_flavor_answers_only_once_trusted(farm: Farm, name: str) -> None:
    case = farm.cases[name]
    plain, oip = _ask(farm, case)
    assert plain.status_code == 403, plain.text
    assert "trusted" in plain.json()["detail"]
    assert "sklearn (skops)" in plain.json()["detail"]
    assert oip.status_code == 403
    farm.client.trust_version(name, 1, reason="reviewed by the test")
    for _ in range(400):  # the server notices the trust within its poll interval
        plain, oip = _ask(farm, case)
        if plain.status_code == 200:
            break
    assert plain.status_code == 200, plain.text
    _same(plain.json()["predictions"], case.expected)
    assert oip.status_code == 200, oip.text
    _same(oip.json()["outputs"][0]["data"], case.expected)
