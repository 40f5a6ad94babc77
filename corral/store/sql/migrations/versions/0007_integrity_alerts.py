"""Integrity alerts: an alert may come from a source other than an objective.

``alerts.source`` is "" for an objective's alert and names what raised the others (e.g.
``signature:<model>/<version>``, whose objective_id is 0); the partial unique index keeps
one open alert per objective and source.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_OPEN = sa.text("state = 'open'")
_INDEX = "uq_alerts_objective_id_open"


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite allows it with a constant default): no table rebuild.
    op.add_column("alerts", sa.Column("source", sa.String(128), nullable=False, server_default=""))
    op.drop_index(_INDEX, table_name="alerts")
    op.create_index(
        _INDEX,
        "alerts",
        ["objective_id", "source"],
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )


def downgrade() -> None:
    # Alerts from other sources have no objective: they go with the column.
    op.execute(sa.text("DELETE FROM alerts WHERE source <> ''"))
    op.drop_index(_INDEX, table_name="alerts")
    op.create_index(
        _INDEX,
        "alerts",
        ["objective_id"],
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )
    op.drop_column("alerts", "source")
