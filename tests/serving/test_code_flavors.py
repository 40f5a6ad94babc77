"""Code-bearing flavors load only for trusted versions; refusals name the safe flavors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from corral import Client
from corral.errors import InvalidArgument
from corral.serving import UntrustedModel, get_flavor, load_predictor
from tests.serving._helpers import iris, register

PREDICTOR = """
from pathlib import Path

import numpy as np


class Model:
    input_names = ["a", "b"]

    def __init__(self, folder: Path) -> None:
        self.offset = float((folder / "offset.txt").read_text())

    def predict(self, inputs):
        if isinstance(inputs, dict):
            inputs = np.column_stack([inputs["a"], inputs["b"]])
        return np.asarray(inputs).sum(axis=1) + self.offset
"""


@pytest.fixture
def python_version(local_client: Client, tmp_path: Path) -> Path:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "predictor.py").write_text(PREDICTOR)
    (tmp_path / "m" / "offset.txt").write_text("10")
    files = register(local_client, "summer", tmp_path / "m", "python")
    return files.folder


def test_python_flavor_is_refused_unless_trusted(python_version: Path) -> None:
    with pytest.raises(UntrustedModel, match=r"'predictor\.py' is code shipped") as err:
        load_predictor(python_version, "python")
    assert "sklearn (skops), onnx" in err.value.message


def test_trusted_python_flavor_serves_the_shipped_class(python_version: Path) -> None:
    predictor = load_predictor(python_version, "python", trusted=True)
    assert predictor.input_names == ["a", "b"]
    np.testing.assert_array_equal(predictor.predict([[1, 2], [3, 4]]), [13, 17])
    np.testing.assert_array_equal(predictor.predict([{"a": 1, "b": 1}]), [12])
    assert not predictor.supports_proba
    with pytest.raises(InvalidArgument, match="does not predict probabilities"):
        predictor.predict_proba([[1, 2]])


def test_python_flavor_needs_a_model_class(tmp_path: Path) -> None:
    (tmp_path / "predictor.py").write_text("VALUE = 1\n")
    with pytest.raises(InvalidArgument, match="defines no class Model"):
        load_predictor(tmp_path, "python", trusted=True)


@pytest.mark.parametrize(
    ("flavor", "filename"), [("pickle", "model.pkl"), ("joblib", "model.joblib")]
)
def test_pickle_and_joblib_are_refused_unless_trusted(
    local_client: Client, tmp_path: Path, flavor: str, filename: str
) -> None:
    import joblib
    from sklearn.linear_model import LogisticRegression

    features, labels = iris()
    estimator = LogisticRegression(max_iter=1000).fit(features, labels)
    (tmp_path / "m").mkdir()
    if flavor == "pickle":
        (tmp_path / "m" / filename).write_bytes(pickle.dumps(estimator))
    else:
        joblib.dump(estimator, tmp_path / "m" / filename)
    files = register(local_client, f"iris-{flavor}", tmp_path / "m", flavor)

    with pytest.raises(UntrustedModel, match="can run any code") as err:
        load_predictor(files.folder, files.flavor)
    assert "mark the version trusted" in err.value.message
    assert "xgboost" in err.value.message

    predictor = load_predictor(files.folder, files.flavor, trusted=True)
    assert predictor.supports_proba
    np.testing.assert_array_equal(predictor.predict(features[:9]), estimator.predict(features[:9]))
    with pytest.raises(InvalidArgument, match="2 features per row; expected 4"):
        predictor.predict([[1.0, 2.0]])


@pytest.mark.parametrize("flavor", ["python", "pickle", "joblib"])
def test_corral_saves_no_code_bearing_flavor(tmp_path: Path, flavor: str) -> None:
    with pytest.raises(InvalidArgument, match="does not save"):
        get_flavor(flavor).save(object(), tmp_path)


def test_a_trusted_pickle_without_predict_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps({"weights": [1, 2]}))
    with pytest.raises(InvalidArgument, match="is a dict, which has no predict"):
        load_predictor(tmp_path, "pickle", trusted=True)
