"""Alias moves under a steady load: no request fails, none is served by a half-loaded model.

A real ``corral server`` process serves model 'clf' (version 1, and version 2 that
predicts the opposite labels) while client threads send requests without pause and the
test moves the champion alias 20 times. Every answer must be a 200 whose predictions are
exactly those of the version it names; across workers, every move must reach every
worker (measured: the time from the move until fresh connections all see it).
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from corral import Client
from corral.config import Settings
from tests.faults._corral import ServerProcess, corral_env
from tests.fixtures.serving import register_classifiers, training_data

MOVES = 20
CLIENTS = 4


def _inputs() -> tuple[list[list[float]], dict[int, list[int]]]:
    rows, _ = training_data(seed=3, rows=8)
    return rows.tolist(), {}


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_twenty_alias_moves_under_load_fail_no_request(tmp_path: Path, workers: int) -> None:
    home = tmp_path / "home"
    with Client(settings=Settings(home=home), actor="tester") as client:
        first, flipped = register_classifiers(client, tmp_path)
        rows, _ = _inputs()
        expected = {
            1: first.predict(np.asarray(rows)).tolist(),
            2: flipped.predict(np.asarray(rows)).tolist(),
        }
        assert expected[1] != expected[2]
        env = corral_env(tmp_path, CORRAL_ROUTE_POLL_SECONDS="0.05")
        with ServerProcess(
            home, tmp_path, env=env, args=["--workers", str(workers)] if workers > 1 else []
        ) as server:
            stop = threading.Event()
            failures: list[str] = []
            served: dict[int, int] = {1: 0, 2: 0}
            lock = threading.Lock()

            def load() -> None:
                with httpx.Client(base_url=server.url, timeout=30) as http:
                    while not stop.is_set():
                        try:
                            response = http.post(
                                "/api/v1/models/clf/predict", json={"inputs": rows}
                            )
                        except httpx.HTTPError as exc:
                            failures.append(f"transport: {exc!r}")
                            continue
                        if response.status_code != 200:
                            failures.append(f"{response.status_code}: {response.text[:200]}")
                            continue
                        body = response.json()
                        if body["predictions"] != expected[body["version"]]:
                            failures.append(f"version {body['version']} gave wrong answers")
                        with lock:
                            served[body["version"]] += 1

            threads = [threading.Thread(target=load) for _ in range(CLIENTS)]
            for thread in threads:
                thread.start()
            try:
                for move in range(MOVES):
                    target = 2 if move % 2 == 0 else 1
                    client.set_alias("clf", "champion", target, reason=f"move {move}")
                    _wait_until_served(server.url, rows, target)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(timeout=60)
            assert failures == []
            assert served[1] > 0
            assert served[2] > 0


def _wait_until_served(url: str, rows: list[list[float]], version: int) -> float:
    """Seconds from now until every request, each on a new connection, is served by ``version``.

    "Every" is 20 in a row; the time is when that streak began, so it measures the moment
    the last worker switched, not the streak itself.
    """
    started = time.monotonic()
    streak_began = started
    streak = 0
    while streak < 20:
        if time.monotonic() - started > 60:
            raise AssertionError(f"version {version} was not served within 60 s")
        sent = time.monotonic()
        body = httpx.post(
            f"{url}/api/v1/models/clf/predict", json={"inputs": rows}, timeout=30
        ).json()
        if body["version"] == version:
            streak_began = sent if streak == 0 else streak_began
            streak += 1
        else:
            streak = 0
    return streak_began - started


@pytest.mark.slow
def test_alias_moves_reach_every_worker_within_a_second(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Client(settings=Settings(home=home), actor="tester") as client:
        register_classifiers(client, tmp_path)
        rows = training_data(seed=3, rows=2)[0].tolist()
        with ServerProcess(home, tmp_path, args=["--workers", "2"]) as server:
            _wait_until_served(server.url, rows, 1)  # both workers up, version 1 loaded
            client.set_alias("clf", "challenger", 2)  # loads version 2 before the moves
            _wait_until_served(server.url, [*rows], 1)
            delays = []
            for move in range(6):
                target = 2 if move % 2 == 0 else 1
                client.set_alias("clf", "champion", target, reason=f"move {move}")
                delays.append(_wait_until_served(server.url, rows, target))
            print(f"alias move reached both workers after {sorted(delays)} s")  # noqa: T201
            assert statistics.median(delays) < 1.0, delays
