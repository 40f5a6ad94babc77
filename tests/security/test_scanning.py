"""The artifact scanner: crafted payloads are unsafe and name their global, real models are safe.

Malicious samples are only ever dumped (which runs nothing), never loaded.
"""

from __future__ import annotations

import importlib
import io
import json
import operator
import os
import pickle
import stat
import timeit
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from corral.errors import InvalidArgument
from corral.security import ScanLimits, ScanReport, Verdict, scan_file, scan_folder


class _Payload:
    """Pickles as ``func(*args)``: the shape of every pickle exploit."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args)


def _evil(protocol: int = pickle.DEFAULT_PROTOCOL) -> bytes:
    return pickle.dumps(_Payload(os.system, "echo pwned"), protocol=protocol)


def _reasons(report: ScanReport) -> str:
    return " | ".join(r for f in report.findings for r in f.reasons)


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def _assert_unsafe(report: ScanReport, *names: str) -> None:
    assert report.verdict is Verdict.UNSAFE, report
    for name in names:
        assert name in _reasons(report), _reasons(report)


@pytest.fixture
def fitted() -> Any:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    return LogisticRegression().fit(rng.random((30, 3)), [0, 1, 2] * 10)


# -- pickles ------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_os_system_reduce_is_unsafe_in_every_protocol(tmp_path: Path, protocol: int) -> None:
    report = scan_file(_write(tmp_path, "model.pkl", _evil(protocol)))
    _assert_unsafe(report, f"{os.system.__module__}.system")
    assert report.findings[0].format == "pickle"


@pytest.mark.parametrize(
    ("payload", "global_name"),
    [
        (_Payload(operator.methodcaller, "system", "id"), "operator.methodcaller"),
        (_Payload(importlib.import_module, "os"), "importlib.import_module"),
        (_Payload(timeit.timeit, "print(1)"), "timeit.timeit"),
        (_Payload(eval, "1+1"), "builtins.eval"),
        (_Payload(getattr, "", "join"), "builtins.getattr"),
        (_Payload(np.savetxt, "/tmp/x", [1]), "savetxt is not on the allow-list"),
    ],
)
def test_less_common_globals_are_unsafe_by_the_allow_list(
    tmp_path: Path, payload: _Payload, global_name: str
) -> None:
    report = scan_file(_write(tmp_path, "model.pkl", pickle.dumps(payload)))
    _assert_unsafe(report, global_name)


def test_pickle_renamed_to_any_extension_is_detected_by_content(tmp_path: Path) -> None:
    _write(tmp_path, "weights.model", _evil())
    _write(tmp_path, "pytorch_model.bin", _evil(2))

    report = scan_folder(tmp_path)

    assert {f.path for f in report.problems} == {"weights.model", "pytorch_model.bin"}
    assert {f.format for f in report.problems} == {"pickle"}


def test_truncated_pickle_is_unsafe_because_it_cannot_be_parsed(tmp_path: Path) -> None:
    data = pickle.dumps({"weights": list(range(100))})
    report = scan_file(_write(tmp_path, "model.pkl", data[: len(data) // 2]))
    _assert_unsafe(report, "cannot be parsed")


def test_second_pickle_stream_after_a_clean_one_is_scanned(tmp_path: Path) -> None:
    report = scan_file(_write(tmp_path, "model.pkl", pickle.dumps([1, 2]) + _evil()))
    _assert_unsafe(report, ".system")


def test_ufunc_reconstruct_importing_a_non_numpy_module_is_unsafe(tmp_path: Path) -> None:
    data = (
        b"\x80\x02cnumpy.core\n_ufunc_reconstruct\n"
        b"X\x02\x00\x00\x00osX\x06\x00\x00\x00system\x86R"
        b"X\x02\x00\x00\x00id\x85R."
    )
    report = scan_file(_write(tmp_path, "model.pkl", data))
    _assert_unsafe(report, "_ufunc_reconstruct is called to import")


def test_sklearn_model_pickled_with_pickle_and_joblib_is_safe(tmp_path: Path, fitted: Any) -> None:
    import joblib

    _write(tmp_path, "model.pkl", pickle.dumps(fitted))
    joblib.dump(fitted, tmp_path / "model.joblib")
    joblib.dump(fitted, tmp_path / "compressed.joblib", compress=3)
    joblib.dump(fitted, tmp_path / "gzipped.joblib", compress=("gzip", 3))

    report = scan_folder(tmp_path)

    assert report.safe, report.problems
    assert any(f.format == "zlib" for f in report.findings)


def _estimators() -> list[Any]:
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    rng = np.random.default_rng(0)
    features, labels = rng.random((60, 3)), np.array([0, 1, 2] * 20)
    models = [
        RandomForestClassifier(n_estimators=2, random_state=0),
        GradientBoostingClassifier(n_estimators=2),
        HistGradientBoostingClassifier(max_iter=2),
        KNeighborsClassifier(algorithm="kd_tree"),
        make_pipeline(
            make_column_transformer((FunctionTransformer(np.log1p), [0]), remainder="passthrough"),
            StandardScaler(),
            RandomForestClassifier(n_estimators=2),
        ),
    ]
    return [model.fit(features, labels) for model in models]


def test_common_sklearn_estimators_are_safe_in_every_container(tmp_path: Path) -> None:
    import joblib

    for i, model in enumerate(_estimators()):
        _write(tmp_path, f"{i}-p2.pkl", pickle.dumps(model, protocol=2))
        _write(tmp_path, f"{i}-p5.pkl", pickle.dumps(model, protocol=5))
        joblib.dump(model, tmp_path / f"{i}.joblib")

    report = scan_folder(tmp_path)

    assert report.safe, report.problems
    assert len(report.findings) == 15


def test_payload_after_a_numpy_array_inside_joblib_is_unsafe(tmp_path: Path) -> None:
    import joblib

    joblib.dump([np.arange(1000.0), _Payload(os.system, "id")], tmp_path / "model.joblib")
    joblib.dump(
        {"w": np.ones((50, 4)), "run": _Payload(timeit.timeit, "1")},
        tmp_path / "packed.joblib",
        compress=3,
    )

    report = scan_folder(tmp_path)

    assert {f.path for f in report.problems} == {"model.joblib", "packed.joblib!zlib"}
    _assert_unsafe(report, ".system", "timeit.timeit")


def test_joblib_object_array_holding_a_payload_is_unsafe(tmp_path: Path) -> None:
    import joblib

    array = np.array([1, _Payload(os.system, "id")], dtype=object)
    joblib.dump({"w": np.ones(8), "objects": array}, tmp_path / "model.joblib")

    _assert_unsafe(scan_folder(tmp_path), ".system")


# -- numpy --------------------------------------------------------------------------------


def test_npy_numeric_is_safe_and_object_dtype_with_a_payload_is_unsafe(tmp_path: Path) -> None:
    np.save(tmp_path / "weights.npy", np.arange(12.0).reshape(3, 4))
    evil = np.array([_Payload(importlib.import_module, "os")], dtype=object)
    np.save(tmp_path / "labels.npy", evil, allow_pickle=True)

    report = scan_folder(tmp_path)

    assert [f.path for f in report.problems] == ["labels.npy"]
    assert report.problems[0].format == "npy-object"
    _assert_unsafe(report, "importlib.import_module")


# -- archives -----------------------------------------------------------------------------


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def test_pytorch_zip_with_malicious_data_pkl_is_unsafe(tmp_path: Path) -> None:
    _zip(
        tmp_path / "model.pt",
        {
            "archive/data.pkl": _evil(2),
            "archive/data/0": np.arange(4.0).tobytes(),
            "archive/version": b"3\n",
        },
    )

    report = scan_folder(tmp_path)

    _assert_unsafe(report, ".system")
    assert [f.path for f in report.problems] == ["model.pt!archive/data.pkl"]
    assert report.findings[0].format == "pytorch"


def test_pytorch_style_zip_with_a_tensor_state_dict_is_safe(tmp_path: Path) -> None:
    # What torch.save writes for {"w": tensor}: storages by persistent id, then rebuild calls.
    data_pkl = (
        b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00wq\x02"
        b"ctorch._utils\n_rebuild_tensor_v2\nq\x03((X\x07\x00\x00\x00storageq\x04"
        b"ctorch\nFloatStorage\nq\x05X\x01\x00\x00\x000q\x06X\x03\x00\x00\x00cpuq\x07K\x04tq\x08"
        b"QK\x00K\x04\x85q\tK\x01\x85q\n\x89h\x00)Rq\x0btq\x0cRq\rs."
    )
    _zip(tmp_path / "model.pt", {"archive/data.pkl": data_pkl, "archive/data/0": b"\x00" * 16})

    report = scan_folder(tmp_path)

    assert report.safe, report.problems


def test_zip_slip_absolute_and_symlink_entries_are_unsafe(tmp_path: Path) -> None:
    path = tmp_path / "bundle.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("../../evil.sh", b"echo")
        archive.writestr("/etc/cron.d/evil", b"echo")
        link = zipfile.ZipInfo("link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")

    report = scan_file(path)

    _assert_unsafe(report, "'../../evil.sh' climbs out", "'/etc/cron.d/evil' has an absolute")
    _assert_unsafe(report, "'link' is a symbolic link")


def test_decompression_bomb_beyond_the_limits_is_unsafe(tmp_path: Path) -> None:
    _zip(tmp_path / "bomb.zip", {"zeros.bin": b"\x00" * 2_000_000})
    limits = ScanLimits(max_ratio=50, ratio_floor_bytes=1_000_000)

    report = scan_folder(tmp_path, limits=limits)
    _assert_unsafe(report, "'zeros.bin' expands", "decompression bomb")

    total = scan_folder(tmp_path, limits=ScanLimits(max_uncompressed_bytes=1_000_000))
    _assert_unsafe(total, "expands to 2000000 bytes")


def test_archives_nested_deeper_than_the_limit_are_unsafe(tmp_path: Path) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("a.txt", b"hello")
    for _ in range(3):
        outer = io.BytesIO()
        with zipfile.ZipFile(outer, "w") as archive:
            archive.writestr("inner.zip", inner.getvalue())
        inner = outer

    report = scan_file(
        _write(tmp_path, "deep.zip", inner.getvalue()), limits=ScanLimits(max_depth=2)
    )

    _assert_unsafe(report, "nests archives deeper than the limit 2")


def test_symlink_in_the_folder_is_unsafe(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text("{}")
    (tmp_path / "passwd").symlink_to("/etc/passwd")

    report = scan_folder(tmp_path)

    assert [(f.path, f.reasons) for f in report.problems] == [("passwd", ("is a symbolic link",))]


def test_scanning_a_missing_folder_is_refused_rather_than_reported_clean(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="is not a folder"):
        scan_folder(tmp_path / "missing")


# -- keras, onnx --------------------------------------------------------------------------


def _keras_config(*layers: str) -> bytes:
    return json.dumps(
        {
            "class_name": "Sequential",
            "config": {"layers": [{"class_name": name, "config": {}} for name in layers]},
        }
    ).encode()


def test_keras_file_with_a_lambda_layer_is_unsafe(tmp_path: Path) -> None:
    meta = json.dumps({"keras_version": "3.0.0"}).encode()
    _zip(
        tmp_path / "bad.keras",
        {"config.json": _keras_config("Dense", "Lambda"), "metadata.json": meta},
    )
    _zip(tmp_path / "good.keras", {"config.json": _keras_config("Dense"), "metadata.json": meta})

    report = scan_folder(tmp_path)

    assert [f.path for f in report.problems] == ["bad.keras!config.json"]
    _assert_unsafe(report, "a Lambda layer runs Python code")


def _onnx_model(location: str | None) -> bytes:
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])
    if location is not None:
        weight.ClearField("float_data")
        weight.data_location = TensorProto.EXTERNAL
        entry = weight.external_data.add()
        entry.key, entry.value = "location", location
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [weight],
    )
    return onnx.helper.make_model(graph).SerializeToString()


def test_onnx_external_data_escaping_the_folder_is_unsafe(tmp_path: Path) -> None:
    _write(tmp_path, "escape.onnx", _onnx_model("../../etc/passwd"))
    _write(tmp_path, "absolute.onnx", _onnx_model("/etc/passwd"))

    report = scan_folder(tmp_path)

    _assert_unsafe(report, "'../../etc/passwd': climbs out", "'/etc/passwd': an absolute path")


def test_onnx_inline_or_with_external_data_inside_the_folder_is_safe(tmp_path: Path) -> None:
    _write(tmp_path, "inline.onnx", _onnx_model(None))
    _write(tmp_path, "external.onnx", _onnx_model("weights.bin"))
    _write(tmp_path, "weights.bin", np.array([1.0, 2.0], dtype=np.float32).tobytes())

    report = scan_folder(tmp_path, strict=False)

    assert report.safe, report.problems
    assert {f.format for f in report.findings if f.path.endswith(".onnx")} == {"onnx"}


# -- benign formats -----------------------------------------------------------------------


def test_skops_file_of_a_logistic_regression_is_safe(tmp_path: Path, fitted: Any) -> None:
    import skops.io

    skops.io.dump(fitted, tmp_path / "model.skops")

    report = scan_folder(tmp_path)

    assert report.safe, report.problems
    assert report.findings[0].format == "skops"


def test_skops_schema_naming_a_dangerous_function_is_unsafe(tmp_path: Path) -> None:
    schema = {
        "__class__": "function",
        "__module__": "builtins",
        "__loader__": "FunctionNode",
        "content": {"module_path": "os", "function": "system"},
    }
    _zip(tmp_path / "model.skops", {"schema.json": json.dumps(schema).encode()})

    _assert_unsafe(scan_folder(tmp_path), "type os.system is not on the allow-list")


def test_xgboost_lightgbm_and_plain_data_files_are_safe(tmp_path: Path) -> None:
    import lightgbm
    import xgboost

    rng = np.random.default_rng(0)
    features, labels = rng.random((40, 3)), np.array([0, 1] * 20)
    booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(features, label=labels), 2)
    booster.save_model(tmp_path / "model.json")
    booster.save_model(tmp_path / "model.ubj")
    lgb = lightgbm.train(
        {"verbose": -1, "min_data_in_leaf": 5}, lightgbm.Dataset(features, labels), 2
    )
    lgb.save_model(tmp_path / "model.txt")
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    (tmp_path / "card.json").write_text('{"name": "churn"}')
    (tmp_path / "empty").write_bytes(b"")

    report = scan_folder(tmp_path, strict=True)

    assert report.safe, report.problems
    formats = {f.path: f.format for f in report.findings}
    assert formats["model.ubj"] == "ubjson"
    assert formats["model.txt"] == "text"


def test_unknown_binary_is_unsafe_only_when_strict(tmp_path: Path) -> None:
    _write(tmp_path, "weights.bin", bytes(range(1, 256)) * 4)

    relaxed, strict = scan_folder(tmp_path), scan_folder(tmp_path, strict=True)

    assert relaxed.safe
    assert relaxed.findings[0].verdict is Verdict.UNKNOWN
    assert not strict.safe
    assert strict.problems[0].reasons == ("format not recognised",)


def test_unknown_binary_with_an_embedded_pickle_is_unsafe(tmp_path: Path) -> None:
    _write(tmp_path, "weights.dat", b"\x01\x02garbage" + _evil(4))

    _assert_unsafe(scan_folder(tmp_path), "embedded pickle stream at byte 9")


def test_sklearn_private_reexport_of_a_socket_client_is_unsafe(tmp_path: Path) -> None:
    data = b"\x80\x02csklearn.callback._transport\nClient\nX\x0e\x00\x00\x00127.0.0.1:6379\x85R."

    _assert_unsafe(scan_file(_write(tmp_path, "model.pkl", data)), "_transport.Client")


def test_picklescan_second_opinion_is_recorded_when_installed(tmp_path: Path) -> None:
    pytest.importorskip("picklescan")
    _write(tmp_path, "model.pkl", _evil())
    _write(tmp_path, "clean.pkl", pickle.dumps({"w": [1.0]}))

    report = scan_folder(tmp_path, second_opinion=True)

    opinions = {f.path: f for f in report.findings if f.scanner == "picklescan"}
    assert opinions["model.pkl"].verdict is Verdict.UNSAFE
    assert "picklescan: dangerous global" in opinions["model.pkl"].reasons[0]
    assert opinions["clean.pkl"].verdict is Verdict.SAFE
    assert [f.path for f in report.problems] == ["model.pkl", "model.pkl"]


def test_chance_pickle_marker_in_weights_is_not_an_embedded_pickle(tmp_path: Path) -> None:
    """Random weights can hold PROTO 4 + FRAME by chance; the frame length then cannot fit."""
    rng = np.random.default_rng(0)
    noise = rng.bytes(4096)
    path = tmp_path / "weights.bin"
    path.write_bytes(noise + b"\x80\x04\x95" + b"\xff" * 8 + noise)

    report = scan_file(path)

    assert report.verdict is not Verdict.UNSAFE, report


def test_real_framed_pickle_after_weights_is_unsafe(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "weights.bin"
    path.write_bytes(rng.bytes(4096) + _evil(protocol=4))

    report = scan_file(path)

    assert report.verdict is Verdict.UNSAFE
    assert any("embedded pickle" in r for f in report.findings for r in f.reasons)


def test_opaque_bytes_that_start_like_onnx_are_not_taken_for_it() -> None:
    # An ONNX model is parsed whole, so only files whose first fields read as ModelProto's
    # may be: 1 GiB of weights starting with 0x08 must not be read into memory.
    import random

    from corral.security._formats import detect, walks_like_onnx

    model = _onnx_model(None)
    assert detect(model[:64]) == "protobuf"
    assert walks_like_onnx(model[: 1 << 20], len(model))
    assert not walks_like_onnx(model[: 1 << 20], len(model) - 1)  # its graph would not fit
    rng = random.Random(5)
    taken = sum(walks_like_onnx(b"\x08" + rng.randbytes(4096), 1 << 30) for _ in range(2000))
    assert taken < 40  # about 0.6 %; of all random files, 1 in 256 of that
