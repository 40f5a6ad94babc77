"""SqlRegistryStore's trust flag with its audit trail, and the registry generation counter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from corral.registry.entities import (
    Alias,
    AliasAction,
    ConfigRevision,
    Consumer,
    Deprecation,
    FileEntry,
    Model,
    ModelVersion,
    VersionStatus,
)
from corral.registry.errors import ModelAlreadyExists, ModelNotFound, VersionNotFound
from corral.registry.ports import VersionQuery
from corral.store.sql import SqlRegistryStore, make_engine

AT = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)


def draft(model: str = "churn", **changes: Any) -> ModelVersion:
    values: dict[str, Any] = {
        "model": model,
        "number": 0,
        "status": VersionStatus.READY,
        "manifest_digest": "m" * 64,
        "files": [FileEntry("model.pkl", 10, "a" * 64)],
    }
    values.update(changes)
    return ModelVersion(**values)


@pytest.fixture
def store(sql_store: SqlRegistryStore) -> SqlRegistryStore:
    sql_store.create_model(Model(name="churn"))
    sql_store.create_version(draft())
    return sql_store


# --- trust ------------------------------------------------------------------------------


def test_a_new_version_is_untrusted_even_when_the_draft_says_trusted(
    store: SqlRegistryStore,
) -> None:
    created = store.create_version(draft(trusted=True))

    assert created.trusted is False
    assert store.find_version("churn", created.number) == created
    assert store.trust_history("churn", created.number) == []


def test_set_trust_changes_the_flag_and_records_each_marking(store: SqlRegistryStore) -> None:
    trusted = store.set_trust("churn", 1, True, "ana", "reviewed the pickle", AT)
    again = store.set_trust("churn", 1, True, "bob", "second review", AT)
    untrusted = store.set_trust("churn", 1, False, "eve", "", AT)

    assert (trusted.trusted, again.trusted, untrusted.trusted) == (True, True, False)
    assert store.find_version("churn", 1) == untrusted
    listed = store.list_versions(VersionQuery(model="churn")).items
    assert [v.trusted for v in listed] == [False]
    history = store.trust_history("churn", 1)
    assert [(e.trusted, e.actor, e.reason) for e in history] == [
        (False, "eve", ""),
        (True, "bob", "second review"),
        (True, "ana", "reviewed the pickle"),
    ]
    assert all(e.model == "churn" and e.version == 1 and e.at == AT for e in history)
    assert history[0].id > history[1].id > history[2].id


def test_trust_is_per_version(store: SqlRegistryStore) -> None:
    store.create_version(draft())

    store.set_trust("churn", 2, True, "ana", "ok", AT)

    assert store.find_version("churn", 1).trusted is False  # type: ignore[union-attr]
    assert store.find_version("churn", 2).trusted is True  # type: ignore[union-attr]
    assert store.trust_history("churn", 1) == []


def test_set_trust_of_a_missing_version_changes_nothing(store: SqlRegistryStore) -> None:
    before = store.generation()

    with pytest.raises(VersionNotFound, match="model 'churn' has no version 7"):
        store.set_trust("churn", 7, True, "ana", "ok", AT)
    with pytest.raises(ModelNotFound, match="model 'nope' does not exist"):
        store.set_trust("nope", 1, True, "ana", "ok", AT)

    assert store.trust_history("churn", 7) == []
    assert store.generation() == before


def test_deleting_a_model_deletes_its_trust_history(store: SqlRegistryStore) -> None:
    store.set_trust("churn", 1, True, "ana", "ok", AT)

    store.delete_model("churn")
    store.create_model(Model(name="churn"))
    store.create_version(draft())

    assert store.find_version("churn", 1).trusted is False  # type: ignore[union-attr]
    assert store.trust_history("churn", 1) == []


# --- generation -------------------------------------------------------------------------


def _writes(store: SqlRegistryStore) -> Iterator[tuple[str, Callable[[], object]]]:
    """One call of every kind of write, in an order where each one can succeed."""
    deprecation = Deprecation("use v2", "ana", AT)
    prod = Alias(model="churn", name="prod", version=1)
    move, delete = AliasAction.SET, AliasAction.DELETE
    yield "create_model", lambda: store.create_model(Model(name="fraud"))
    yield "update_model", lambda: store.update_model("fraud", {"owner": "ana"})
    yield "create_version", lambda: store.create_version(draft())
    yield "set_status", lambda: store.set_status("churn", 2, VersionStatus.QUARANTINED)
    yield "set_deprecation", lambda: store.set_deprecation("churn", 1, deprecation)
    yield "lift_deprecation", lambda: store.set_deprecation("churn", 1, None)
    yield "set_trust", lambda: store.set_trust("churn", 1, True, "ana", "reviewed", AT)
    yield "untrust", lambda: store.set_trust("churn", 1, False, "ana", "", AT)
    yield "config", lambda: store.create_config_revision(ConfigRevision("churn", "cfg", 0, {}))
    yield "set_alias", lambda: store.move_alias("churn", "prod", prod, move, "", "", None)
    yield "create_consumer", lambda: store.create_consumer(Consumer("web", "churn", version=1))
    yield "update_consumer", lambda: store.update_consumer(Consumer("web", "churn", alias="prod"))
    yield "delete_consumer", lambda: store.delete_consumer("web", "churn")
    yield "delete_alias", lambda: store.move_alias("churn", "prod", None, delete, "", "", 1)
    yield "delete_model", lambda: store.delete_model("fraud")


def _reads(store: SqlRegistryStore) -> list[Callable[[], object]]:
    return [
        lambda: store.find_model("churn"),
        lambda: store.list_models(None, {}, 0, 10),
        lambda: store.find_version("churn", 1),
        lambda: store.list_versions(VersionQuery(model="churn")),
        lambda: store.find_alias("churn", "prod"),
        lambda: store.list_aliases("churn"),
        lambda: store.alias_history("churn", None, 0, 10),
        lambda: store.find_config_revision("churn", "cfg", None),
        lambda: store.list_config_revisions("churn", None),
        lambda: store.find_consumer("web", "churn"),
        lambda: store.list_consumers(None),
        lambda: store.trust_history("churn", 1),
        lambda: store.referenced_manifests(),
        lambda: store.generation(),
    ]


def test_every_kind_of_write_increases_the_generation_by_one(store: SqlRegistryStore) -> None:
    seen = {}
    for name, write in _writes(store):
        before = store.generation()
        write()
        seen[name] = store.generation() - before

    assert seen == dict.fromkeys(seen, 1)


def test_reads_leave_the_generation_alone(store: SqlRegistryStore) -> None:
    for _, write in _writes(store):
        write()
    before = store.generation()

    for read in _reads(store):
        read()

    assert store.generation() == before


def test_a_failed_write_leaves_the_generation_alone(store: SqlRegistryStore) -> None:
    before = store.generation()

    with pytest.raises(ModelAlreadyExists):
        store.create_model(Model(name="churn"))
    with pytest.raises(VersionNotFound):
        store.set_status("churn", 9, VersionStatus.READY)

    assert store.generation() == before


def test_a_separate_engine_sees_the_generation_a_write_committed(
    database_url: str, store: SqlRegistryStore
) -> None:
    other_engine = make_engine(database_url)
    try:
        other = SqlRegistryStore(other_engine)
        before = other.generation()

        store.set_trust("churn", 1, True, "ana", "reviewed", AT)

        assert other.generation() == before + 1
        assert other.find_version("churn", 1).trusted is True  # type: ignore[union-attr]
    finally:
        other_engine.dispose()
