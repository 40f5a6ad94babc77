"""Programmatic Alembic: bring a database to the newest schema without an alembic.ini."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from corral.store.sql.engine import WRITE_OPTION, make_engine

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["HEAD", "database_revision", "head_revision", "upgrade_database"]

# The newest migration, known without importing Alembic (a test pins it to Alembic's head):
# a process that finds its database current never pays Alembic's import time.
HEAD = "0007"

# Any fixed number works: it only has to be the same in every process upgrading one database.
_LOCK_KEY = 0x636F7272616C  # "corral"
_SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_SCRIPT_LOCATION))
    return config


def head_revision() -> str:
    """The newest migration this Corral ships."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise RuntimeError(f"no Alembic migrations found in {_SCRIPT_LOCATION}")
    return head


def database_revision(engine: Engine) -> str | None:
    """The migration the database is at; None when it was never migrated."""
    with engine.connect() as connection:
        try:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        except DBAPIError:
            return None
    return str(rows[0][0]) if len(rows) == 1 else None


def upgrade_database(url_or_engine: str | Engine) -> str:
    """Migrate the database to the newest schema (a no-op when it is there); return the head."""
    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        if database_revision(engine) == HEAD:
            return HEAD
        from alembic import command

        head = head_revision()
        # Concurrent upgraders queue instead of racing: SQLite through the IMMEDIATE begin,
        # PostgreSQL through a transaction-scoped advisory lock; Alembic then re-reads the
        # revision inside the transaction and finds nothing left to do. The transaction is
        # begun here, before Alembic sees the connection: given none, Alembic would commit
        # after each migration on SQLite, letting a queued upgrader in half-way.
        connection = engine.connect().execution_options(**{WRITE_OPTION: True})
        with connection, connection.begin():
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            config = _config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        return head
    finally:
        if isinstance(url_or_engine, str):
            engine.dispose()
