"""The registry: models, versions, tags, aliases and their history, configs, consumers.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _model_fk(table: str) -> sa.Column[int]:
    fk = sa.ForeignKey("models.id", ondelete="CASCADE", name=f"fk_{table}_model_id_models")
    return sa.Column("model_id", sa.Integer, fk, nullable=False)


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("task", sa.String(128), nullable=False),
        sa.Column("framework", sa.String(128), nullable=False),
        sa.Column("license", sa.String(256), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("next_version", sa.Integer, nullable=False),
        _when("created_at"),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_models"),
        sa.UniqueConstraint("name", name="uq_models_name"),
    )
    op.create_table(
        "model_tags",
        _model_fk("model_tags"),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("value", sa.String(1024), nullable=False),
        sa.PrimaryKeyConstraint("model_id", "key", name="pk_model_tags"),
    )
    op.create_index("ix_model_tags_key_value", "model_tags", ["key", "value", "model_id"])
    op.create_table(
        "versions",
        sa.Column("id", sa.Integer, primary_key=True),
        _model_fk("versions"),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("manifest_digest", sa.String(128), nullable=False),
        sa.Column("flavor", sa.String(128), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("signature", sa.JSON, nullable=True),
        sa.Column("source_uri", sa.Text, nullable=False),
        sa.Column("parent_version", sa.Integer, nullable=True),
        sa.Column("created_by", sa.String(256), nullable=False),
        _when("created_at"),
        sa.Column("deprecation_message", sa.Text, nullable=True),
        sa.Column("deprecated_by", sa.String(256), nullable=True),
        _when("deprecated_at", nullable=True),
        sa.Column("files", sa.JSON, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_versions"),
        sa.UniqueConstraint("model_id", "number", name="uq_versions_model_id_number"),
    )
    op.create_index("ix_versions_manifest_digest", "versions", ["manifest_digest"])
    op.create_table(
        "version_tags",
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey(
                "versions.id", ondelete="CASCADE", name="fk_version_tags_version_id_versions"
            ),
            nullable=False,
        ),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("value", sa.String(1024), nullable=False),
        sa.PrimaryKeyConstraint("version_id", "key", name="pk_version_tags"),
    )
    op.create_index("ix_version_tags_key_value", "version_tags", ["key", "value", "version_id"])
    op.create_table(
        "aliases",
        sa.Column("id", sa.Integer, primary_key=True),
        _model_fk("aliases"),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("config", sa.String(128), nullable=True),
        sa.Column("config_revision", sa.Integer, nullable=True),
        sa.Column("updated_by", sa.String(256), nullable=False),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_aliases"),
        sa.UniqueConstraint("model_id", "name", name="uq_aliases_model_id_name"),
    )
    op.create_table(
        "alias_events",
        sa.Column("id", sa.Integer, primary_key=True),
        _model_fk("alias_events"),
        sa.Column("alias", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("to_version", sa.Integer, nullable=True),
        sa.Column("from_config", sa.String(128), nullable=True),
        sa.Column("from_config_revision", sa.Integer, nullable=True),
        sa.Column("to_config", sa.String(128), nullable=True),
        sa.Column("to_config_revision", sa.Integer, nullable=True),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        _when("at"),
        sa.PrimaryKeyConstraint("id", name="pk_alias_events"),
    )
    op.create_index(
        "ix_alias_events_model_id_alias_id", "alias_events", ["model_id", "alias", "id"]
    )
    op.create_table(
        "config_revisions",
        sa.Column("id", sa.Integer, primary_key=True),
        _model_fk("config_revisions"),
        sa.Column("config", sa.String(128), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("values", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        _when("created_at"),
        sa.Column("comment", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_config_revisions"),
        sa.UniqueConstraint(
            "model_id", "config", "revision", name="uq_config_revisions_model_id_config_revision"
        ),
    )
    op.create_table(
        "consumers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        _model_fk("consumers"),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("alias", sa.String(128), nullable=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_consumers"),
        sa.UniqueConstraint("name", "model_id", name="uq_consumers_name_model_id"),
    )
    op.create_index("ix_consumers_model_id", "consumers", ["model_id"])


def downgrade() -> None:
    for table in (
        "consumers",
        "config_revisions",
        "alias_events",
        "aliases",
        "version_tags",
        "versions",
        "model_tags",
        "models",
    ):
        op.drop_table(table)
