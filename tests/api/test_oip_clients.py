"""The OIP V2 routes through clients nobody here wrote: Triton's HTTP client and KServe's."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest

from corral import Client
from corral.config import Settings
from tests.fixtures.corral import ServerThread
from tests.fixtures.serving import FEATURES, Served, register_classifiers, training_data
from tests.serving._helpers import need

T = TypeVar("T")


@pytest.fixture(scope="module")
def oip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, int]]:
    """One server for the module ('clf' as in ``served``) and its port."""
    tmp: Path = tmp_path_factory.mktemp("oip-clients")
    settings = Settings(home=tmp / "home", route_poll_seconds=0.05)
    with Client(settings=settings, actor="tester") as client:
        first, flipped = register_classifiers(client, tmp)
        with ServerThread(settings) as server:
            yield Served(server.url, settings, client, "clf", first, flipped), server.port


def rows(count: int = 5) -> np.ndarray:
    features, _ = training_data(seed=3, rows=count)
    return features


# -- tritonclient ---------------------------------------------------------------------


@pytest.fixture
def triton(oip: tuple[Served, int]) -> Iterator[Any]:
    http = need("tritonclient.http")
    client = http.InferenceServerClient(url=f"127.0.0.1:{oip[1]}")
    yield client
    client.close()


def _triton_input(name: str, data: np.ndarray, datatype: str, *, binary: bool = False) -> Any:
    http = need("tritonclient.http")
    tensor = http.InferInput(name, list(data.shape), datatype)
    tensor.set_data_from_numpy(data, binary_data=binary)
    return tensor


def test_tritonclient_sees_the_server_and_model_as_live_and_ready(triton: Any) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("clf")
    assert triton.is_model_ready("clf", model_version="1")
    assert triton.is_model_ready("clf", model_version="2")
    assert triton.is_model_ready("clf", model_version="champion")
    assert not triton.is_model_ready("ghost")
    assert not triton.is_model_ready("clf", model_version="9")


def test_tritonclient_reads_server_and_model_metadata(triton: Any) -> None:
    assert triton.get_server_metadata()["name"] == "corral"
    meta = triton.get_model_metadata("clf")
    assert meta["name"] == "clf"
    assert meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == FEATURES
    assert {i["datatype"] for i in meta["inputs"]} == {"FP64"}
    assert meta["outputs"][0]["name"] == "predict"
    assert triton.get_model_metadata("clf", model_version="2")["versions"] == ["2"]
    assert triton.get_model_metadata("clf", model_version="champion")["versions"] == ["1"]


@pytest.mark.parametrize(("datatype", "dtype"), [("FP64", np.float64), ("FP32", np.float32)])
def test_tritonclient_infers_one_float_matrix(
    oip: tuple[Served, int], triton: Any, datatype: str, dtype: Any
) -> None:
    data = rows().astype(dtype)
    result = triton.infer("clf", [_triton_input("input-0", data, datatype)])
    assert result.as_numpy("predict").tolist() == oip[0].first.predict(data).tolist()
    response = result.get_response()
    assert response["model_name"] == "clf"
    assert response["model_version"] == "1"


def test_tritonclient_infers_an_int64_matrix(oip: tuple[Served, int], triton: Any) -> None:
    data = np.round(rows() * 3).astype(np.int64)
    result = triton.infer("clf", [_triton_input("input-0", data, "INT64")])
    assert result.as_numpy("predict").tolist() == oip[0].first.predict(data).tolist()


def test_tritonclient_infers_one_tensor_per_column(oip: tuple[Served, int], triton: Any) -> None:
    data = rows(4)
    inputs = [
        _triton_input(name, np.ascontiguousarray(data[:, i]), "FP64")
        for i, name in enumerate(FEATURES)
    ]
    result = triton.infer("clf", inputs)
    assert result.as_numpy("predict").tolist() == oip[0].first.predict(data).tolist()


def test_tritonclient_infers_with_requested_outputs_and_versions(
    oip: tuple[Served, int], triton: Any
) -> None:
    http = need("tritonclient.http")
    served, _ = oip
    data = rows(6)
    wanted = [http.InferRequestedOutput("predict", binary_data=False)]
    inputs = [_triton_input("input-0", data, "FP64")]
    result = triton.infer("clf", inputs, outputs=wanted, request_id="req-7")
    assert result.get_response()["id"] == "req-7"
    assert [o["name"] for o in result.get_response()["outputs"]] == ["predict"]
    assert result.as_numpy("predict").tolist() == served.first.predict(data).tolist()
    second = triton.infer("clf", inputs, model_version="2", outputs=wanted)
    assert second.get_response()["model_version"] == "2"
    assert second.as_numpy("predict").tolist() == served.flipped.predict(data).tolist()
    by_alias = triton.infer("clf", inputs, model_version="champion")
    assert by_alias.as_numpy("predict").tolist() == served.first.predict(data).tolist()


def test_tritonclient_asking_for_an_unknown_output_is_a_4xx_naming_it(triton: Any) -> None:
    http = need("tritonclient.http")
    utils = need("tritonclient.utils")
    inputs = [_triton_input("input-0", rows(2), "FP64")]
    with pytest.raises(utils.InferenceServerException, match="proba") as caught:
        triton.infer("clf", inputs, outputs=[http.InferRequestedOutput("proba", binary_data=False)])
    assert caught.value.status() == "422"


def test_tritonclient_binary_tensors_are_refused_naming_the_json_form(triton: Any) -> None:
    utils = need("tritonclient.utils")
    inputs = [_triton_input("input-0", rows(2).astype(np.float32), "FP32", binary=True)]
    with pytest.raises(utils.InferenceServerException, match="binary_data=False") as caught:
        triton.infer("clf", inputs)
    assert caught.value.status() == "400"


def test_tritonclient_shape_mistakes_come_back_as_4xx_naming_the_input(triton: Any) -> None:
    utils = need("tritonclient.utils")
    inputs = [_triton_input("wide", np.zeros((2, 7)), "FP64")]
    with pytest.raises(utils.InferenceServerException, match="'wide' has 7 features") as caught:
        triton.infer("clf", inputs)
    assert caught.value.status() == "422"
    with pytest.raises(utils.InferenceServerException, match="ghost") as missing:
        triton.infer("ghost", inputs)
    assert missing.value.status() == "404"


# -- kserve ---------------------------------------------------------------------------


def _kserve(call: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``call(client)`` with a fresh V2 REST client on a fresh event loop."""
    kserve = need("kserve")

    async def run() -> T:
        client = kserve.InferenceRESTClient(kserve.RESTConfig(protocol="v2", timeout=30))
        try:
            return await call(client)
        finally:
            await client.close()

    return asyncio.run(run())


