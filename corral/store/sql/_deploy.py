"""The deployment half of ``SqlRegistryStore``: aliases and their history, configs, consumers."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from typing_extensions import override

from corral.registry.entities import (
    Alias,
    AliasAction,
    AliasEvent,
    ConfigRevision,
    Consumer,
    Page,
)
from corral.registry.errors import (
    AliasMoved,
    AliasNotFound,
    ConfigNotFound,
    ConsumerAlreadyExists,
    ConsumerNotFound,
)
from corral.store.sql._base import SessionBase
from corral.store.sql._convert import (
    alias_event_from_row,
    alias_from_row,
    config_revision_from_row,
    consumer_from_row,
)
from corral.store.sql.tables import (
    AliasEventRow,
    AliasRow,
    ConfigRevisionRow,
    ConsumerRow,
    ModelRow,
    utcnow,
)


class DeploymentMethods(SessionBase):
    @override
    def find_alias(self, model: str, alias: str) -> Alias | None:
        with self._reading_rows() as connection:
            row = connection.execute(
                select(AliasRow.__table__).where(
                    AliasRow.model_id == self._model_id(connection, model), AliasRow.name == alias
                )
            ).one_or_none()
            return None if row is None else alias_from_row(row, model)

    @override
    def list_aliases(self, model: str) -> list[Alias]:
        with self._reading() as session:
            rows = session.scalars(
                select(AliasRow)
                .where(AliasRow.model_id == self._model_id(session, model))
                .order_by(AliasRow.name)
            )
            return [alias_from_row(row, model) for row in rows]

    @override
    def move_alias(
        self,
        model: str,
        alias: str,
        target: Alias | None,
        action: AliasAction,
        actor: str,
        reason: str,
        expected_version: int | None,
    ) -> AliasEvent:
        now = utcnow()
        with self._writing() as session:
            # Locking the model serialises movers on PostgreSQL (SQLite: BEGIN IMMEDIATE), so
            # the compare below and the write after it cannot interleave with another move.
            model_id = self._model_row(session, model, lock=True).id
            row = _alias_row(session, model_id, alias)
            current = None if row is None else row.version
            if current != expected_version:
                raise AliasMoved(model, alias)
            if target is None and row is None:
                raise AliasNotFound(model, alias)
            if target is not None:
                self._version_row(session, model_id, model, target.version)
                if target.config is not None:
                    _check_config(session, model_id, model, target.config, target.config_revision)
            event = AliasEventRow(
                model_id=model_id,
                alias=alias,
                action=action.value,
                from_version=current,
                to_version=None if target is None else target.version,
                from_config=None if row is None else row.config,
                from_config_revision=None if row is None else row.config_revision,
                to_config=None if target is None else target.config,
                to_config_revision=None if target is None else target.config_revision,
                actor=actor,
                reason=reason,
                at=now,
            )
            if target is None:
                session.delete(row)
            else:
                if row is None:
                    row = AliasRow(model_id=model_id, name=alias)
                    session.add(row)
                row.version = target.version
                row.config = target.config
                row.config_revision = target.config_revision
                row.updated_by = actor
                row.updated_at = now
            session.add(event)
            session.flush()
            return alias_event_from_row(event, model)

    @override
    def alias_history(
        self, model: str, alias: str | None, offset: int, limit: int
    ) -> Page[AliasEvent]:
        with self._reading() as session:
            conditions = [AliasEventRow.model_id == self._model_id(session, model)]
            if alias is not None:
                conditions.append(AliasEventRow.alias == alias)
            total = session.scalar(
                select(func.count()).select_from(AliasEventRow).where(*conditions)
            )
            rows = session.scalars(
                select(AliasEventRow)
                .where(*conditions)
                .order_by(AliasEventRow.id.desc())
                .offset(offset)
                .limit(limit)
            )
            items = [alias_event_from_row(row, model) for row in rows]
        return Page(items=items, total=total or 0, offset=offset, limit=limit)

    @override
    def create_config_revision(self, revision: ConfigRevision) -> ConfigRevision:
        with self._writing() as session:
            # The model lock makes "latest + 1" safe against concurrent writers on PostgreSQL.
            model_id = self._model_row(session, revision.model, lock=True).id
            latest = session.scalar(
                select(func.max(ConfigRevisionRow.revision)).where(
                    ConfigRevisionRow.model_id == model_id,
                    ConfigRevisionRow.config == revision.config,
                )
            )
            row = ConfigRevisionRow(
                model_id=model_id,
                config=revision.config,
                revision=(latest or 0) + 1,
                values=dict(revision.values),
                created_by=revision.created_by,
                created_at=revision.created_at or utcnow(),
                comment=revision.comment,
            )
            session.add(row)
            session.flush()
            return config_revision_from_row(row, revision.model)

    @override
    def find_config_revision(
        self, model: str, config: str, revision: int | None
    ) -> ConfigRevision | None:
        with self._reading() as session:
            row = _config_row(session, self._model_id(session, model), config, revision)
            return None if row is None else config_revision_from_row(row, model)

    @override
    def list_config_revisions(self, model: str, config: str | None) -> list[ConfigRevision]:
        with self._reading() as session:
            conditions = [ConfigRevisionRow.model_id == self._model_id(session, model)]
            if config is not None:
                conditions.append(ConfigRevisionRow.config == config)
            rows = session.scalars(
                select(ConfigRevisionRow)
                .where(*conditions)
                .order_by(ConfigRevisionRow.config, ConfigRevisionRow.revision)
            )
            return [config_revision_from_row(row, model) for row in rows]

    @override
    def create_consumer(self, consumer: Consumer) -> Consumer:
        now = utcnow()
        try:
            with self._writing() as session:
                model_id = self._model_id(session, consumer.model)
                if consumer.version is not None:
                    self._version_row(session, model_id, consumer.model, consumer.version)
                row = ConsumerRow(
                    name=consumer.name,
                    model_id=model_id,
                    version=consumer.version,
                    alias=consumer.alias,
                    description=consumer.description,
                    created_by=consumer.created_by,
                    created_at=consumer.created_at or now,
                    updated_at=now,
                )
                session.add(row)
                session.flush()
                return consumer_from_row(row, consumer.model)
        except IntegrityError as exc:
            raise ConsumerAlreadyExists(consumer.name, consumer.model) from exc

    @override
    def update_consumer(self, consumer: Consumer) -> Consumer:
        with self._writing() as session:
            model_id = self._model_id(session, consumer.model)
            row = _consumer_row(session, model_id, consumer.name)
            if row is None:
                raise ConsumerNotFound(consumer.name, consumer.model)
            if consumer.version is not None:
                self._version_row(session, model_id, consumer.model, consumer.version)
            row.version = consumer.version
            row.alias = consumer.alias
            row.description = consumer.description
            row.updated_at = utcnow()
            session.flush()
            return consumer_from_row(row, consumer.model)

    @override
    def find_consumer(self, name: str, model: str) -> Consumer | None:
        with self._reading() as session:
            row = _consumer_row(session, self._model_id(session, model), name)
            return None if row is None else consumer_from_row(row, model)

    @override
    def list_consumers(self, model: str | None) -> list[Consumer]:
        with self._reading() as session:
            statement = select(ConsumerRow, ModelRow.name).join(ModelRow)
            if model is not None:
                statement = statement.where(ConsumerRow.model_id == self._model_id(session, model))
            rows = session.execute(statement.order_by(ModelRow.name, ConsumerRow.name)).all()
            return [consumer_from_row(row, model_name) for row, model_name in rows]

    @override
    def delete_consumer(self, name: str, model: str) -> None:
        with self._writing() as session:
            row = _consumer_row(session, self._model_id(session, model), name)
            if row is None:
                raise ConsumerNotFound(name, model)
            session.delete(row)


def _alias_row(session: Session, model_id: int, alias: str) -> AliasRow | None:
    return session.scalars(
        select(AliasRow).where(AliasRow.model_id == model_id, AliasRow.name == alias)
    ).one_or_none()


def _config_row(
    session: Session, model_id: int, config: str, revision: int | None
) -> ConfigRevisionRow | None:
    statement = select(ConfigRevisionRow).where(
        ConfigRevisionRow.model_id == model_id, ConfigRevisionRow.config == config
    )
    if revision is not None:
        statement = statement.where(ConfigRevisionRow.revision == revision)
    return session.scalars(
        statement.order_by(ConfigRevisionRow.revision.desc()).limit(1)
    ).one_or_none()


def _check_config(
    session: Session, model_id: int, model: str, config: str, revision: int | None
) -> None:
    if _config_row(session, model_id, config, revision) is None:
        raise ConfigNotFound(model, config, revision)


def _consumer_row(session: Session, model_id: int, name: str) -> ConsumerRow | None:
    return session.scalars(
        select(ConsumerRow).where(ConsumerRow.model_id == model_id, ConsumerRow.name == name)
    ).one_or_none()
