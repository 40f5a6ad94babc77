"""The trust half of ``SqlRegistryStore``: whether a version may run its code, and the audit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from typing_extensions import override

from corral.registry.entities import ModelVersion, TrustEvent
from corral.store.sql._base import SessionBase
from corral.store.sql._convert import trust_event_from_row, version_from_row
from corral.store.sql.tables import TrustEventRow


class TrustMethods(SessionBase):
    @override
    def set_trust(
        self, model: str, number: int, trusted: bool, actor: str, reason: str, at: datetime
    ) -> ModelVersion:
        with self._writing() as session:
            model_id = self._model_id(session, model)
            row = self._version_row(session, model_id, model, number)
            row.trusted = trusted
            session.add(
                TrustEventRow(
                    model_id=model_id,
                    version=number,
                    trusted=trusted,
                    actor=actor,
                    reason=reason,
                    at=at,
                )
            )
            session.flush()
            return version_from_row(row, model)

    @override
    def trust_history(self, model: str, number: int) -> list[TrustEvent]:
        with self._reading() as session:
            rows = session.scalars(
                select(TrustEventRow)
                .where(
                    TrustEventRow.model_id == self._model_id(session, model),
                    TrustEventRow.version == number,
                )
                .order_by(TrustEventRow.id.desc())
            )
            return [trust_event_from_row(row, model) for row in rows]
