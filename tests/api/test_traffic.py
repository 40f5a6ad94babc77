"""Canary and shadow traffic from deployment configs, over HTTP; rollback restores a split."""

from __future__ import annotations

import time
from collections import Counter

import httpx
import pytest

from corral.errors import InvalidArgument
from tests.fixtures.serving import Served, training_data


def _predict(served: Served, **body: object) -> dict:  # type: ignore[type-arg]
    rows = training_data(seed=2, rows=2)[0].tolist()
    response = httpx.post(
        f"{served.url}/api/v1/models/clf/predict", json={"inputs": rows, **body}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _until(check, seconds: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the server did not pick up the change"
        time.sleep(0.05)


def test_a_canary_takes_its_share_and_a_key_always_lands_on_the_same_side(
    served: Served,
) -> None:
    served.client.create_config(
        "clf", "split", {"traffic": {"canary": {"version": 2, "percent": 30}}}
    )
    served.client.set_alias("clf", "champion", 1, config="split", reason="canary 30 %")
    _until(lambda: any(_predict(served, key=f"probe-{i}")["canary"] for i in range(40)))
    sides = {}
    for i in range(200):
        answer = _predict(served, key=f"user-{i}")
        assert answer["version"] == (2 if answer["canary"] else 1)
        sides[f"user-{i}"] = answer["version"]
    share = Counter(sides.values())[2] / len(sides)
    assert 0.15 < share < 0.45, share
    for key in list(sides)[:20]:  # sticky: the same key, the same version
        assert _predict(served, key=key)["version"] == sides[key]


def test_rolling_back_the_alias_restores_the_previous_split(served: Served) -> None:
    served.client.create_config(
        "clf", "split", {"traffic": {"canary": {"version": 2, "percent": 0}}}
    )
    served.client.set_alias("clf", "champion", 1, config="split", config_revision=1)
    served.client.create_config(
        "clf", "split", {"traffic": {"canary": {"version": 2, "percent": 100}}}
    )
    served.client.set_alias(
        "clf", "champion", 1, config="split", config_revision=2, reason="all in"
    )
    _until(lambda: _predict(served)["version"] == 2)
    served.client.rollback_alias("clf", "champion", reason="too soon")
    _until(lambda: _predict(served)["version"] == 1)
    assert all(not _predict(served, key=f"k{i}")["canary"] for i in range(20))


def test_a_shadow_gets_a_copy_and_the_caller_the_champions_answer(served: Served) -> None:
    served.client.create_config("clf", "mirror", {"traffic": {"shadow": {"version": 2}}})
    served.client.set_alias("clf", "champion", 1, config="mirror")

    def shadowed() -> bool:
        _predict(served)
        metrics = httpx.get(f"{served.url}/metrics").text
        return (
            'corral_shadow_predictions_total{model="clf",outcome="differ",version="2"}' in metrics
        )

    _until(shadowed)
    for _ in range(5):
        answer = _predict(served)
        assert (answer["version"], answer["canary"]) == (1, False)


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"traffic": {"canary": {"version": 2, "percent": 150}}}, "traffic.canary.percent"),
        ({"batching": {"max_batch_rows": 0}}, "batching.max_batch_rows"),
        ({"limits": {"rows": 5}}, "limits"),
    ],
)
def test_a_malformed_config_is_refused_when_created(
    served: Served,
    values: dict,
    words: str,  # type: ignore[type-arg]
) -> None:
    with pytest.raises(InvalidArgument, match=words.replace(".", r"\.")):
        served.client.create_config("clf", "broken", values)
