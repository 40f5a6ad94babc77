"""Migration 0002 (trusted versions, trust events, the generation) on a database at 0001."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, MetaData, inspect

import corral.store.sql
from corral.registry.ports import VersionQuery
from corral.store.sql import SqlRegistryStore, make_engine, upgrade_database
from corral.store.sql.migrate import HEAD, database_revision

MIGRATIONS = Path(corral.store.sql.__file__).resolve().parent / "migrations"
WHEN = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _migrate_to(engine: Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()


def _fill_at_0001(engine: Engine) -> None:
    """A model with a tagged version, written with the 0001 schema as it was."""
    tables = MetaData()
    tables.reflect(engine)
    models, versions, tags = (tables.tables[n] for n in ("models", "versions", "version_tags"))
    with engine.begin() as connection:
        connection.execute(
            models.insert(),
            {
                "id": 1, "name": "churn", "description": "", "owner": "ana", "tags": {},
                "task": "", "framework": "", "license": "", "source": "internal",
                "next_version": 2, "created_at": WHEN, "updated_at": WHEN,
            },
        )  # fmt: skip
        connection.execute(
            versions.insert(),
            {
                "id": 1, "model_id": 1, "number": 1, "status": "ready",
                "manifest_digest": "m" * 64, "flavor": "pickle", "description": "old",
                "metrics": {}, "params": {}, "tags": {"stage": "prod"}, "signature": None,
                "source_uri": "", "parent_version": None, "created_by": "ana",
                "created_at": WHEN, "deprecation_message": None, "deprecated_by": None,
                "deprecated_at": None, "files": [], "size": 0,
            },
        )  # fmt: skip
        connection.execute(tags.insert(), {"version_id": 1, "key": "stage", "value": "prod"})


@pytest.fixture
def engine_at_0001(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    try:
        _migrate_to(engine, "0001")
        assert database_revision(engine) == "0001"
        _fill_at_0001(engine)
        yield engine
    finally:
        engine.dispose()


def test_a_0001_database_upgrades_and_keeps_its_versions_untrusted(
    engine_at_0001: Engine,
) -> None:
    assert upgrade_database(engine_at_0001) == HEAD

    store = SqlRegistryStore(engine_at_0001)
    version = store.find_version("churn", 1)
    assert version is not None
    assert (version.description, version.flavor, version.trusted) == ("old", "pickle", False)
    assert version.tags == {"stage": "prod"}
    # The version's tag rows survived the new column: searching by tag still finds it.
    found = store.list_versions(VersionQuery(tags={"stage": "prod"})).items
    assert [(v.model, v.number, v.trusted) for v in found] == [("churn", 1, False)]
    assert store.trust_history("churn", 1) == []
    schema = inspect(engine_at_0001)
    assert {"trust_events", "registry_state"} <= set(schema.get_table_names())


def test_an_upgraded_database_counts_generations_and_records_trust(
    engine_at_0001: Engine,
) -> None:
    upgrade_database(engine_at_0001)
    store = SqlRegistryStore(engine_at_0001)

    assert store.generation() == 0
    trusted = store.set_trust("churn", 1, True, "ana", "reviewed", WHEN)

    assert trusted.trusted is True
    assert store.generation() == 1
    assert [e.actor for e in store.trust_history("churn", 1)] == ["ana"]
