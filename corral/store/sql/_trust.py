"""The trust half of ``SqlRegistryStore``: whether a version may run its code, and the audit."""

from __future__ import annotations

from datetime import datetime

from typing_extensions import override

from corral.registry.entities import ModelVersion, TrustEvent
from corral.store.sql._convert import trust_event_from_row
from corral.store.sql._flags import FlagMethods
from corral.store.sql.tables import TrustEventRow


class TrustMethods(FlagMethods):
    @override
    def set_trust(
        self, model: str, number: int, trusted: bool, actor: str, reason: str, at: datetime
    ) -> ModelVersion:
        return self._set_flag(
            model,
            number,
            "trusted",
            trusted,
            lambda model_id: TrustEventRow(
                model_id=model_id,
                version=number,
                trusted=trusted,
                actor=actor,
                reason=reason,
                at=at,
            ),
        )

    @override
    def trust_history(self, model: str, number: int) -> list[TrustEvent]:
        return self._flag_history(model, number, TrustEventRow, trust_event_from_row)
