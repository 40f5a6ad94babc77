"""Quarantined versions with their scan report and audit trail.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Versions from before scanning are not quarantined and have no report (``corral version
    # scan`` scans them on demand). Plain ADD COLUMNs, as in 0002: a batch rebuild on SQLite
    # would drop the table, and its ON DELETE CASCADE would empty version_tags.
    op.add_column(
        "versions",
        sa.Column("quarantined", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column("versions", sa.Column("scan_report", sa.JSON, nullable=True))
    op.create_table(
        "quarantine_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "model_id",
            sa.Integer,
            sa.ForeignKey(
                "models.id", ondelete="CASCADE", name="fk_quarantine_events_model_id_models"
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_quarantine_events"),
    )
    op.create_index(
        "ix_quarantine_events_model_id_version_id",
        "quarantine_events",
        ["model_id", "version", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_quarantine_events_model_id_version_id", table_name="quarantine_events")
    op.drop_table("quarantine_events")
    op.drop_column("versions", "scan_report")  # SQLite 3.35+ drops a column in place
    op.drop_column("versions", "quarantined")
