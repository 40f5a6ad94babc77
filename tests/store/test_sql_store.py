"""SqlRegistryStore on SQLite and PostgreSQL: the RegistryStore contract, schema and concurrency."""

from __future__ import annotations

import multiprocessing
import queue as queue_module
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, inspect

from corral.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from corral.registry.entities import (
    Alias,
    AliasAction,
    ColumnSpec,
    ConfigRevision,
    Consumer,
    Deprecation,
    FileEntry,
    Model,
    ModelSource,
    ModelVersion,
    Signature,
    VersionStatus,
)
from corral.registry.errors import (
    AliasMoved,
    AliasNotFound,
    ConsumerAlreadyExists,
    ConsumerNotFound,
    ModelAlreadyExists,
    ModelNotFound,
    VersionNotFound,
)
from corral.registry.ports import VersionQuery
from corral.store.sql import SqlRegistryStore, make_engine, upgrade_database
from corral.store.sql.migrate import database_revision, head_revision
from corral.store.sql.tables import Base

FILES = [FileEntry("model.skops", 10, "a" * 64), FileEntry("conf/params.json", 5, "b" * 64)]


def draft(model: str = "churn", **changes: Any) -> ModelVersion:
    values: dict[str, Any] = {
        "model": model,
        "number": 0,
        "status": VersionStatus.READY,
        "manifest_digest": "m" * 64,
        "files": FILES,
    }
    values.update(changes)
    return ModelVersion(**values)


@pytest.fixture
def store(sql_store: SqlRegistryStore) -> SqlRegistryStore:
    sql_store.create_model(Model(name="churn", description="Who leaves", tags={"team": "crm"}))
    return sql_store


def target(version: int, **changes: Any) -> Alias:
    return Alias(model="churn", name="prod", version=version, **changes)


# --- models -----------------------------------------------------------------------------


def test_create_model_returns_it_with_utc_timestamps(sql_store: SqlRegistryStore) -> None:
    created = sql_store.create_model(
        Model(name="fraud", owner="ana", tags={"a": "1"}, source=ModelSource.THIRD_PARTY)
    )

    assert created.name == "fraud"
    assert created.source is ModelSource.THIRD_PARTY
    assert created.latest_version is None
    assert created.created_at is not None
    assert created.created_at.tzinfo is not None
    assert created.created_at.utcoffset() == timedelta(0)
    assert sql_store.find_model("fraud") == created


def test_create_model_rejects_a_taken_name(store: SqlRegistryStore) -> None:
    with pytest.raises(ModelAlreadyExists, match="model 'churn' already exists"):
        store.create_model(Model(name="churn"))
    assert isinstance(ModelAlreadyExists("x"), AlreadyExists)


def test_find_model_returns_none_when_absent(sql_store: SqlRegistryStore) -> None:
    assert sql_store.find_model("nope") is None


def test_list_models_searches_name_and_description_and_tags(store: SqlRegistryStore) -> None:
    store.create_model(Model(name="fraud", description="card fraud", tags={"team": "risk"}))
    store.create_model(Model(name="fraud-v2", tags={"team": "risk", "tier": "gold"}))
    store.create_model(Model(name="x_y", description="100% literal"))

    def names(query: str | None, tags: dict[str, str] | None = None) -> list[str]:
        page = store.list_models(query, tags or {}, 0, 100)
        assert page.total == len(page.items)
        return [m.name for m in page.items]

    assert names(None) == ["churn", "fraud", "fraud-v2", "x_y"]
    assert names("FRAUD") == ["fraud", "fraud-v2"]
    assert names("leaves") == ["churn"]
    assert names("%") == ["x_y"]
    assert names("_") == ["x_y"]
    assert names(None, {"team": "risk"}) == ["fraud", "fraud-v2"]
    assert names("fraud", {"team": "risk", "tier": "gold"}) == ["fraud-v2"]
    assert names(None, {"team": "nobody"}) == []


