"""The flavors that carry no code: saved, registered, fetched, loaded and predicting."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from corral import Client
from corral.errors import InvalidArgument
from corral.serving import (
    MissingDependency,
    UnknownFlavor,
    UntrustedModel,
    detect_flavor,
    get_flavor,
    load_predictor,
)
from tests.serving._helpers import FEATURES, iris, need, records, register


class RowSum:
    """A class scikit-learn, NumPy and SciPy do not define: skops must not trust it."""

    def __init__(self) -> None:
        self.scale = 2.0

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(rows).sum(axis=1) * self.scale


def test_sklearn_round_trip_through_the_registry_predicts_like_the_estimator(
    local_client: Client, tmp_path: Path
) -> None:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, labels = iris()
    estimator = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=5))
    estimator.fit(features, labels)
    written = get_flavor("sklearn").save(estimator, tmp_path / "m", example=features[:3])
    assert written == ["model.skops"]

    files = register(local_client, "iris", tmp_path / "m", "sklearn", records(features[:3]))
    predictor = load_predictor(files.folder, files.flavor, signature=files.signature)

    assert predictor.input_names == FEATURES
    shuffled = [dict(reversed(list(row.items()))) for row in records(features[:10])]
    np.testing.assert_array_equal(predictor.predict(shuffled), estimator.predict(features[:10]))
    np.testing.assert_allclose(
        predictor.predict_proba(features[:10]), estimator.predict_proba(features[:10])
    )


def test_skops_file_with_a_type_off_the_allow_list_is_refused_naming_it(tmp_path: Path) -> None:
    need("skops")
    get_flavor("sklearn").save(RowSum(), tmp_path)
    with pytest.raises(UntrustedModel, match=r"tests\.serving\.test_safe_flavors\.RowSum") as err:
        load_predictor(tmp_path, "sklearn")
    assert "onnx" in err.value.message  # names the safe alternatives
    assert err.value.code == "permission_denied"

    trusted = load_predictor(tmp_path, "sklearn", trusted=True)
    np.testing.assert_array_equal(trusted.predict([[1.0, 2.0]]), [6.0])


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("sklearn.tree._tree.Tree", True),
        ("numpy.dtype", True),
        ("scipy.sparse._csr.csr_matrix", True),
        ("numpy.log1p", True),  # a ufunc
        ("numpy.memmap", False),  # opens files
        ("numpy.save", False),  # a function, not a type
        ("numpy.testing.assert_equal", False),
        ("posix.system", False),
        ("builtins.eval", False),
        ("sklearn.no_such_module.Thing", False),
    ],
)
def test_the_skops_allow_list_takes_only_library_types(name: str, allowed: bool) -> None:
    from corral.serving._sklearn import allowed_type

    assert allowed_type(name) is allowed


def _onnx_classifier(weights: np.ndarray, bias: np.ndarray) -> object:
    """Logistic regression as an ONNX graph: label and probabilities outputs."""
    onnx = need("onnx")
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["scores"]),
        helper.make_node("Add", ["scores", "B"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "iris",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 3]),
        ],
        initializer=[
            numpy_helper.from_array(weights.astype(np.float32), "W"),
            numpy_helper.from_array(bias.astype(np.float32), "B"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def test_onnx_round_trip_matches_the_logistic_regression_it_encodes(
    local_client: Client, tmp_path: Path
) -> None:
    need("onnxruntime")
    from sklearn.linear_model import LogisticRegression

    features, labels = iris()
    estimator = LogisticRegression(max_iter=1000).fit(features, labels)
    model = _onnx_classifier(estimator.coef_.T, estimator.intercept_)
    assert get_flavor("onnx").save(model, tmp_path / "m") == ["model.onnx"]

    files = register(local_client, "iris-onnx", tmp_path / "m", "onnx", features[:2])
    predictor = load_predictor(files.folder, files.flavor, signature=files.signature)

    outputs = predictor.predict(features[:20])
    assert isinstance(outputs, dict)
    np.testing.assert_array_equal(outputs["label"], estimator.predict(features[:20]))
    np.testing.assert_allclose(
        predictor.predict_proba({"input": features[:20].tolist()}),
        estimator.predict_proba(features[:20]),
        atol=1e-4,
    )


def test_onnx_with_several_inputs_takes_them_by_name(tmp_path: Path) -> None:
    need("onnxruntime")
    onnx = need("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["total"])],
        "add",
        [
            helper.make_tensor_value_info("a", TensorProto.DOUBLE, [None, 2]),
            helper.make_tensor_value_info("b", TensorProto.DOUBLE, [None, 2]),
        ],
        [helper.make_tensor_value_info("total", TensorProto.DOUBLE, [None, 2])],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "add.onnx"
    )

    predictor = load_predictor(tmp_path, "onnx")
    assert predictor.input_names == ["a", "b"]
    np.testing.assert_array_equal(predictor.predict({"a": [[1, 2]], "b": [[3, 4]]}), [[4, 6]])
    with pytest.raises(InvalidArgument, match="missing ONNX inputs: b"):
        predictor.predict({"a": [[1, 2]]})
    assert not predictor.supports_proba


@pytest.mark.parametrize("suffix", ["ubj", "json"])
def test_xgboost_native_model_predicts_like_the_classifier(
    local_client: Client, tmp_path: Path, suffix: str
) -> None:
    xgb = need("xgboost")
    features, labels = iris()
    classifier = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(features, labels)
    (tmp_path / "m").mkdir()
    classifier.save_model(tmp_path / "m" / f"model.{suffix}")

    files = register(local_client, "iris-xgb", tmp_path / "m", "xgboost", records(features[:3]))
    predictor = load_predictor(files.folder, files.flavor, signature=files.signature)

    np.testing.assert_array_equal(
        predictor.predict(records(features[:30])), classifier.predict(features[:30])
    )
    np.testing.assert_allclose(
        predictor.predict_proba(features[:30]), classifier.predict_proba(features[:30]), rtol=1e-6
    )


def test_xgboost_binary_and_regression_objectives(tmp_path: Path) -> None:
    xgb = need("xgboost")
    features, labels = iris()
    binary = xgb.XGBClassifier(n_estimators=3).fit(features, (labels > 0).astype(int))
    assert get_flavor("xgboost").save(binary, tmp_path / "b") == ["model.ubj"]
    regressor = xgb.XGBRegressor(n_estimators=3).fit(features, features[:, 0])
    get_flavor("xgboost").save(regressor, tmp_path / "r")

    loaded = load_predictor(tmp_path / "b", "xgboost")
    np.testing.assert_array_equal(loaded.predict(features), binary.predict(features))
    np.testing.assert_allclose(loaded.predict_proba(features), binary.predict_proba(features))
    loaded_regressor = load_predictor(tmp_path / "r", "xgboost")
    assert not loaded_regressor.supports_proba
    np.testing.assert_allclose(loaded_regressor.predict(features), regressor.predict(features))


def test_lightgbm_text_model_predicts_like_the_booster(
    local_client: Client, tmp_path: Path
) -> None:
    lgb = need("lightgbm")
    features, labels = iris()
    classifier = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(features, labels)
    assert get_flavor("lightgbm").save(classifier, tmp_path / "m") == ["model.txt"]

    files = register(local_client, "iris-lgb", tmp_path / "m", "lightgbm", records(features[:3]))
    predictor = load_predictor(files.folder, files.flavor, signature=files.signature)

    np.testing.assert_array_equal(
        predictor.predict(features[:30]), classifier.predict(features[:30])
    )
    np.testing.assert_allclose(
        predictor.predict_proba(records(features[:30])), classifier.predict_proba(features[:30])
    )


def test_files_are_recognised_by_content_and_safe_formats_win(tmp_path: Path) -> None:
    from corral.serving._files import folder_files

    need("skops")
    get_flavor("sklearn").save(RowSum(), tmp_path / "sk")
    (tmp_path / "sk" / "model.skops").rename(tmp_path / "sk" / "estimator.bin")
    (tmp_path / "sk" / "predictor.py").write_text("class Model: ...\n")
    (tmp_path / "lgb").mkdir()
    (tmp_path / "lgb" / "booster").write_text("tree\nversion=v4\nnum_class=1\n")
    (tmp_path / "xgb").mkdir()
    (tmp_path / "xgb" / "model.json").write_text('{"learner": {}, "version": [2, 1, 0]}')
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "config.json").write_text('{"not": "a model"}')
    (tmp_path / "pkl").mkdir()
    (tmp_path / "pkl" / "model.bin").write_bytes(b"\x80\x04\x95")

    assert detect_flavor(folder_files(tmp_path / "sk")) == "sklearn"
    assert detect_flavor(folder_files(tmp_path / "lgb")) == "lightgbm"
    assert detect_flavor(folder_files(tmp_path / "xgb")) == "xgboost"
    assert detect_flavor(folder_files(tmp_path / "pkl")) == "pickle"
    assert detect_flavor([Path("deep/model.onnx")]) == "onnx"
    assert detect_flavor(folder_files(tmp_path / "plain")) is None
    with pytest.raises(InvalidArgument, match="no flavor recognises"):
        load_predictor(tmp_path / "plain", "files")
    # The registry recorded no flavor: the runtime detects it from the content.
    assert load_predictor(tmp_path / "sk", "", trusted=True).predict([[1.0]])[0] == 2.0


@pytest.mark.parametrize(
    ("flavor", "module", "filename"),
    [
        ("onnx", "onnxruntime", "model.onnx"),
        ("xgboost", "xgboost", "model.json"),
        ("lightgbm", "lightgbm", "model.txt"),
        ("sklearn", "skops.io", "model.skops"),
    ],
)
def test_a_missing_optional_library_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, flavor: str, module: str, filename: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    (tmp_path / filename).write_bytes(b"never read")
    with pytest.raises(MissingDependency, match=rf"pip install 'corral\[{flavor}\]'") as err:
        load_predictor(tmp_path, flavor)
    assert err.value.code == "unavailable"


def test_unknown_flavor_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(UnknownFlavor, match="unknown flavor 'tensorflow'; Corral knows: joblib"):
        load_predictor(tmp_path, "tensorflow")


def test_two_candidate_files_must_be_told_apart(tmp_path: Path) -> None:
    (tmp_path / "a.onnx").write_bytes(b"")
    (tmp_path / "b.onnx").write_bytes(b"")
    need("onnxruntime")
    with pytest.raises(InvalidArgument, match=r"several ONNX files \(a.onnx, b.onnx\)"):
        load_predictor(tmp_path, "onnx")
