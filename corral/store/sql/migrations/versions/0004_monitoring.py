"""Monitoring: objectives and their evaluations, alerts, webhooks and their deliveries,
per-model monitoring settings.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# At most one open alert per objective, enforced by the database so that two evaluators
# racing on one breach cannot both open (and both notify) an alert.
_OPEN = sa.text("state = 'open'")


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _fk(table: str, column: str, target: str, nullable: bool = False) -> sa.Column[int]:
    referred = target.split(".")[0]
    fk = sa.ForeignKey(target, ondelete="CASCADE", name=f"fk_{table}_{column}_{referred}")
    return sa.Column(column, sa.Integer, fk, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "objectives",
        sa.Column("id", sa.Integer, primary_key=True),
        _fk("objectives", "model_id", "models.id"),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("comparator", sa.String(2), nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("window_seconds", sa.Integer, nullable=False),
        sa.Column("min_samples", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("margin", sa.Float, nullable=False),
        _when("created_at"),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_objectives"),
    )
    op.create_index("ix_objectives_model_id_id", "objectives", ["model_id", "id"])
    op.create_table(
        "objective_evaluations",
        sa.Column("id", sa.Integer, primary_key=True),
        _fk("objective_evaluations", "objective_id", "objectives.id"),
        _when("at"),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("samples", sa.BigInteger, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_objective_evaluations"),
    )
    op.create_index(
        "ix_objective_evaluations_objective_id_id",
        "objective_evaluations",
        ["objective_id", "id"],
    )
    # No foreign keys from here on: alerts and deliveries are history, and outlive the
    # objective, model or webhook they were about (like the audit log).
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("objective_id", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        _when("opened_at"),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        _when("closed_at", nullable=True),
        _when("last_notified_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_model_id", "alerts", ["model", "id"])
    op.create_index(
        "uq_alerts_objective_id_open",
        "alerts",
        ["objective_id"],
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )
    # The secret is stored as given: signing needs it back (it is never returned by the API).
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        _fk("webhooks", "model_id", "models.id", nullable=True),
        _when("created_at"),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhooks"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("webhook_id", sa.Integer, nullable=False),
        sa.Column("alert_id", sa.Integer, nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        _when("at"),
        sa.Column("succeeded", sa.Boolean, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_deliveries"),
    )
    op.create_index("ix_webhook_deliveries_alert_id_id", "webhook_deliveries", ["alert_id", "id"])
    op.create_table(
        "monitor_settings",
        sa.Column(
            "model_id",
            sa.Integer,
            sa.ForeignKey(
                "models.id", ondelete="CASCADE", name="fk_monitor_settings_model_id_models"
            ),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("values", sa.JSON, nullable=False),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("model_id", name="pk_monitor_settings"),
    )


def downgrade() -> None:
    op.drop_table("monitor_settings")
    op.drop_index("ix_webhook_deliveries_alert_id_id", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhooks")
    op.drop_index("uq_alerts_objective_id_open", table_name="alerts")
    op.drop_index("ix_alerts_model_id", table_name="alerts")
    op.drop_table("alerts")
    op.drop_index("ix_objective_evaluations_objective_id_id", table_name="objective_evaluations")
    op.drop_table("objective_evaluations")
    op.drop_index("ix_objectives_model_id_id", table_name="objectives")
    op.drop_table("objectives")
