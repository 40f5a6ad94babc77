"""The alert lifecycle end to end: AlertKeeper on the SQL store, HttpNotifier, and a real
webhook receiver (uvicorn on loopback). Only the clock and the retry sleep are fake."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response

from corral.monitoring.alerts import AlertKeeper
from corral.monitoring.entities import (
    AlertState,
    Evaluation,
    Objective,
    ObjectiveState,
    Webhook,
)
from corral.registry.entities import Model
from corral.store.sql import SqlMonitoringStore, SqlRegistryStore, make_engine, upgrade_database
from corral.store.webhooks import HttpNotifier, sign, verify_signature
from tests.fixtures.corral import ServerThread, free_port

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SECRET = "whsec-0123456789abcdef"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """A webhook endpoint that records each POST and answers the scripted statuses first."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            self.received.append(Received(dict(request.headers), await request.body()))
            status = self.statuses.pop(0) if self.statuses else 200
            return Response(
                status_code=status, content=b"receiver says no" if status >= 400 else b""
            )

        return app

    @property
    def events(self) -> list[str]:
        return [r.json["event"] for r in self.received]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiving = Receiver()
    with ServerThread(receiving.app()) as server:
        receiving.url = f"{server.url}/hook"
        yield receiving


@pytest.fixture
def hook(receiver: Receiver) -> Receiver:
    receiver.statuses.clear()
    receiver.received.clear()
    return receiver


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlMonitoringStore]:
    engine = make_engine(f"sqlite:///{tmp_path / 'corral.db'}")
    try:
        upgrade_database(engine)
        SqlRegistryStore(engine).create_model(Model(name="clf"))
        SqlRegistryStore(engine).create_model(Model(name="reg"))
        yield SqlMonitoringStore(engine)
    finally:
        engine.dispose()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keeper(store: SqlMonitoringStore, clock: Clock, sleeps: list[float]) -> AlertKeeper:
    notifier = HttpNotifier(attempts=4, backoff_seconds=0.5, timeout=5.0, sleep=sleeps.append)
    return AlertKeeper(store, notifier, cooldown_seconds=3600, clock=clock)


@pytest.fixture
def objective(store: SqlMonitoringStore) -> Objective:
    return store.create_objective(
        Objective(
            id=0,
            model="clf",
            metric="accuracy",
            comparator=">=",
            threshold=0.9,
            window_seconds=86400,
            min_samples=100,
            created_at=T0,
        )
    )


def add_webhook(store: SqlMonitoringStore, url: str, model: str | None = None) -> Webhook:
    return store.create_webhook(Webhook(id=0, url=url, model=model), SECRET)


def evaluated(
    objective: Objective, clock: Clock, state: ObjectiveState, value: float | None = 0.8
) -> Evaluation:
    return Evaluation(objective_id=objective.id, at=clock(), state=state, value=value, samples=500)


BREACHED, OK = ObjectiveState.BREACHED, ObjectiveState.OK


def test_two_breaches_open_one_alert_and_notify_once(
    store: SqlMonitoringStore,
    keeper: AlertKeeper,
    objective: Objective,
    clock: Clock,
    hook: Receiver,
) -> None:
    add_webhook(store, hook.url)

    opened = keeper.observe(objective, evaluated(objective, clock, BREACHED, 0.8))
    clock.advance(minutes=5)
    again = keeper.observe(objective, evaluated(objective, clock, BREACHED, 0.7))

    assert opened is not None
    assert again is not None
    assert again.id == opened.id
    assert again.value == 0.7
    assert [a.id for a in store.list_alerts("clf")] == [opened.id]
    assert hook.events == ["opened"]
    [delivery] = store.list_deliveries(opened.id)
    assert (delivery.event, delivery.attempt, delivery.succeeded) == ("opened", 1, True)
    assert delivery.status_code == 200


