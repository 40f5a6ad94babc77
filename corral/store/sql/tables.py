"""ORM rows of the metadata store; the schema itself is owned by the Alembic migrations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AlertRow",
    "AliasEventRow",
    "AliasRow",
    "AuditEventRow",
    "Base",
    "ConfigRevisionRow",
    "ConsumerRow",
    "GrantRow",
    "ModelRow",
    "ModelTagRow",
    "MonitorSettingsRow",
    "ObjectiveEvaluationRow",
    "ObjectiveRow",
    "RegistryStateRow",
    "TeamMemberRow",
    "TeamRow",
    "TokenRow",
    "TrustEventRow",
    "UserRow",
    "UtcDateTime",
    "VersionRow",
    "VersionTagRow",
    "WebhookDeliveryRow",
    "WebhookRow",
    "utcnow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp, also on SQLite (which stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: Corral stores aware UTC timestamps")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads this class attribute
        datetime: UtcDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class ModelRow(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    owner: Mapped[str] = mapped_column(String(256), default="")
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    task: Mapped[str] = mapped_column(String(128), default="")
    framework: Mapped[str] = mapped_column(String(128), default="")
    license: Mapped[str] = mapped_column(String(256), default="")
    source: Mapped[str] = mapped_column(String(32), default="internal")
    # The number the model's next version gets; bumped by an atomic UPDATE … RETURNING.
    next_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ModelTagRow(Base):
    """One tag of a model, so that filtering by tag is an index lookup."""

    __tablename__ = "model_tags"
    __table_args__ = (Index("ix_model_tags_key_value", "key", "value", "model_id"),)

    model_id: Mapped[int] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(String(1024))


class VersionRow(Base):
    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("model_id", "number"),
        Index("ix_versions_manifest_digest", "manifest_digest"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))
    manifest_digest: Mapped[str] = mapped_column(String(128))
    flavor: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    source_uri: Mapped[str] = mapped_column(Text, default="")
    parent_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime]
    deprecation_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    deprecated_by: Mapped[str | None] = mapped_column(String(256), nullable=True)
    deprecated_at: Mapped[datetime | None] = mapped_column(nullable=True)
    files: Mapped[list[Any]] = mapped_column(default=list)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    trusted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    quarantined: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    scan_report: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class VersionTagRow(Base):
    """One tag of a version, so that searching versions by tag is an index lookup."""

    __tablename__ = "version_tags"
    __table_args__ = (Index("ix_version_tags_key_value", "key", "value", "version_id"),)

    version_id: Mapped[int] = mapped_column(
        ForeignKey("versions.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(String(1024))


class AliasRow(Base):
    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("model_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    config: Mapped[str | None] = mapped_column(String(128), nullable=True)
    config_revision: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_by: Mapped[str] = mapped_column(String(256), default="")
    updated_at: Mapped[datetime]


class AliasEventRow(Base):
    __tablename__ = "alias_events"
    __table_args__ = (Index("ix_alias_events_model_id_alias_id", "model_id", "alias", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    from_config: Mapped[str | None] = mapped_column(String(128), nullable=True)
    from_config_revision: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_config: Mapped[str | None] = mapped_column(String(128), nullable=True)
    to_config_revision: Mapped[int | None] = mapped_column(Integer, nullable=True)
    actor: Mapped[str] = mapped_column(String(256), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime]


class ConfigRevisionRow(Base):
    __tablename__ = "config_revisions"
    __table_args__ = (UniqueConstraint("model_id", "config", "revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    config: Mapped[str] = mapped_column(String(128))
    revision: Mapped[int] = mapped_column(Integer)
    values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime]
    comment: Mapped[str] = mapped_column(Text, default="")


class ConsumerRow(Base):
    __tablename__ = "consumers"
    __table_args__ = (
        UniqueConstraint("name", "model_id"),
        Index("ix_consumers_model_id", "model_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    alias: Mapped[str | None] = mapped_column(String(128), nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TrustEventRow(Base):
    """One marking of a version as trusted or not: the audit trail of ``versions.trusted``."""

    __tablename__ = "trust_events"
    __table_args__ = (Index("ix_trust_events_model_id_version_id", "model_id", "version", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    trusted: Mapped[bool] = mapped_column(Boolean)
    actor: Mapped[str] = mapped_column(String(256), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime]


class QuarantineEventRow(Base):
    """One quarantine or release of a version: the audit trail of ``versions.quarantined``."""

    __tablename__ = "quarantine_events"
    __table_args__ = (
        Index("ix_quarantine_events_model_id_version_id", "model_id", "version", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(256), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime]


class RegistryStateRow(Base):
    """The single row (id 1) whose ``generation`` every write transaction increments."""

    __tablename__ = "registry_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)


class AuditEventRow(Base):
    """One audit event; ``hash`` chains it to the row before it (see ``registry.audit``)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(256))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(1024))
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)
    origin: Mapped[str] = mapped_column(String(256))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


