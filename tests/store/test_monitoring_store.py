"""SqlMonitoringStore on SQLite and PostgreSQL, and migration 0004 on a 0003 database."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect

import corral.store.sql
from corral.errors import InvalidArgument
from corral.monitoring.entities import (
    Alert,
    AlertState,
    Delivery,
    Evaluation,
    Objective,
    ObjectiveState,
    Webhook,
)
from corral.monitoring.errors import (
    AlertAlreadyOpen,
    AlertNotFound,
    ObjectiveNotFound,
    WebhookNotFound,
)
from corral.registry.entities import Model
from corral.registry.errors import ModelNotFound
from corral.store.sql import SqlMonitoringStore, SqlRegistryStore, make_engine, upgrade_database
from corral.store.sql.migrate import HEAD, database_revision

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SECRET = "whsec-0123456789abcdef"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    try:
        upgrade_database(engine)
        registry = SqlRegistryStore(engine)
        registry.create_model(Model(name="clf"))
        registry.create_model(Model(name="reg"))
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def store(engine: Engine) -> SqlMonitoringStore:
    return SqlMonitoringStore(engine)


def objective(model: str = "clf", **changes: object) -> Objective:
    values: dict[str, object] = {
        "id": 0,
        "model": model,
        "metric": "accuracy",
        "comparator": ">=",
        "threshold": 0.9,
        "window_seconds": 7 * 86400,
        "min_samples": 500,
        "created_at": T0,
        "created_by": "ana",
    }
    values.update(changes)
    return Objective(**values)  # type: ignore[arg-type]


def alert(objective_id: int, model: str = "clf", **changes: object) -> Alert:
    values: dict[str, object] = {
        "id": 0,
        "model": model,
        "objective_id": objective_id,
        "state": AlertState.OPEN,
        "opened_at": T0,
        "message": "accuracy is 0.8",
        "value": 0.8,
        "last_notified_at": T0,
    }
    values.update(changes)
    return Alert(**values)  # type: ignore[arg-type]


def evaluation(objective_id: int, minutes: int, **changes: object) -> Evaluation:
    values: dict[str, object] = {
        "objective_id": objective_id,
        "at": T0 + timedelta(minutes=minutes),
        "state": ObjectiveState.OK,
        "value": 0.95,
        "samples": 600,
    }
    values.update(changes)
    return Evaluation(**values)  # type: ignore[arg-type]


# --- objectives and evaluations -----------------------------------------------------------


def test_objectives_are_created_read_listed_by_model_and_deleted(
    store: SqlMonitoringStore,
) -> None:
    first = store.create_objective(objective(version=2, margin=0.1))
    second = store.create_objective(objective("reg", metric="mae", comparator="<=", threshold=3))

    assert first.id > 0
    assert first == objective(id=first.id, version=2, margin=0.1)
    assert store.get_objective(first.id) == first
    assert store.list_objectives("clf") == [first]
    assert store.list_objectives() == [first, second]

    store.delete_objective(first.id)

    assert store.list_objectives() == [second]
    with pytest.raises(ObjectiveNotFound, match=f"objective {first.id} does not exist"):
        store.get_objective(first.id)
    with pytest.raises(ObjectiveNotFound):
        store.delete_objective(first.id)


def test_objectives_need_an_existing_model(store: SqlMonitoringStore) -> None:
    with pytest.raises(ModelNotFound, match="model 'nope' does not exist"):
        store.create_objective(objective("nope"))
    with pytest.raises(ModelNotFound):
        store.list_objectives("nope")


def test_evaluations_are_a_history_newest_first_with_a_latest(store: SqlMonitoringStore) -> None:
    target = store.create_objective(objective())
    assert store.latest_evaluation(target.id) is None
    assert store.list_evaluations(target.id) == []
    states = [ObjectiveState.OK, ObjectiveState.AT_RISK, ObjectiveState.BREACHED]
    for minute, state in enumerate(states):
        store.add_evaluation(evaluation(target.id, minute, state=state, detail=f"#{minute}"))
    store.add_evaluation(evaluation(target.id, 3, state=ObjectiveState.NO_DATA, value=None))

    history = store.list_evaluations(target.id)
    assert [e.state for e in history] == [ObjectiveState.NO_DATA, *reversed(states)]
    assert history[1] == evaluation(target.id, 2, state=ObjectiveState.BREACHED, detail="#2")
    assert history[0].value is None
    assert store.latest_evaluation(target.id) == history[0]
    assert store.list_evaluations(target.id, limit=2) == history[:2]


def test_a_nan_value_is_stored_as_no_value(store: SqlMonitoringStore) -> None:
    target = store.create_objective(objective())
    store.add_evaluation(evaluation(target.id, 0, value=float("nan")))

    latest = store.latest_evaluation(target.id)
    assert latest is not None
    assert latest.value is None


def test_evaluations_of_a_missing_objective_are_refused(store: SqlMonitoringStore) -> None:
    with pytest.raises(ObjectiveNotFound, match="objective 99 does not exist"):
        store.add_evaluation(evaluation(99, 0))
    with pytest.raises(ObjectiveNotFound):
        store.list_evaluations(99)


def test_deleting_an_objective_drops_its_history_and_closes_its_open_alert(
    store: SqlMonitoringStore,
) -> None:
    target = store.create_objective(objective())
    store.add_evaluation(evaluation(target.id, 0))
    opened = store.create_alert(alert(target.id))

    store.delete_objective(target.id)

    assert store.latest_evaluation(target.id) is None
    kept = store.get_alert(opened.id)
    assert kept.state == AlertState.CLOSED
    assert kept.closed_at is not None
    assert store.open_alert(target.id) is None


def test_deleting_a_model_deletes_its_objectives_and_settings(
    engine: Engine, store: SqlMonitoringStore
) -> None:
    store.create_objective(objective())
    store.set_settings("clf", {"reference": "example"})

    SqlRegistryStore(engine).delete_model("clf")
    SqlRegistryStore(engine).create_model(Model(name="clf"))

    assert store.list_objectives("clf") == []
    assert store.get_settings("clf") == {}


# --- alerts -------------------------------------------------------------------------------


def test_alerts_are_created_updated_and_listed_newest_first(store: SqlMonitoringStore) -> None:
    first = store.create_objective(objective())
    second = store.create_objective(objective("reg", metric="mae", comparator="<=", threshold=3))
    opened = store.create_alert(alert(first.id))
    other = store.create_alert(alert(second.id, model="reg"))

    assert opened == alert(first.id, id=opened.id)
    assert store.open_alert(first.id) == opened
    assert store.get_alert(opened.id) == opened

    reminded = store.update_alert(replace(opened, value=0.7, message="worse", last_notified_at=T0))
    assert (reminded.value, reminded.message) == (0.7, "worse")
    closed = store.update_alert(
        replace(reminded, state=AlertState.CLOSED, closed_at=T0 + timedelta(hours=1))
    )
    assert closed.closed_at == T0 + timedelta(hours=1)
    assert store.open_alert(first.id) is None

    assert store.list_alerts() == [other, closed]
    assert store.list_alerts("clf") == [closed]
    assert store.list_alerts(state="open") == [other]
    assert store.list_alerts("clf", "open") == []
    assert store.list_alerts(limit=1) == [other]
    with pytest.raises(AlertNotFound, match="alert 99 does not exist"):
        store.get_alert(99)
    with pytest.raises(AlertNotFound):
        store.update_alert(alert(first.id, id=99))


def test_an_objective_has_at_most_one_open_alert(store: SqlMonitoringStore) -> None:
    target = store.create_objective(objective())
    first = store.create_alert(alert(target.id))

    with pytest.raises(AlertAlreadyOpen, match=f"objective {target.id} already has an open"):
        store.create_alert(alert(target.id))
    store.update_alert(replace(first, state=AlertState.CLOSED, closed_at=T0))
    second = store.create_alert(alert(target.id))
    # The closed one cannot be re-opened beside the new one either.
    with pytest.raises(AlertAlreadyOpen):
        store.update_alert(replace(first, state=AlertState.OPEN, closed_at=None))

    assert [a.id for a in store.list_alerts(state="open")] == [second.id]


def test_concurrent_breaches_open_one_alert(store: SqlMonitoringStore) -> None:
    target = store.create_objective(objective())
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def open_one() -> None:
        barrier.wait()
        try:
            store.create_alert(alert(target.id))
            outcomes.append("opened")
        except AlertAlreadyOpen:
            outcomes.append("refused")

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["opened", "refused", "refused", "refused"]
    assert len(store.list_alerts(state="open")) == 1


# --- webhooks and deliveries --------------------------------------------------------------


def test_webhooks_keep_their_secret_and_list_by_model(store: SqlMonitoringStore) -> None:
    everyone = store.create_webhook(
        Webhook(id=0, url="https://hooks.example/all", created_at=T0, created_by="ana"), SECRET
    )
    mine = store.create_webhook(Webhook(id=0, url="http://127.0.0.1:9/clf", model="clf"), "x" * 16)
    theirs = store.create_webhook(Webhook(id=0, url="http://h.example/reg", model="reg"), SECRET)

    assert everyone == Webhook(
        id=everyone.id, url="https://hooks.example/all", created_at=T0, created_by="ana"
    )
    assert mine.model == "clf"
    assert mine.has_secret
    assert store.webhook_secret(everyone.id) == SECRET
    assert store.webhook_secret(mine.id) == "x" * 16
    assert store.list_webhooks() == [everyone, mine, theirs]
    assert store.list_webhooks("clf") == [everyone, mine]

    store.delete_webhook(mine.id)

    assert store.list_webhooks("clf") == [everyone]
    with pytest.raises(WebhookNotFound, match=f"webhook {mine.id} does not exist"):
        store.webhook_secret(mine.id)
    with pytest.raises(WebhookNotFound):
        store.delete_webhook(mine.id)


@pytest.mark.parametrize("url", ["ftp://hooks.example/x", "file:///etc/passwd", "https:///x"])
def test_webhooks_are_http_or_https_only(store: SqlMonitoringStore, url: str) -> None:
    with pytest.raises(InvalidArgument, match="webhook URL"):
        store.create_webhook(Webhook(id=0, url=url), SECRET)
    assert store.list_webhooks() == []


def test_a_webhook_of_a_missing_model_is_refused(store: SqlMonitoringStore) -> None:
    with pytest.raises(ModelNotFound):
        store.create_webhook(Webhook(id=0, url="https://h.example/", model="nope"), SECRET)
    with pytest.raises(ModelNotFound):
        store.list_webhooks("nope")


def test_deliveries_are_recorded_and_listed_per_alert(store: SqlMonitoringStore) -> None:
    target = store.create_objective(objective())
    opened = store.create_alert(alert(target.id))
    hook = store.create_webhook(Webhook(id=0, url="https://h.example/"), SECRET)
    failed = Delivery(
        id=0,
        webhook_id=hook.id,
        alert_id=opened.id,
        event="opened",
        attempt=1,
        at=T0,
        succeeded=False,
        status_code=500,
        error="HTTP 500: down",
    )
    first = store.add_delivery(failed)
    second = store.add_delivery(replace(failed, attempt=2, succeeded=True, error="", at=T0))
    other = store.add_delivery(replace(failed, alert_id=opened.id + 1, event="test"))

    assert first == replace(failed, id=first.id)
    assert store.list_deliveries(opened.id) == [second, first]
    assert store.list_deliveries() == [other, second, first]
    assert store.list_deliveries(limit=1) == [other]
    # Deliveries are history: they stay when their webhook goes.
    store.delete_webhook(hook.id)
    assert len(store.list_deliveries(opened.id)) == 2


# --- settings -----------------------------------------------------------------------------


def test_settings_are_a_json_document_per_model(store: SqlMonitoringStore) -> None:
    assert store.get_settings("clf") == {}
    settings = {"drift": {"share_threshold": 0.4, "columns": {"age": {"method": "psi"}}}}

    store.set_settings("clf", settings)
    assert store.get_settings("clf") == settings
    assert store.get_settings("reg") == {}
    store.set_settings("clf", {"reference": "window:7d"})
    assert store.get_settings("clf") == {"reference": "window:7d"}

    with pytest.raises(ModelNotFound):
        store.get_settings("nope")
    with pytest.raises(ModelNotFound):
        store.set_settings("nope", {})


# --- migration 0004 -----------------------------------------------------------------------

MIGRATIONS = Path(corral.store.sql.__file__).resolve().parent / "migrations"


def test_a_0003_database_upgrades_to_0004_and_keeps_its_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0003")
            connection.commit()
        assert database_revision(engine) == "0003"
        SqlRegistryStore(engine).create_model(Model(name="clf"))

        assert upgrade_database(engine) == HEAD  # 0004 and any later revision

        tables = set(inspect(engine).get_table_names())
        assert {
            "objectives", "objective_evaluations", "alerts", "webhooks",
            "webhook_deliveries", "monitor_settings",
        } <= tables  # fmt: skip
        store = SqlMonitoringStore(engine)
        created = store.create_objective(objective())
        assert store.list_objectives("clf") == [created]
    finally:
        engine.dispose()