def test_an_open_alert_reminds_once_per_cooldown(
    store: SqlMonitoringStore,
    keeper: AlertKeeper,
    objective: Objective,
    clock: Clock,
    hook: Receiver,
) -> None:
    add_webhook(store, hook.url)
    keeper.observe(objective, evaluated(objective, clock, BREACHED))

    clock.advance(minutes=59)
    keeper.observe(objective, evaluated(objective, clock, BREACHED))
    assert hook.events == ["opened"]
    clock.advance(minutes=1)
    reminded = keeper.observe(objective, evaluated(objective, clock, BREACHED, 0.6))
    clock.advance(minutes=30)
    keeper.observe(objective, evaluated(objective, clock, BREACHED))

    assert hook.events == ["opened", "reminder"]
    assert reminded is not None
    assert reminded.last_notified_at == T0 + timedelta(hours=1)
    assert hook.received[1].json["alert"]["value"] == 0.6
    assert len(store.list_alerts()) == 1


def test_recovery_closes_the_alert_and_no_data_leaves_it_open(
    store: SqlMonitoringStore,
    keeper: AlertKeeper,
    objective: Objective,
    clock: Clock,
    hook: Receiver,
) -> None:
    add_webhook(store, hook.url)
    opened = keeper.observe(objective, evaluated(objective, clock, BREACHED))
    assert opened is not None

    clock.advance(minutes=10)
    assert keeper.observe(objective, evaluated(objective, clock, ObjectiveState.NO_DATA)) is None
    assert store.get_alert(opened.id).state == AlertState.OPEN
    clock.advance(minutes=10)
    closed = keeper.observe(objective, evaluated(objective, clock, ObjectiveState.AT_RISK, 0.91))

    assert closed is not None
    assert (closed.id, closed.state) == (opened.id, AlertState.CLOSED)
    assert closed.closed_at == T0 + timedelta(minutes=20)
    assert store.open_alert(objective.id) is None
    assert hook.events == ["opened", "closed"]
    body = hook.received[1].json
    assert body["alert"]["state"] == "closed"
    assert body["evaluation"]["value"] == 0.91
    # Recovered and healthy: nothing more to say.
    assert keeper.observe(objective, evaluated(objective, clock, OK, 0.95)) is None
    assert hook.events == ["opened", "closed"]

    clock.advance(minutes=10)
    reopened = keeper.observe(objective, evaluated(objective, clock, BREACHED))
    assert reopened is not None
    assert reopened.id != opened.id
    assert hook.events == ["opened", "closed", "opened"]


def test_a_receiver_failing_twice_gets_the_alert_on_the_third_attempt(
    store: SqlMonitoringStore,
    keeper: AlertKeeper,
    objective: Objective,
    clock: Clock,
    hook: Receiver,
    sleeps: list[float],
) -> None:
    webhook = add_webhook(store, hook.url)
    hook.statuses.extend([500, 500])

    opened = keeper.observe(objective, evaluated(objective, clock, BREACHED, 0.8))

    assert opened is not None
    deliveries = sorted(store.list_deliveries(opened.id), key=lambda d: d.attempt)
    assert [(d.attempt, d.succeeded, d.status_code) for d in deliveries] == [
        (1, False, 500),
        (2, False, 500),
        (3, True, 200),
    ]
    assert deliveries[0].error == "HTTP 500: receiver says no"
    assert {(d.webhook_id, d.event) for d in deliveries} == {(webhook.id, "opened")}
    assert sleeps == [0.5, 1.0]  # exponential backoff between attempts
    assert len(hook.received) == 3
    # One delivery id across the attempts, so the receiver can tell retries apart.
    assert len({r.headers["x-corral-delivery"] for r in hook.received}) == 1
    for received in hook.received:
        headers = received.headers
        assert headers["x-corral-event"] == "opened"
        assert headers["x-corral-signature"] == sign(
            SECRET, headers["x-corral-timestamp"], received.body
        )
        assert verify_signature(
            SECRET,
            headers["x-corral-timestamp"],
            received.body,
            headers["x-corral-signature"],
            max_age_seconds=300,
        )
        assert not verify_signature(
            "another-secret-000", headers["x-corral-timestamp"], received.body,
            headers["x-corral-signature"],
        )  # fmt: skip
    body = hook.received[-1].json
    assert body["event"] == "opened"
    assert body["model"] == "clf"
    assert body["alert"]["id"] == opened.id
    assert body["alert"]["value"] == 0.8
    assert body["objective"]["expression"] == "accuracy >= 0.9 over 1d, min 100"
    assert body["evaluation"]["samples"] == 500
    assert datetime.fromisoformat(body["sent_at"]).tzinfo is not None


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([400], [(1, False, 400)]),  # the receiver refuses it: retrying would not help
        ([429, 503], [(1, False, 429), (2, False, 503), (3, True, 200)]),
        ([500, 500, 500, 500], [(n, False, 500) for n in range(1, 5)]),  # gives up after 4
    ],
)
def test_only_throttling_and_server_errors_are_retried(
    store: SqlMonitoringStore,
    keeper: AlertKeeper,
    objective: Objective,
    clock: Clock,
    hook: Receiver,
    statuses: list[int],
    expected: list[tuple[int, bool, int]],
) -> None:
    add_webhook(store, hook.url)
    hook.statuses.extend(statuses)

    opened = keeper.observe(objective, evaluated(objective, clock, BREACHED))

    assert opened is not None
    deliveries = sorted(store.list_deliveries(opened.id), key=lambda d: d.attempt)
    assert [(d.attempt, d.succeeded, d.status_code) for d in deliveries] == expected


