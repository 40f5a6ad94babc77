"""parse_deployment: a config's serving sections, checked field by field."""

from __future__ import annotations

from typing import Any

import pytest

from corral.errors import InvalidArgument
from corral.serving import BatchPolicy, Deployment, Target, TrafficPolicy, parse_deployment


@pytest.mark.parametrize("values", [None, {}, {"traffic": None, "batching": None}])
def test_an_empty_config_gives_the_defaults(values: dict[str, Any] | None) -> None:
    assert parse_deployment(values) == Deployment(
        batching=BatchPolicy(enabled=True, max_batch_rows=1024, max_wait_ms=2.0),
        traffic=TrafficPolicy(),
        max_rows=10_000,
        allow_missing=False,
    )


def test_the_default_max_rows_is_the_callers() -> None:
    assert parse_deployment(None, default_max_rows=500).max_rows == 500
    assert parse_deployment({"batching": {}}, default_max_rows=500).max_rows == 500
    assert parse_deployment({"limits": {"max_rows": 7}}, default_max_rows=500).max_rows == 7


def test_a_full_config_is_read() -> None:
    values = {
        "traffic": {"canary": {"version": 4, "percent": 10}, "shadow": {"alias": "challenger"}},
        "batching": {"enabled": False, "max_batch_rows": 16, "max_wait_ms": 0.5},
        "limits": {"max_rows": 2000},
        "inputs": {"allow_missing": True},
    }
    assert parse_deployment(values) == Deployment(
        batching=BatchPolicy(enabled=False, max_batch_rows=16, max_wait_ms=0.5),
        traffic=TrafficPolicy(
            canary=Target(version=4), canary_percent=10.0, shadow=Target(alias="challenger")
        ),
        max_rows=2000,
        allow_missing=True,
    )


def test_other_top_level_keys_are_left_alone() -> None:
    values = {"threshold": 0.7, "features": ["a", "b"], "limits": {"max_rows": 10}}
    assert parse_deployment(values).max_rows == 10


