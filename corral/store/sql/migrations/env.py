"""Alembic environment: runs migrations on the connection ``upgrade_database`` provides."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from corral.store.sql.tables import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through corral.store.sql.upgrade_database")
_run(connection)
