"""``MonitoringStore`` on SQLAlchemy: objectives, evaluations, alerts, webhooks, settings.

Short transactions of their own: monitoring writes are not registry writes, so they bump
no registry generation and append no registry audit event.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ColumnElement, Engine, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from typing_extensions import override

from corral.monitoring.alerts import check_webhook_url
from corral.monitoring.entities import (
    Alert,
    AlertState,
    Delivery,
    Evaluation,
    Objective,
    ObjectiveState,
    Webhook,
)
from corral.monitoring.errors import (
    AlertAlreadyOpen,
    AlertNotFound,
    ObjectiveNotFound,
    WebhookNotFound,
)
from corral.monitoring.ports import MonitoringStore
from corral.registry.errors import ModelNotFound
from corral.store.sql.engine import WRITE_OPTION
from corral.store.sql.tables import (
    AlertRow,
    ModelRow,
    MonitorSettingsRow,
    ObjectiveEvaluationRow,
    ObjectiveRow,
    WebhookDeliveryRow,
    WebhookRow,
    utcnow,
)

__all__ = ["SqlMonitoringStore"]

_MAX_LIMIT = 10_000


def _number(value: float | None) -> float | None:
    """NaN as NULL: PostgreSQL would keep it, SQLite would not, and neither means a value."""
    return None if value is None or math.isnan(value) else float(value)


def _limit(limit: int) -> int:
    return max(1, min(int(limit), _MAX_LIMIT))


def _objective(row: ObjectiveRow, model: str) -> Objective:
    return Objective(
        id=row.id,
        model=model,
        metric=row.metric,
        comparator=row.comparator,
        threshold=row.threshold,
        window_seconds=row.window_seconds,
        min_samples=row.min_samples,
        version=row.version,
        margin=row.margin,
        created_at=row.created_at,
        created_by=row.created_by,
    )


def _evaluation(row: ObjectiveEvaluationRow) -> Evaluation:
    return Evaluation(
        objective_id=row.objective_id,
        at=row.at,
        state=ObjectiveState(row.state),
        value=row.value,
        samples=row.samples,
        detail=row.detail,
    )


def _alert(row: AlertRow) -> Alert:
    return Alert(
        id=row.id,
        model=row.model,
        objective_id=row.objective_id,
        state=AlertState(row.state),
        opened_at=row.opened_at,
        message=row.message,
        value=row.value,
        closed_at=row.closed_at,
        last_notified_at=row.last_notified_at,
        source=row.source,
    )


def _webhook(row: WebhookRow, model: str | None) -> Webhook:
    return Webhook(
        id=row.id,
        url=row.url,
        model=model,
        created_at=row.created_at,
        created_by=row.created_by,
        has_secret=bool(row.secret),
    )


def _delivery(row: WebhookDeliveryRow) -> Delivery:
    return Delivery(
        id=row.id,
        webhook_id=row.webhook_id,
        alert_id=row.alert_id,
        event=row.event,
        attempt=row.attempt,
        at=row.at,
        succeeded=row.succeeded,
        status_code=row.status_code,
        error=row.error,
    )


class SqlMonitoringStore(MonitoringStore):
    """Monitoring's SQL tables (migration 0004) on the registry's engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            # This option makes SQLite BEGIN IMMEDIATE (see corral.store.sql.engine).
            session.connection(execution_options={WRITE_OPTION: True})
            yield session

    @staticmethod
    def _model_id(session: Session, model: str) -> int:
        model_id = session.scalar(select(ModelRow.id).where(ModelRow.name == model))
        if model_id is None:
            raise ModelNotFound(model)
        return model_id

    # -- objectives -----------------------------------------------------------------------

    @override
    def create_objective(self, objective: Objective) -> Objective:
        with self._writing() as session:
            row = ObjectiveRow(
                model_id=self._model_id(session, objective.model),
                metric=objective.metric,
                comparator=objective.comparator,
                threshold=objective.threshold,
                window_seconds=objective.window_seconds,
                min_samples=objective.min_samples,
                version=objective.version,
                margin=objective.margin,
                created_at=objective.created_at or utcnow(),
                created_by=objective.created_by,
            )
            session.add(row)
            session.flush()
            return _objective(row, objective.model)

    @override
    def list_objectives(self, model: str | None = None) -> list[Objective]:
        """Every objective, or those of ``model`` (which must exist), oldest first."""
        statement = select(ObjectiveRow, ModelRow.name).join(
            ModelRow, ModelRow.id == ObjectiveRow.model_id
        )
        with self._reading() as session:
            if model is not None:
                statement = statement.where(ObjectiveRow.model_id == self._model_id(session, model))
            rows = session.execute(statement.order_by(ObjectiveRow.id)).all()
            return [_objective(row, name) for row, name in rows]

    @override
    def get_objective(self, objective_id: int) -> Objective:
        with self._reading() as session:
            found = session.execute(
                select(ObjectiveRow, ModelRow.name)
                .join(ModelRow, ModelRow.id == ObjectiveRow.model_id)
                .where(ObjectiveRow.id == objective_id)
            ).one_or_none()
            if found is None:
                raise ObjectiveNotFound(objective_id)
            return _objective(found[0], found[1])

    @override
    def delete_objective(self, objective_id: int) -> None:
        """Delete an objective and its evaluations; close its open alert (kept as history)."""
        with self._writing() as session:
            row = session.get(ObjectiveRow, objective_id)
            if row is None:
                raise ObjectiveNotFound(objective_id)
            now = utcnow()
            for alert in session.scalars(
                select(AlertRow).where(
                    AlertRow.objective_id == objective_id, AlertRow.state == AlertState.OPEN
                )
            ):
                alert.state = AlertState.CLOSED
                alert.closed_at = now
            # Not left to ON DELETE CASCADE: SQLite applies it only on connections that
            # turned foreign keys on (make_engine's do, an engine made elsewhere may not).
            session.execute(
                delete(ObjectiveEvaluationRow).where(
                    ObjectiveEvaluationRow.objective_id == objective_id
                )
            )
            session.delete(row)

    # -- evaluations ----------------------------------------------------------------------

    @override
    def add_evaluation(self, evaluation: Evaluation) -> None:
        with self._writing() as session:
            if session.get(ObjectiveRow, evaluation.objective_id) is None:
                raise ObjectiveNotFound(evaluation.objective_id)
            session.add(
                ObjectiveEvaluationRow(
                    objective_id=evaluation.objective_id,
                    at=evaluation.at,
                    state=str(evaluation.state),
                    value=_number(evaluation.value),
                    samples=evaluation.samples,
                    detail=evaluation.detail,
                )
            )

    @override
    def list_evaluations(self, objective_id: int, limit: int = 100) -> list[Evaluation]:
        """The objective's latest evaluations, newest first."""
        with self._reading() as session:
            if session.get(ObjectiveRow, objective_id) is None:
                raise ObjectiveNotFound(objective_id)
            rows = session.scalars(
                select(ObjectiveEvaluationRow)
                .where(ObjectiveEvaluationRow.objective_id == objective_id)
                .order_by(ObjectiveEvaluationRow.id.desc())
                .limit(_limit(limit))
            ).all()
            return [_evaluation(r) for r in rows]

    @override
    def latest_evaluation(self, objective_id: int) -> Evaluation | None:
        with self._reading() as session:
            row = session.scalars(
                select(ObjectiveEvaluationRow)
                .where(ObjectiveEvaluationRow.objective_id == objective_id)
                .order_by(ObjectiveEvaluationRow.id.desc())
                .limit(1)
            ).first()
            return _evaluation(row) if row is not None else None

    # -- alerts ---------------------------------------------------------------------------

    @override
    def open_alert(self, objective_id: int, source: str = "") -> Alert | None:
        with self._reading() as session:
            row = session.scalars(
                select(AlertRow).where(
                    AlertRow.objective_id == objective_id,
                    AlertRow.source == source,
                    AlertRow.state == AlertState.OPEN,
                )
            ).one_or_none()
            return _alert(row) if row is not None else None

    @override
    def create_alert(self, alert: Alert) -> Alert:
        """Store a new alert; ``AlertAlreadyOpen`` if it is open and its objective (and
        source) has one."""
        row = AlertRow(
            model=alert.model,
            objective_id=alert.objective_id,
            source=alert.source,
            state=str(alert.state),
            opened_at=alert.opened_at,
            message=alert.message,
            value=_number(alert.value),
            closed_at=alert.closed_at,
            last_notified_at=alert.last_notified_at,
        )
        try:
            with self._writing() as session:
                session.add(row)
                session.flush()
                return _alert(row)
        except IntegrityError as exc:
            raise AlertAlreadyOpen(alert.objective_id, alert.source) from exc

    @override
    def update_alert(self, alert: Alert) -> Alert:
        """Write an alert's state, value, message and times (model, objective, source stay)."""
        try:
            with self._writing() as session:
                row = session.get(AlertRow, alert.id)
                if row is None:
                    raise AlertNotFound(alert.id)
                row.state = str(alert.state)
                row.message = alert.message
                row.value = _number(alert.value)
                row.closed_at = alert.closed_at
                row.last_notified_at = alert.last_notified_at
                session.flush()
                return _alert(row)
        except IntegrityError as exc:  # re-opening an alert while a newer one is open
            raise AlertAlreadyOpen(alert.objective_id, alert.source) from exc

    @override
    def list_alerts(
        self, model: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[Alert]:
        """Alerts, newest first; of a model by name (also one deleted since), in a state."""
        conditions: list[ColumnElement[bool]] = []
        if model is not None:
            conditions.append(AlertRow.model == model)
        if state is not None:
            conditions.append(AlertRow.state == AlertState(state))
        with self._reading() as session:
            rows = session.scalars(
                select(AlertRow)
                .where(*conditions)
                .order_by(AlertRow.id.desc())
                .limit(_limit(limit))
            ).all()
            return [_alert(r) for r in rows]

    @override
    def get_alert(self, alert_id: int) -> Alert:
        with self._reading() as session:
            row = session.get(AlertRow, alert_id)
            if row is None:
                raise AlertNotFound(alert_id)
            return _alert(row)

    # -- webhooks and deliveries ----------------------------------------------------------

    @override
    def create_webhook(self, webhook: Webhook, secret: str) -> Webhook:
        """Store a webhook with its signing secret, kept as given (signing needs it back)."""
        url = check_webhook_url(webhook.url)
        with self._writing() as session:
            model_id = None
            if webhook.model is not None:
                model_id = self._model_id(session, webhook.model)
            row = WebhookRow(
                url=url,
                secret=secret,
                model_id=model_id,
                created_at=webhook.created_at or utcnow(),
                created_by=webhook.created_by,
            )
            session.add(row)
            session.flush()
            return _webhook(row, webhook.model)

    @override
    def list_webhooks(self, model: str | None = None) -> list[Webhook]:
        """Every webhook, or those that hear of ``model``'s alerts (its own and global ones)."""
        statement = select(WebhookRow, ModelRow.name).outerjoin(
            ModelRow, ModelRow.id == WebhookRow.model_id
        )
        with self._reading() as session:
            if model is not None:
                model_id = self._model_id(session, model)
                statement = statement.where(
                    or_(WebhookRow.model_id.is_(None), WebhookRow.model_id == model_id)
                )
            rows = session.execute(statement.order_by(WebhookRow.id)).all()
            return [_webhook(row, name) for row, name in rows]

    @override
    def webhook_secret(self, webhook_id: int) -> str:
        with self._reading() as session:
            secret = session.scalar(select(WebhookRow.secret).where(WebhookRow.id == webhook_id))
            if secret is None:
                raise WebhookNotFound(webhook_id)
            return secret

    @override
    def delete_webhook(self, webhook_id: int) -> None:
        """Delete a webhook; its deliveries stay, as history."""
        with self._writing() as session:
            row = session.get(WebhookRow, webhook_id)
            if row is None:
                raise WebhookNotFound(webhook_id)
            session.delete(row)

    @override
    def add_delivery(self, delivery: Delivery) -> Delivery:
        with self._writing() as session:
            row = WebhookDeliveryRow(
                webhook_id=delivery.webhook_id,
                alert_id=delivery.alert_id,
                event=delivery.event,
                attempt=delivery.attempt,
                at=delivery.at,
                succeeded=delivery.succeeded,
                status_code=delivery.status_code,
                error=delivery.error,
            )
            session.add(row)
            session.flush()
            return _delivery(row)

    @override
    def list_deliveries(self, alert_id: int | None = None, limit: int = 100) -> list[Delivery]:
        """Delivery attempts, newest first; of one alert when ``alert_id`` is given."""
        statement = select(WebhookDeliveryRow)
        if alert_id is not None:
            statement = statement.where(WebhookDeliveryRow.alert_id == alert_id)
        with self._reading() as session:
            rows = session.scalars(
                statement.order_by(WebhookDeliveryRow.id.desc()).limit(_limit(limit))
            ).all()
            return [_delivery(r) for r in rows]

    # -- settings -------------------------------------------------------------------------

    @override
    def get_settings(self, model: str) -> dict[str, Any]:
        """The model's monitoring settings; ``{}`` until some are set."""
        with self._reading() as session:
            model_id = self._model_id(session, model)
            values = session.scalar(
                select(MonitorSettingsRow.values).where(MonitorSettingsRow.model_id == model_id)
            )
            return dict(values) if values is not None else {}

    @override
    def set_settings(self, model: str, values: Mapping[str, Any]) -> None:
        """Replace the model's monitoring settings with ``values`` (a JSON object)."""
        with self._writing() as session:
            model_id = self._model_id(session, model)
            row = session.get(MonitorSettingsRow, model_id)
            if row is None:
                session.add(
                    MonitorSettingsRow(model_id=model_id, values=dict(values), updated_at=utcnow())
                )
            else:
                row.values = dict(values)
                row.updated_at = utcnow()