def test_list_models_pages(store: SqlRegistryStore) -> None:
    for name in ("b", "c", "d"):
        store.create_model(Model(name=name))

    page = store.list_models(None, {}, 1, 2)

    assert [m.name for m in page.items] == ["c", "churn"]
    assert (page.total, page.offset, page.limit) == (4, 1, 2)


def test_update_model_changes_fields_and_tags(store: SqlRegistryStore) -> None:
    before = store.find_model("churn")
    assert before is not None

    updated = store.update_model(
        "churn", {"description": "new", "tags": {"team": "growth"}, "source": "third-party"}
    )

    assert updated.description == "new"
    assert updated.tags == {"team": "growth"}
    assert updated.source is ModelSource.THIRD_PARTY
    assert updated.updated_at is not None
    assert before.updated_at is not None
    assert updated.updated_at >= before.updated_at
    assert store.find_model("churn") == updated
    assert [m.name for m in store.list_models(None, {"team": "growth"}, 0, 10).items] == ["churn"]
    assert store.list_models(None, {"team": "crm"}, 0, 10).items == []


def test_update_model_refuses_unknown_fields_and_missing_models(store: SqlRegistryStore) -> None:
    with pytest.raises(InvalidArgument, match="name"):
        store.update_model("churn", {"name": "other"})
    with pytest.raises(InvalidArgument, match="'vendor'"):
        store.update_model("churn", {"source": "vendor"})
    with pytest.raises(ModelNotFound, match="model 'nope' does not exist"):
        store.update_model("nope", {"owner": "x"})


def test_delete_model_cascades_to_everything(store: SqlRegistryStore) -> None:
    store.create_version(draft(tags={"k": "v"}))
    store.move_alias("churn", "prod", target(1), AliasAction.SET, "ana", "", None)
    store.create_config_revision(ConfigRevision("churn", "default", 0, {"replicas": 2}))
    store.create_consumer(Consumer(name="web", model="churn", version=1))

    store.delete_model("churn")

    assert store.find_model("churn") is None
    assert store.list_versions(VersionQuery(tags={"k": "v"})).total == 0
    assert store.list_consumers(None) == []
    assert store.referenced_manifests() == set()
    # A new model of the same name starts from scratch.
    store.create_model(Model(name="churn"))
    assert store.create_version(draft()).number == 1
    assert store.alias_history("churn", None, 0, 10).total == 0
    assert store.list_config_revisions("churn", None) == []
    assert store.list_aliases("churn") == []


def test_delete_model_raises_when_absent(sql_store: SqlRegistryStore) -> None:
    with pytest.raises(ModelNotFound, match="'nope'"):
        sql_store.delete_model("nope")


# --- versions ---------------------------------------------------------------------------


