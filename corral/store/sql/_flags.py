"""Version flags with a history (trusted, quarantined): one way to set and list them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import select

from corral.registry.entities import ModelVersion
from corral.store.sql._base import SessionBase
from corral.store.sql._convert import version_from_row

Event = TypeVar("Event")


class FlagMethods(SessionBase):
    def _set_flag(
        self, model: str, number: int, column: str, value: bool, event: Callable[[int], Any]
    ) -> ModelVersion:
        """Set a boolean column of a version and add its history row, in one write.

        ``event`` builds the history row from the model's id.
        """
        with self._writing() as session:
            model_id = self._model_id(session, model)
            row = self._version_row(session, model_id, model, number)
            setattr(row, column, value)
            session.add(event(model_id))
            session.flush()
            return version_from_row(row, model)

    def _flag_history(
        self, model: str, number: int, table: Any, convert: Callable[[Any, str], Event]
    ) -> list[Event]:
        """A version's history rows in ``table``, newest first."""
        with self._reading() as session:
            rows = session.scalars(
                select(table)
                .where(table.model_id == self._model_id(session, model), table.version == number)
                .order_by(table.id.desc())
            )
            return [convert(row, model) for row in rows]