@pytest.mark.parametrize(
    ("traffic", "expected"),
    [
        ({"canary": {"alias": "next", "percent": 0}}, TrafficPolicy(Target(alias="next"), 0.0)),
        ({"canary": {"version": 2, "percent": 100}}, TrafficPolicy(Target(version=2), 100.0)),
        ({"canary": {"version": 2, "percent": 2.5}}, TrafficPolicy(Target(version=2), 2.5)),
        ({"shadow": {"version": 9}}, TrafficPolicy(shadow=Target(version=9))),
        ({"canary": None, "shadow": None}, TrafficPolicy()),
    ],
)
def test_traffic_targets_are_read(traffic: dict[str, Any], expected: TrafficPolicy) -> None:
    assert parse_deployment({"traffic": traffic}).traffic == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([1, 2], "a deployment config must be an object, not [1, 2]"),
        # traffic
        ({"traffic": 5}, "traffic must be an object with the keys canary, shadow, not 5"),
        ({"traffic": {"mirror": {}}}, "traffic has unknown key mirror; allowed: canary, shadow"),
        (
            {"traffic": {"canary": {"version": 4, "percent": 150}}},
            "traffic.canary.percent must be a number between 0 and 100, not 150",
        ),
        (
            {"traffic": {"canary": {"version": 4, "percent": -1}}},
            "traffic.canary.percent must be a number between 0 and 100, not -1",
        ),
        (
            {"traffic": {"canary": {"version": 4, "percent": "10"}}},
            'traffic.canary.percent must be a number between 0 and 100, not "10"',
        ),
        (
            {"traffic": {"canary": {"version": 4, "percent": True}}},
            "traffic.canary.percent must be a number between 0 and 100, not true",
        ),
        (
            {"traffic": {"canary": {"version": 4}}},
            "traffic.canary.percent is missing",
        ),
        (
            {"traffic": {"canary": {"version": 4, "alias": "next", "percent": 5}}},
            "traffic.canary names both a version and an alias; give exactly one",
        ),
        (
            {"traffic": {"canary": {"percent": 5}}},
            "traffic.canary must name a version or an alias",
        ),
        (
            {"traffic": {"canary": {}}},
            "traffic.canary must name a version or an alias",
        ),
        (
            {"traffic": {"canary": {"version": 4, "percent": 5, "weight": 1}}},
            "traffic.canary has unknown key weight; allowed: version, alias, percent",
        ),
        (
            {"traffic": {"canary": {"version": 0, "percent": 5}}},
            "traffic.canary.version must be a version number from 1, not 0",
        ),
        (
            {"traffic": {"canary": {"version": "4", "percent": 5}}},
            'traffic.canary.version must be a version number from 1, not "4"',
        ),
        (
            {"traffic": {"shadow": {"alias": "Bad Name"}}},
            "traffic.shadow.alias must be an alias name (1 to 128 characters",
        ),
        (
            {"traffic": {"shadow": {"alias": 3}}},
            "traffic.shadow.alias must be an alias name",
        ),
        (
            {"traffic": {"shadow": {"version": 3, "percent": 50}}},
            "traffic.shadow has unknown key percent; allowed: version, alias",
        ),
        ({"traffic": {"shadow": "challenger"}}, "traffic.shadow must be an object with the keys"),
        # batching
        ({"batching": True}, "batching must be an object with the keys enabled, max_batch_rows"),
        (
            {"batching": {"size": 8, "wait": 1}},
            "batching has unknown keys size, wait; allowed: enabled, max_batch_rows, max_wait_ms",
        ),
        ({"batching": {"enabled": "yes"}}, 'batching.enabled must be true or false, not "yes"'),
        ({"batching": {"enabled": 1}}, "batching.enabled must be true or false, not 1"),
        (
            {"batching": {"max_batch_rows": 0}},
            "batching.max_batch_rows must be a whole number of at least 1, not 0",
        ),
        (
            {"batching": {"max_batch_rows": 8.0}},
            "batching.max_batch_rows must be a whole number of at least 1, not 8.0",
        ),
        (
            {"batching": {"max_wait_ms": -1}},
            "batching.max_wait_ms must be a number between 0 and 1000, not -1",
        ),
        (
            {"batching": {"max_wait_ms": 1500}},
            "batching.max_wait_ms must be a number between 0 and 1000, not 1500",
        ),
        (
            {"batching": {"max_wait_ms": None}},
            "batching.max_wait_ms must be a number between 0 and 1000, not null",
        ),
        # limits and inputs
        (
            {"limits": []},
            "limits must be an object with the keys max_rows, requests_per_second, "
            "rows_per_day, not []",
        ),
        ({"limits": {"rows": 5}}, "limits has unknown key rows; allowed: max_rows"),
        ({"limits": {"max_rows": -5}}, "limits.max_rows must be a whole number of at least 1"),
        ({"inputs": {"allow_missing": "no"}}, "inputs.allow_missing must be true or false"),
        ({"inputs": {"nulls": True}}, "inputs has unknown key nulls; allowed: allow_missing"),
    ],
)
def test_malformed_sections_are_refused_naming_the_field(values: Any, message: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        parse_deployment(values)
    assert message in str(raised.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_numbers_are_refused(value: float) -> None:
    with pytest.raises(InvalidArgument, match=r"traffic\.canary\.percent must be a number"):
        parse_deployment({"traffic": {"canary": {"version": 1, "percent": value}}})


def test_a_long_bad_value_is_shown_cut_short() -> None:
    with pytest.raises(InvalidArgument) as raised:
        parse_deployment({"traffic": {"shadow": {"alias": "x" * 500}}})
    assert "…" in str(raised.value)
    assert len(str(raised.value)) < 250


def test_a_default_max_rows_below_one_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="default max_rows must be at least 1"):
        parse_deployment(None, default_max_rows=0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_batch_rows": 0}, "max_batch_rows must be at least 1, not 0"),
        ({"max_wait_ms": -0.5}, "max_wait_ms must be 0 or more, not -0.5"),
    ],
)
def test_a_batch_policy_refuses_impossible_values(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        BatchPolicy(**fields)
