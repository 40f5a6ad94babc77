"""The quarantine half of ``SqlRegistryStore``: whether a version may be served, and the audit."""

from __future__ import annotations

from datetime import datetime

from typing_extensions import override

from corral.registry.entities import ModelVersion, QuarantineEvent
from corral.store.sql._convert import quarantine_event_from_row
from corral.store.sql._flags import FlagMethods
from corral.store.sql.tables import QuarantineEventRow


class QuarantineMethods(FlagMethods):
    @override
    def set_quarantine(
        self, model: str, number: int, quarantined: bool, actor: str, reason: str, at: datetime
    ) -> ModelVersion:
        return self._set_flag(
            model,
            number,
            "quarantined",
            quarantined,
            lambda model_id: QuarantineEventRow(
                model_id=model_id,
                version=number,
                action="quarantine" if quarantined else "release",
                actor=actor,
                reason=reason,
                at=at,
            ),
        )

    @override
    def quarantine_history(self, model: str, number: int) -> list[QuarantineEvent]:
        return self._flag_history(model, number, QuarantineEventRow, quarantine_event_from_row)