def _kserve_request(tensors: list[tuple[str, np.ndarray, str]], **extra: Any) -> Any:
    kserve = need("kserve")
    inputs = []
    for name, data, datatype in tensors:
        tensor = kserve.InferInput(name, list(data.shape), datatype)
        tensor.set_data_from_numpy(data, binary_data=False)
        inputs.append(tensor)
    return kserve.InferRequest(model_name="clf", infer_inputs=inputs, **extra)


def test_kserve_sees_the_server_and_model_as_live_and_ready(oip: tuple[Served, int]) -> None:
    url = oip[0].url

    async def check(client: Any) -> list[bool]:
        return [
            await client.is_server_live(url),
            await client.is_server_ready(url),
            await client.is_model_ready(url, "clf"),
        ]

    assert _kserve(check) == [True, True, True]


@pytest.mark.parametrize(
    ("datatype", "dtype"),
    [("FP64", np.float64), ("FP32", np.float32), ("INT32", np.int32), ("INT64", np.int64)],
)
def test_kserve_infers_one_matrix_in_each_numeric_dtype(
    oip: tuple[Served, int], datatype: str, dtype: Any
) -> None:
    served = oip[0]
    data = np.round(rows() * 3).astype(dtype)
    request = _kserve_request([("input-0", data, datatype)], request_id="k-1")
    response = _kserve(lambda client: client.infer(served.url, request, model_name="clf"))
    assert response.id == "k-1"
    assert response.model_name == "clf"
    assert response.outputs[0].name == "predict"
    assert response.outputs[0].as_numpy().tolist() == served.first.predict(data).tolist()


def test_kserve_infers_one_tensor_per_column_with_a_requested_output(
    oip: tuple[Served, int],
) -> None:
    infer_type = need("kserve.protocol.infer_type")
    served = oip[0]
    data = rows(3)
    tensors = [(name, np.ascontiguousarray(data[:, i]), "FP64") for i, name in enumerate(FEATURES)]
    request = _kserve_request(tensors, request_outputs=[infer_type.RequestedOutput("predict")])
    response = _kserve(lambda client: client.infer(served.url, request, model_name="clf"))
    assert [o.name for o in response.outputs] == ["predict"]
    assert response.outputs[0].as_numpy().tolist() == served.first.predict(data).tolist()


def test_kserve_mistakes_come_back_as_4xx_with_the_servers_message(
    oip: tuple[Served, int],
) -> None:
    kserve = need("kserve")
    served = oip[0]
    wrong = _kserve_request([("f0", rows(2)[:, 0].copy(), "FP64")])
    with pytest.raises(httpx.HTTPStatusError, match="missing input columns 'f1'") as caught:
        _kserve(lambda client: client.infer(served.url, wrong, model_name="clf"))
    assert caught.value.response.status_code == 422
    binary = kserve.InferInput("input-0", [2, 20], "FP32")
    binary.set_data_from_numpy(rows(2).astype(np.float32), binary_data=True)
    request = kserve.InferRequest(model_name="clf", infer_inputs=[binary])
    with pytest.raises(httpx.HTTPStatusError, match="binary_data=False") as refused:
        _kserve(lambda client: client.infer(served.url, request, model_name="clf"))
    assert refused.value.response.status_code == 400
