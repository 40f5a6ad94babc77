"""Engines for the metadata store: SQLite tuned for concurrent writers, or PostgreSQL."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, make_url

__all__ = ["WRITE_OPTION", "make_engine"]

#: Execution option the store sets on write transactions; SQLite then begins them IMMEDIATE.
WRITE_OPTION = "corral_write"

_BUSY_TIMEOUT_MS = 60_000


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


# orjson decodes JSON columns several times faster than the standard library: listing and
# searching versions decode four of them per row.
_JSON: dict[str, Any] = {"json_serializer": _dumps, "json_deserializer": orjson.loads}


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (``sqlite:///…`` or ``postgresql+psycopg://…``); does not connect."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True, **_JSON)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": _BUSY_TIMEOUT_MS / 1000}, **_JSON)
    event.listen(engine, "connect", _configure_sqlite)
    event.listen(engine, "begin", _begin_sqlite)
    return engine


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # sqlite3's own transaction control would BEGIN lazily (DEFERRED) before DML only;
    # turning it off lets _begin_sqlite choose the BEGIN (SQLAlchemy's pysqlite recipe).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        _enter_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _enter_wal(cursor: Any) -> None:
    # Switching a new database to WAL needs a moment alone with it, and SQLite answers
    # "database is locked" at once, without the busy wait, when several processes open it
    # together (`corral server --workers N` on a first start). Once switched, it stays WAL.
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() == "wal":
        return  # every open but a new database's first: nothing to switch, nothing to wait for
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _begin_sqlite(connection: Connection) -> None:
    # A deferred transaction that later writes must upgrade its lock, and SQLite fails that
    # upgrade at once with SQLITE_BUSY (no busy wait) when another writer got in first.
    # Writers therefore take the write lock up front, where busy_timeout applies.
    if connection.get_execution_options().get(WRITE_OPTION):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")