# --- monitoring (migration 0004) ----------------------------------------------------------


class ObjectiveRow(Base):
    __tablename__ = "objectives"
    __table_args__ = (Index("ix_objectives_model_id_id", "model_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(64))
    comparator: Mapped[str] = mapped_column(String(2))
    threshold: Mapped[float] = mapped_column(Float)
    window_seconds: Mapped[int] = mapped_column(Integer)
    min_samples: Mapped[int] = mapped_column(Integer)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    margin: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(256), default="")


class ObjectiveEvaluationRow(Base):
    __tablename__ = "objective_evaluations"
    __table_args__ = (Index("ix_objective_evaluations_objective_id_id", "objective_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    objective_id: Mapped[int] = mapped_column(ForeignKey("objectives.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    samples: Mapped[int] = mapped_column(BigInteger)
    detail: Mapped[str] = mapped_column(Text, default="")


_OPEN = text("state = 'open'")


class AlertRow(Base):
    """An alert; the partial unique index keeps at most one open per objective and source.

    ``source`` is "" for an objective's alert; others name what raised them (e.g.
    ``signature:<model>/<version>``) and have objective_id 0.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_model_id", "model", "id"),
        Index(
            "uq_alerts_objective_id_open",
            "objective_id",
            "source",
            unique=True,
            sqlite_where=_OPEN,
            postgresql_where=_OPEN,
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(128))
    objective_id: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(128), default="", server_default="")
    state: Mapped[str] = mapped_column(String(16))
    opened_at: Mapped[datetime]
    message: Mapped[str] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_notified_at: Mapped[datetime | None] = mapped_column(nullable=True)


class WebhookRow(Base):
    """A webhook; ``secret`` is kept as given because signing each delivery needs it."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(Text)
    model_id: Mapped[int | None] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), nullable=True
    )
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(256), default="")


class WebhookDeliveryRow(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_alert_id_id", "alert_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(Integer)
    alert_id: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    succeeded: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")


class MonitorSettingsRow(Base):
    """A model's monitoring settings (drift methods, default reference...) as one document."""

    __tablename__ = "monitor_settings"

    model_id: Mapped[int] = mapped_column(
        ForeignKey("models.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]


# --- identity (migration 0006) ------------------------------------------------------------


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(320), default="")
    password_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class TeamRow(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]


class TeamMemberRow(Base):
    __tablename__ = "team_members"
    __table_args__ = (Index("ix_team_members_user_id", "user_id"),)

    team_id: Mapped[int] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )


class GrantRow(Base):
    """A role for a user or a team (exactly one is set) on a model, or everywhere (NULL)."""

    __tablename__ = "grants"
    __table_args__ = (
        Index("ix_grants_user_id", "user_id"),
        Index("ix_grants_team_id", "team_id"),
        Index("ix_grants_model", "model"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    team_id: Mapped[int | None] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), nullable=True
    )
    role: Mapped[str] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(256), default="")


class TokenRow(Base):
    """An API token or web session; only the SHA-256 of its secret is kept."""

    __tablename__ = "tokens"
    __table_args__ = (Index("ix_tokens_user_id", "user_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    models: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    read_only: Mapped[bool] = mapped_column(Boolean, default=False)
    tier: Mapped[str] = mapped_column(String(16), default="bronze")
    rate_limit: Mapped[str] = mapped_column(String(100), default="")
    rows_per_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
