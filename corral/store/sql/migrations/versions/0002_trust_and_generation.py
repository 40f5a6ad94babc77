"""Trusted versions with their audit trail, and the registry's generation counter.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing versions become untrusted: trust is only ever granted through an audited event.
    # A plain ADD COLUMN on SQLite too: a batch rebuild would drop the old table, and its
    # ON DELETE CASCADE would empty version_tags.
    op.add_column(
        "versions", sa.Column("trusted", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.create_table(
        "trust_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "model_id",
            sa.Integer,
            sa.ForeignKey("models.id", ondelete="CASCADE", name="fk_trust_events_model_id_models"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("trusted", sa.Boolean, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_trust_events"),
    )
    op.create_index(
        "ix_trust_events_model_id_version_id", "trust_events", ["model_id", "version", "id"]
    )
    state = op.create_table(
        "registry_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_registry_state"),
    )
    op.bulk_insert(state, [{"id": 1, "generation": 0}])


def downgrade() -> None:
    op.drop_table("registry_state")
    op.drop_index("ix_trust_events_model_id_version_id", table_name="trust_events")
    op.drop_table("trust_events")
    op.drop_column("versions", "trusted")  # SQLite 3.35+ drops a column in place
