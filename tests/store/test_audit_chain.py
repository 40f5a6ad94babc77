"""The audit chain in SqlRegistryStore: appended with its write, and tamper-evident."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from corral.registry.audit import GENESIS, AuditDraft, event_hash, verify_chain
from corral.registry.entities import Model
from corral.registry.errors import ModelAlreadyExists
from corral.store.sql import SqlRegistryStore

AT = datetime(2026, 11, 28, 9, 30, 0, 123456, tzinfo=UTC)


def _create(store: SqlRegistryStore, name: str) -> None:
    with store.audited() as drafts:
        store.create_model(Model(name=name))
        drafts.append(
            AuditDraft(
                at=AT,
                actor="ana",
                action="model.create",
                target=f"model:{name}",
                after={"name": name, "score": 0.1, "tags": {"b": "2", "a": "1"}},
                origin="local",
            )
        )


@pytest.fixture
def store(sql_store: SqlRegistryStore) -> SqlRegistryStore:
    for name in ("churn", "fraud", "upsell", "credit"):
        _create(sql_store, name)
    return sql_store


def _execute(store: SqlRegistryStore, statement: str) -> None:
    with store.engine.begin() as connection:
        connection.execute(text(statement))


def test_events_read_back_hash_to_what_was_written(store: SqlRegistryStore) -> None:
    events = list(store.audit_chain())

    assert [e.id for e in events] == sorted(e.id for e in events)
    assert events[0].prev_hash == GENESIS
    assert all(e.hash == event_hash(e, e.prev_hash) for e in events)
    assert events[0].at == AT
    assert verify_chain(events).ok
    assert verify_chain(events).events_checked == 4


def test_an_edited_event_is_reported_as_a_hash_mismatch(store: SqlRegistryStore) -> None:
    second = list(store.audit_chain())[1]
    _execute(store, f"UPDATE audit_events SET actor = 'mallory' WHERE id = {second.id}")

    report = verify_chain(store.audit_chain())

    assert (report.ok, report.bad_event_id, report.problem) == (False, second.id, "hash mismatch")
    assert report.events_checked == 1
    assert f"audit event {second.id}" in report.detail


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(store: SqlRegistryStore) -> None:
    second, third = list(store.audit_chain())[1:3]
    forged = AuditDraft(
        at=second.at, actor="mallory", action=second.action, target=second.target,
        before=second.before, after=second.after, origin=second.origin,
    )  # fmt: skip
    digest = event_hash(forged, second.prev_hash)
    _execute(
        store,
        f"UPDATE audit_events SET actor = 'mallory', hash = '{digest}' WHERE id = {second.id}",
    )

    report = verify_chain(store.audit_chain())

    assert (report.bad_event_id, report.problem) == (third.id, "broken link")


def test_a_deleted_event_is_reported_at_the_event_after_it(store: SqlRegistryStore) -> None:
    second, third = list(store.audit_chain())[1:3]
    _execute(store, f"DELETE FROM audit_events WHERE id = {second.id}")

    report = verify_chain(store.audit_chain())

    assert (report.ok, report.bad_event_id, report.problem) == (False, third.id, "broken link")
    assert "deleted" in report.detail


def test_deleting_the_first_event_is_detected(store: SqlRegistryStore) -> None:
    first, second = list(store.audit_chain())[:2]
    _execute(store, f"DELETE FROM audit_events WHERE id = {first.id}")

    report = verify_chain(store.audit_chain())

    assert (report.bad_event_id, report.problem) == (second.id, "broken link")


def test_a_failed_write_appends_no_event_and_keeps_the_generation(
    store: SqlRegistryStore,
) -> None:
    before = (len(list(store.audit_chain())), store.generation())

    with pytest.raises(ModelAlreadyExists):
        _create(store, "churn")

    assert (len(list(store.audit_chain())), store.generation()) == before


def test_a_failure_after_the_write_rolls_the_write_back_too(store: SqlRegistryStore) -> None:
    def write_then_fail() -> None:
        with store.audited():
            store.create_model(Model(name="late"))
            raise RuntimeError("recording failed")

    with pytest.raises(RuntimeError):
        write_then_fail()

    assert store.find_model("late") is None
    assert len(list(store.audit_chain())) == 4


def test_an_audited_write_bumps_the_generation_once(store: SqlRegistryStore) -> None:
    before = store.generation()

    _create(store, "one-more")

    assert store.generation() == before + 1


def test_concurrent_writers_never_fork_the_chain(store: SqlRegistryStore) -> None:
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for n in range(5):
                _create(store, f"m-{worker}-{n}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    report = verify_chain(store.audit_chain())
    assert (report.ok, report.events_checked) == (True, 24)


def test_the_chain_is_read_in_batches_beyond_one(
    store: SqlRegistryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from corral.store.sql import _audit

    monkeypatch.setattr(_audit, "_BATCH", 3)

    assert len(list(store.audit_chain())) == 4
    assert verify_chain(store.audit_chain()).ok
