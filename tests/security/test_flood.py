"""Priority under overload: a flood of bronze requests does not starve a gold token.

A real server with ``max_inflight_predictions=4`` serves a slow model (a trusted ``python``
flavor that takes 10 ms a call). Many concurrent clients hammer it with one bronze token;
meanwhile a probe token asks one request at a time. A gold probe is admitted while fewer than
4 predictions run, and the bronze flood never holds more than 2, so its requests succeed and
stay fast. The same flood with a second *bronze* probe shows what tiers prevent: that probe
is refused much of the time. Bounds are generous (machines are noisy), yet the test fails
if tiers do not work.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from corral import Client
from corral.api.app import create_app
from corral.config import Settings
from corral.wiring import Corral, open_corral
from tests.fixtures.corral import ServerThread

CAPACITY = 4
FLOODERS = 12
FLOOD_SECONDS = 1.5
PREDICT = "/api/v1/models/slow/predict"
BODY = {"inputs": [{"a": 1.0, "b": 2.0}]}
SLOW_MODEL = """
import time

import numpy as np


class Model:
    input_names = ["a", "b"]

    def __init__(self, folder):
        pass

    def predict(self, inputs):
        time.sleep(0.01)
        return np.zeros(len(inputs))
"""


@dataclass
class Site:
    url: str
    corral: Corral

    def token(self, tier: str) -> str:
        _, secret = self.corral.identity.create_token(
            "admin", name=f"{tier}-{time.time_ns()}", tier=tier
        )
        return secret


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    settings = Settings(
        home=tmp_path / "home",
        anonymous_role="none",
        monitor_evaluate_seconds=0,
        log_predictions=False,
        max_inflight_predictions=CAPACITY,
    )
    folder = tmp_path / "slow"
    folder.mkdir()
    (folder / "predictor.py").write_text(SLOW_MODEL)
    with Client(settings=settings, actor="tester") as local:
        local.register("slow", folder, flavor="python", example=BODY["inputs"])
        local.trust_version("slow", 1, reason="a test model")
        local.set_alias("slow", "champion", 1, reason="serve it")
    wired = open_corral(settings)
    assert wired.identity.bootstrap_admin() is not None
    try:
        with ServerThread(create_app(settings, corral=wired)) as server:
            yield Site(server.url, wired)
    finally:
        wired.close()


@dataclass
class Probe:
    statuses: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def success(self) -> float:
        return self.statuses.count(200) / len(self.statuses)

    @property
    def median(self) -> float:
        served = zip(self.seconds, self.statuses, strict=True)
        return statistics.median(seconds for seconds, code in served if code == 200)


async def _probe(http: httpx.AsyncClient, token: str, until: float, result: Probe) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    while time.monotonic() < until:
        started = time.perf_counter()
        reply = await http.post(PREDICT, json=BODY, headers=headers)
        result.seconds.append(time.perf_counter() - started)
        result.statuses.append(reply.status_code)
        await asyncio.sleep(0.01)


async def _flood(http: httpx.AsyncClient, token: str, until: float, counts: dict[int, int]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    while time.monotonic() < until:
        reply = await http.post(PREDICT, json=BODY, headers=headers)
        counts[reply.status_code] = counts.get(reply.status_code, 0) + 1
        if reply.status_code == 429:
            assert reply.headers["retry-after"] == "1"
            assert "bronze-tier predictions" in reply.json()["detail"]


def run(site: Site, flood_token: str | None, probe_token: str) -> tuple[Probe, dict[int, int]]:
    """Probe ``probe_token`` one request at a time while ``flood_token`` floods (if given)."""

    async def main() -> tuple[Probe, dict[int, int]]:
        limits = httpx.Limits(max_connections=FLOODERS + 2)
        async with httpx.AsyncClient(base_url=site.url, limits=limits, timeout=30) as http:
            probe, counts = Probe(), {}
            seconds = FLOOD_SECONDS if flood_token else 0.4
            until = time.monotonic() + seconds
            tasks = [
                _flood(http, flood_token, until, counts) for _ in range(FLOODERS) if flood_token
            ]
            await asyncio.gather(_probe(http, probe_token, until, probe), *tasks)
            return probe, counts

    return asyncio.run(main())


def test_a_gold_token_gets_through_a_bronze_flood_and_a_bronze_one_does_not(site: Site) -> None:
    flood, gold, bronze = site.token("bronze"), site.token("gold"), site.token("bronze")
    alone, _ = run(site, None, gold)  # also loads the model
    alone, _ = run(site, None, gold)
    assert alone.success == 1.0

    with_gold, flooded = run(site, flood, gold)
    assert flooded.get(429, 0) > 0, flooded  # the flood went over the bronze share
    assert flooded.get(200, 0) > 0, flooded
    assert with_gold.success >= 0.95, with_gold.statuses
    assert with_gold.median <= 10 * alone.median + 0.25, (with_gold.median, alone.median)

    with_bronze, _ = run(site, flood, bronze)
    refused = with_bronze.statuses.count(429) / len(with_bronze.statuses)
    assert refused >= 0.1, with_bronze.statuses  # what the tiers spare the gold token
    assert with_bronze.success < with_gold.success

    metrics = httpx.get(f"{site.url}/metrics").text
    assert 'corral_rate_limited_total{reason="overload",tier="bronze"}' in metrics
    assert 'reason="overload",tier="gold"' not in metrics


@pytest.mark.parametrize(("tier", "admitted"), [("bronze", 4), ("silver", 6), ("gold", 8)])
def test_each_tier_starts_predictions_only_below_its_share(tier: str, admitted: int) -> None:
    """Of 8 slots: bronze starts while fewer than 4 run, silver 6, gold 8 (any tier running)."""
    from corral.access import Principal
    from corral.security.admission import Gatekeeper, RateLimited
    from corral.store.ratelimits import LimitsCounters

    refused: list[tuple[str, str]] = []
    keeper = Gatekeeper(
        LimitsCounters("memory://"),
        max_inflight=8,
        on_refuse=lambda reason, tier: refused.append((reason, tier)),
    )
    caller = Principal(name="x", tier=tier)
    held = [keeper.slot(caller) for _ in range(admitted)]
    with pytest.raises(RateLimited, match=f"{tier}-tier predictions") as error:
        keeper.slot(caller)
    assert (error.value.retry_after, refused) == (1, [("overload", tier)])
    held.pop().__exit__(None, None, None)  # one finishes: the next one starts
    held.append(keeper.slot(caller))
    for slot in held:
        slot.__exit__(None, None, None)
    assert keeper.admission.in_flight == 0