def test_create_version_numbers_and_stores_every_field(store: SqlRegistryStore) -> None:
    deprecation = Deprecation("use v2", "ana", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    signature = Signature(
        inputs=[ColumnSpec("age", "int64"), ColumnSpec("img", "float32", [-1, 28, 28])],
        outputs=[ColumnSpec("p", "float64", [1])],
    )
    first = store.create_version(draft(number=99))
    second = store.create_version(
        draft(
            flavor="sklearn",
            description="better",
            metrics={"auc": 0.91},
            params={"depth": "4"},
            tags={"stage": "candidate"},
            signature=signature,
            source_uri="s3://bucket/run",
            parent_version=1,
            created_by="ana",
            deprecation=deprecation,
            status=VersionStatus.PENDING,
        )
    )

    assert (first.number, second.number) == (1, 2)
    assert first.files == FILES
    assert first.size == 15
    assert second.signature == signature
    assert second.deprecation == deprecation
    assert second.status is VersionStatus.PENDING
    assert (second.metrics, second.params, second.tags) == (
        {"auc": 0.91},
        {"depth": "4"},
        {"stage": "candidate"},
    )
    assert store.find_version("churn", 2) == second
    model = store.find_model("churn")
    assert model is not None
    assert model.latest_version == 2


def test_create_version_of_a_missing_model_raises(sql_store: SqlRegistryStore) -> None:
    with pytest.raises(ModelNotFound, match="model 'nope' does not exist"):
        sql_store.create_version(draft("nope"))


def test_find_version_returns_none_for_a_missing_number(store: SqlRegistryStore) -> None:
    assert store.find_version("churn", 3) is None
    with pytest.raises(ModelNotFound):
        store.find_version("nope", 1)


def test_list_versions_is_newest_first_without_files(store: SqlRegistryStore) -> None:
    for _ in range(3):
        store.create_version(draft())

    page = store.list_versions(VersionQuery(model="churn", limit=2))

    assert [v.number for v in page.items] == [3, 2]
    assert page.total == 3
    assert all(v.files == [] and v.size == 15 for v in page.items)
    assert [v.number for v in store.list_versions(VersionQuery(model="churn", offset=2)).items] == [
        1
    ]


def test_list_versions_filters_by_tags_status_and_model_name(store: SqlRegistryStore) -> None:
    store.create_model(Model(name="fraud"))
    store.create_version(draft(tags={"stage": "prod", "owner": "ana"}))
    store.create_version(draft(tags={"stage": "dev"}))
    store.create_version(draft("fraud", tags={"stage": "prod"}, status=VersionStatus.FAILED))

    def found(query: VersionQuery) -> list[tuple[str, int]]:
        return [(v.model, v.number) for v in store.list_versions(query).items]

    assert found(VersionQuery(tags={"stage": "prod"})) == [("fraud", 1), ("churn", 1)]
    assert found(VersionQuery(tags={"stage": "prod", "owner": "ana"})) == [("churn", 1)]
    assert found(VersionQuery(status=VersionStatus.FAILED)) == [("fraud", 1)]
    assert found(VersionQuery(name_contains="RAU")) == [("fraud", 1)]
    assert found(VersionQuery(model="churn", tags={"stage": "dev"})) == [("churn", 2)]
    with pytest.raises(ModelNotFound):
        store.list_versions(VersionQuery(model="nope"))


def test_tag_search_uses_the_tag_index(store: SqlRegistryStore) -> None:
    indexes = inspect(store.engine).get_indexes("version_tags")

    assert {"name": "ix_version_tags_key_value", "columns": ["key", "value", "version_id"]} in [
        {"name": i["name"], "columns": i["column_names"]} for i in indexes
    ]


def test_set_status_and_deprecation(store: SqlRegistryStore) -> None:
    store.create_version(draft(status=VersionStatus.PENDING))
    deprecation = Deprecation("broken", "bob", datetime(2026, 5, 1, tzinfo=UTC))

    assert store.set_status("churn", 1, VersionStatus.QUARANTINED).status is (
        VersionStatus.QUARANTINED
    )
    assert store.set_deprecation("churn", 1, deprecation).deprecation == deprecation
    cleared = store.set_deprecation("churn", 1, None)
    assert cleared.deprecation is None
    assert cleared.status is VersionStatus.QUARANTINED
    with pytest.raises(VersionNotFound, match="model 'churn' has no version 9"):
        store.set_status("churn", 9, VersionStatus.READY)
    with pytest.raises(ModelNotFound):
        store.set_deprecation("nope", 1, None)


def test_referenced_manifests_lists_every_digest(store: SqlRegistryStore) -> None:
    store.create_version(draft(manifest_digest="1" * 64))
    store.create_version(draft(manifest_digest="2" * 64))
    store.create_version(draft(manifest_digest="2" * 64))

    assert store.referenced_manifests() == {"1" * 64, "2" * 64}


# --- aliases ----------------------------------------------------------------------------


def test_move_alias_sets_moves_and_deletes_with_history(store: SqlRegistryStore) -> None:
    store.create_version(draft())
    store.create_version(draft())

    first = store.move_alias("churn", "prod", target(1), AliasAction.SET, "ana", "launch", None)
    second = store.move_alias("churn", "prod", target(2), AliasAction.SET, "bob", "better", 1)
    alias = store.find_alias("churn", "prod")
    third = store.move_alias("churn", "prod", None, AliasAction.DELETE, "ana", "retire", 2)

    assert (first.from_version, first.to_version, first.actor) == (None, 1, "ana")
    assert (second.from_version, second.to_version, second.reason) == (1, 2, "better")
    assert alias is not None
    assert (alias.version, alias.updated_by) == (2, "bob")
    assert (third.action, third.from_version, third.to_version) == (AliasAction.DELETE, 2, None)
    assert store.find_alias("churn", "prod") is None
    history = store.alias_history("churn", "prod", 0, 10)
    assert history.items == [third, second, first]
    assert history.total == 3


def test_move_alias_conflicts_when_the_alias_moved_meanwhile(store: SqlRegistryStore) -> None:
    store.create_version(draft())
    store.create_version(draft())
    store.move_alias("churn", "prod", target(1), AliasAction.SET, "ana", "", None)

    with pytest.raises(AliasMoved, match="alias 'prod' of model 'churn' was moved") as caught:
        store.move_alias("churn", "prod", target(2), AliasAction.SET, "bob", "", None)

    assert isinstance(caught.value, Conflict)
    alias = store.find_alias("churn", "prod")
    assert alias is not None
    assert alias.version == 1
    assert store.alias_history("churn", None, 0, 10).total == 1


def test_move_alias_checks_its_target(store: SqlRegistryStore) -> None:
    with pytest.raises(VersionNotFound, match="no version 5"):
        store.move_alias("churn", "prod", target(5), AliasAction.SET, "ana", "", None)
    with pytest.raises(AliasNotFound, match="no alias 'prod'"):
        store.move_alias("churn", "prod", None, AliasAction.DELETE, "ana", "", None)
    with pytest.raises(ModelNotFound):
        store.move_alias("nope", "prod", None, AliasAction.DELETE, "ana", "", None)
    store.create_version(draft())
    with pytest.raises(NotFound, match="config 'gpu'"):
        store.move_alias("churn", "prod", target(1, config="gpu"), AliasAction.SET, "ana", "", None)


def test_move_alias_records_config_targets(store: SqlRegistryStore) -> None:
    store.create_version(draft())
    store.create_config_revision(ConfigRevision("churn", "gpu", 0, {"gpus": 1}))
    store.move_alias("churn", "prod", target(1), AliasAction.SET, "ana", "", None)

    event = store.move_alias(
        "churn",
        "prod",
        target(1, config="gpu", config_revision=1),
        AliasAction.ROLLBACK,
        "ana",
        "",
        1,
    )

    assert (event.from_config, event.to_config, event.to_config_revision) == (None, "gpu", 1)
    assert event.action is AliasAction.ROLLBACK
    alias = store.find_alias("churn", "prod")
    assert alias is not None
    assert (alias.config, alias.config_revision) == ("gpu", 1)


def test_alias_history_of_all_aliases_is_newest_first_and_pages(store: SqlRegistryStore) -> None:
    store.create_version(draft())
    for name in ("a", "b", "c"):
        store.move_alias("churn", name, target(1), AliasAction.SET, "ana", "", None)

    page = store.alias_history("churn", None, 1, 1)

    assert [e.alias for e in page.items] == ["b"]
    assert page.total == 3
    assert [a.name for a in store.list_aliases("churn")] == ["a", "b", "c"]
    with pytest.raises(ModelNotFound):
        store.alias_history("nope", None, 0, 10)


# --- configs ----------------------------------------------------------------------------


def test_config_revisions_are_numbered_per_config(store: SqlRegistryStore) -> None:
    a1 = store.create_config_revision(ConfigRevision("churn", "a", 7, {"x": 1}, comment="one"))
    a2 = store.create_config_revision(ConfigRevision("churn", "a", 7, {"x": [1, 2]}))
    b1 = store.create_config_revision(ConfigRevision("churn", "b", 0, {"nested": {"y": None}}))

    assert (a1.revision, a2.revision, b1.revision) == (1, 2, 1)
    assert store.find_config_revision("churn", "a", None) == a2
    assert store.find_config_revision("churn", "a", 1) == a1
    assert store.find_config_revision("churn", "a", 3) is None
    assert store.find_config_revision("churn", "c", None) is None
    assert store.list_config_revisions("churn", None) == [a1, a2, b1]
    assert store.list_config_revisions("churn", "b") == [b1]
    with pytest.raises(ModelNotFound):
        store.create_config_revision(ConfigRevision("nope", "a", 0, {}))


# --- consumers --------------------------------------------------------------------------


def test_consumers_are_unique_per_model(store: SqlRegistryStore) -> None:
    store.create_model(Model(name="fraud"))
    store.create_version(draft())
    web = store.create_consumer(Consumer(name="web", model="churn", version=1))
    other = store.create_consumer(Consumer(name="web", model="fraud", alias="prod"))

    with pytest.raises(ConsumerAlreadyExists, match="consumer 'web' of model 'churn'"):
        store.create_consumer(Consumer(name="web", model="churn", alias="prod"))
    assert store.find_consumer("web", "churn") == web
    assert store.list_consumers(None) == [web, other]
    assert store.list_consumers("fraud") == [other]


def test_update_and_delete_consumer(store: SqlRegistryStore) -> None:
    store.create_version(draft())
    store.create_consumer(Consumer(name="web", model="churn", version=1))

    moved = store.update_consumer(Consumer(name="web", model="churn", alias="prod"))

    assert (moved.version, moved.alias) == (None, "prod")
    assert store.find_consumer("web", "churn") == moved
    store.delete_consumer("web", "churn")
    assert store.find_consumer("web", "churn") is None
    with pytest.raises(ConsumerNotFound, match="consumer 'web' of model 'churn' does not exist"):
        store.delete_consumer("web", "churn")
    with pytest.raises(ConsumerNotFound):
        store.update_consumer(Consumer(name="web", model="churn"))
    with pytest.raises(VersionNotFound):
        store.create_consumer(Consumer(name="api", model="churn", version=4))
    with pytest.raises(ModelNotFound):
        store.find_consumer("web", "nope")


# --- schema -----------------------------------------------------------------------------


def test_upgrade_database_is_idempotent_and_matches_the_tables(database_url: str) -> None:
    assert upgrade_database(database_url) == head_revision()
    assert upgrade_database(database_url) == head_revision()

    engine = make_engine(database_url)
    try:
        assert database_revision(engine) == head_revision()
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_a_fresh_database_has_no_revision(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert database_revision(engine) is None
    finally:
        engine.dispose()


def test_sqlite_engine_is_tuned_and_writes_begin_immediate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'corral.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    begins: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("BEGIN"):
            begins.append(statement)

    try:
        store = SqlRegistryStore(engine)
        with engine.connect() as connection:
            pragmas = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
            }
        begins.clear()
        store.create_model(Model(name="churn"))
        store.find_model("churn")
    finally:
        engine.dispose()

    assert pragmas == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": 60000,
        "synchronous": 1,
    }
    assert begins == ["BEGIN IMMEDIATE", "BEGIN"]


# --- concurrency ------------------------------------------------------------------------

WRITERS = 8


def _create_one_version(url: str, barrier: Any, results: Any) -> None:
    engine = make_engine(url)
    try:
        store = SqlRegistryStore(engine)
        barrier.wait(timeout=60)
        results.put(store.create_version(draft()).number)
    except Exception as exc:  # reported to the parent, which fails the test
        results.put(repr(exc))
    finally:
        engine.dispose()


@pytest.mark.slow
def test_concurrent_processes_get_consecutive_version_numbers(
    database_url: str, store: SqlRegistryStore
) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WRITERS)
    results = context.Queue()
    workers = [
        context.Process(target=_create_one_version, args=(database_url, barrier, results))
        for _ in range(WRITERS)
    ]
    for worker in workers:
        worker.start()
    try:
        numbers = [results.get(timeout=120) for _ in workers]
    except queue_module.Empty:
        numbers = []
    finally:
        for worker in workers:
            worker.join(timeout=60)
        results.close()
        results.join_thread()

    assert sorted(numbers, key=str) == list(range(1, WRITERS + 1))
    assert [v.number for v in store.list_versions(VersionQuery(model="churn")).items] == list(
        range(WRITERS, 0, -1)
    )
