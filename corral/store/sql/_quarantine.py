"""The quarantine half of ``SqlRegistryStore``: whether a version may be served, and the audit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from typing_extensions import override

from corral.registry.entities import ModelVersion, QuarantineEvent
from corral.store.sql._base import SessionBase
from corral.store.sql._convert import quarantine_event_from_row, version_from_row
from corral.store.sql.tables import QuarantineEventRow


class QuarantineMethods(SessionBase):
    @override
    def set_quarantine(
        self, model: str, number: int, quarantined: bool, actor: str, reason: str, at: datetime
    ) -> ModelVersion:
        with self._writing() as session:
            model_id = self._model_id(session, model)
            row = self._version_row(session, model_id, model, number)
            row.quarantined = quarantined
            session.add(
                QuarantineEventRow(
                    model_id=model_id,
                    version=number,
                    action="quarantine" if quarantined else "release",
                    actor=actor,
                    reason=reason,
                    at=at,
                )
            )
            session.flush()
            return version_from_row(row, model)

    @override
    def quarantine_history(self, model: str, number: int) -> list[QuarantineEvent]:
        with self._reading() as session:
            rows = session.scalars(
                select(QuarantineEventRow)
                .where(
                    QuarantineEventRow.model_id == self._model_id(session, model),
                    QuarantineEventRow.version == number,
                )
                .order_by(QuarantineEventRow.id.desc())
            )
            return [quarantine_event_from_row(row, model) for row in rows]
