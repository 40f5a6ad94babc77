"""Canary routing: sticky per key, proportional over many keys, random without a key."""

from __future__ import annotations

import random

import pytest

from corral.errors import InvalidArgument
from corral.serving import Target, TrafficPolicy
from corral.serving.traffic import bucket, route

KEYS = [f"user-{i}" for i in range(10_000)]


def canary(percent: float) -> TrafficPolicy:
    return TrafficPolicy(canary=Target(version=4), canary_percent=percent)


@pytest.mark.parametrize("percent", [1, 10, 25, 50, 90])
def test_the_canary_takes_its_share_of_keys(percent: float) -> None:
    share = sum(route(canary(percent), key) for key in KEYS) / len(KEYS) * 100
    assert share == pytest.approx(percent, abs=1.5)


def test_a_key_always_lands_on_the_same_side() -> None:
    policy = canary(30)
    first = [route(policy, key) for key in KEYS[:500]]
    assert [route(policy, key) for key in KEYS[:500]] == first
    assert any(first)
    assert not all(first)


def test_raising_the_percent_only_moves_keys_onto_the_canary() -> None:
    at_10 = {key for key in KEYS if route(canary(10), key)}
    at_20 = {key for key in KEYS if route(canary(20), key)}
    assert at_10 < at_20


def test_buckets_are_the_same_in_every_process() -> None:
    # blake2b, not Python's salted hash(): every gateway replica routes a key alike.
    assert bucket("user-42") == pytest.approx(43.604721442889236)
    assert bucket("") == pytest.approx(89.31675160897387)


@pytest.mark.parametrize("key", [None, "user-1", "user-2", ""])
def test_zero_percent_never_and_hundred_always(key: str | None) -> None:
    assert route(canary(0), key) is False
    assert route(canary(100), key) is True


def test_no_canary_means_no_canary_traffic_whatever_the_percent() -> None:
    policy = TrafficPolicy(canary=None, canary_percent=100)
    assert not any(route(policy, key) for key in [None, *KEYS[:100]])


def test_without_a_key_the_decision_is_random_in_proportion() -> None:
    rng = random.Random(7)
    share = sum(route(canary(20), None, rng=rng) for _ in range(10_000)) / 100
    assert share == pytest.approx(20, abs=1.5)


def test_without_a_key_the_given_random_generator_decides() -> None:
    first, second = random.Random(3), random.Random(3)
    decisions = [route(canary(50), None, rng=first) for _ in range(200)]
    assert decisions == [route(canary(50), None, rng=second) for _ in range(200)]
    assert any(decisions)
    assert not all(decisions)


def test_a_target_has_a_version_or_an_alias_as_its_ref() -> None:
    assert Target(version=4).ref == 4
    assert Target(alias="challenger").ref == "challenger"


@pytest.mark.parametrize("fields", [{}, {"version": 4, "alias": "challenger"}])
def test_a_target_refuses_both_or_neither(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument, match="exactly one of a version or an alias"):
        Target(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("percent", [-1, 100.5, float("nan")])
def test_a_policy_refuses_a_percent_outside_0_to_100(percent: float) -> None:
    with pytest.raises(InvalidArgument, match="between 0 and 100"):
        canary(percent)