def test_an_unreachable_receiver_is_retried_and_recorded_and_the_alert_stays_open(
    store: SqlMonitoringStore,
    keeper: AlertKeeper,
    objective: Objective,
    clock: Clock,
    sleeps: list[float],
) -> None:
    add_webhook(store, f"http://127.0.0.1:{free_port()}/hook")  # nothing listens there

    opened = keeper.observe(objective, evaluated(objective, clock, BREACHED))

    assert opened is not None
    deliveries = store.list_deliveries(opened.id)
    assert len(deliveries) == 4
    assert not any(d.succeeded for d in deliveries)
    assert all(d.status_code is None and "ConnectError" in d.error for d in deliveries)
    assert sleeps == [0.5, 1.0, 2.0]
    assert store.get_alert(opened.id).state == AlertState.OPEN


def test_only_webhooks_of_the_alerts_model_or_of_every_model_are_notified(
    store: SqlMonitoringStore,
    keeper: AlertKeeper,
    objective: Objective,
    clock: Clock,
    hook: Receiver,
) -> None:
    everyone = add_webhook(store, hook.url + "?for=all")
    mine = add_webhook(store, hook.url + "?for=clf", model="clf")
    add_webhook(store, hook.url + "?for=reg", model="reg")

    opened = keeper.observe(objective, evaluated(objective, clock, BREACHED))

    assert opened is not None
    assert sorted(d.webhook_id for d in store.list_deliveries(opened.id)) == [everyone.id, mine.id]
    assert len(hook.received) == 2


def test_verify_signature_refuses_a_changed_body_a_bad_header_and_an_old_timestamp() -> None:
    body = b'{"event":"opened"}'
    stamp = str(int(time.time()))
    header = sign(SECRET, stamp, body)

    assert verify_signature(SECRET, stamp, body, header)
    assert verify_signature(SECRET, stamp, body.decode(), header)
    assert not verify_signature(SECRET, stamp, b'{"event":"closed"}', header)
    assert not verify_signature(SECRET, str(int(stamp) + 1), body, header)
    assert not verify_signature(SECRET, stamp, body, header.removeprefix("sha256="))
    assert not verify_signature(SECRET, stamp, body, None)
    old = str(int(time.time()) - 3600)
    assert verify_signature(SECRET, old, body, sign(SECRET, old, body))
    assert not verify_signature(SECRET, old, body, sign(SECRET, old, body), max_age_seconds=300)
