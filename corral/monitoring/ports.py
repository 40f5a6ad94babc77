"""The storage monitoring needs, as protocols that ``corral.store`` implements."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from corral.monitoring.entities import (
    Alert,
    Delivery,
    Evaluation,
    FeedbackReceipt,
    Objective,
    Webhook,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Bucket = dict[str, Any]  # one time bucket of performance figures (see docs/monitoring.md)


class ColumnSource(Protocol):
    """A table read one column at a time, so a drift report never holds it all."""

    @property
    def rows(self) -> int:
        """How many rows the table has."""
        ...

    def kinds(self) -> dict[str, str]:
        """Each column's kind, in table order: ``numeric``, ``categorical`` or ``other``."""
        ...

    def column(self, name: str) -> npt.NDArray[Any]:
        """One column: float64 with NaN for missing numbers, object (str/None) otherwise."""
        ...

    def type_errors(self, name: str) -> int:
        """How many values of the column did not have the column's type (0 when unknown)."""
        ...


class LogStore(Protocol):
    """Prediction logs and feedback, as Parquet partitioned by model and day."""

    def write_predictions(self, model: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append prediction rows (see ``corral.serving.recorder`` for the columns)."""
        ...

    def write_feedback(self, model: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append feedback rows ``{request_id, row, label_text, label_value, received_at}``."""
        ...

    def known_request_ids(self, model: str, request_ids: Sequence[str]) -> set[str]:
        """Which of ``request_ids`` appear in the model's prediction log."""
        ...

    def buckets(
        self,
        model: str,
        start: datetime,
        end: datetime,
        bucket_seconds: int,
        *,
        version: int | None = None,
    ) -> list[Bucket]:
        """Traffic, errors, latency and realised performance per bucket of ``[start, end)``."""
        ...

    def scores(
        self, model: str, start: datetime, end: datetime, *, version: int | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[Any]]:
        """``(probabilities, timestamps in µs, labels or None)`` of logged classifier rows."""
        ...

    def columns(
        self, model: str, start: datetime, end: datetime, *, version: int | None = None
    ) -> ColumnSource:
        """The logged inputs (and ``prediction``) of a window, for drift."""
        ...


class MonitoringStore(Protocol):
    """Objectives, their evaluations, alerts, webhooks and deliveries (the SQL store)."""

    def create_objective(self, objective: Objective) -> Objective: ...
    def list_objectives(self, model: str | None = None) -> list[Objective]: ...
    def get_objective(self, objective_id: int) -> Objective: ...
    def delete_objective(self, objective_id: int) -> None: ...
    def add_evaluation(self, evaluation: Evaluation) -> None: ...
    def list_evaluations(self, objective_id: int, limit: int = 100) -> list[Evaluation]: ...
    def latest_evaluation(self, objective_id: int) -> Evaluation | None: ...
    def open_alert(self, objective_id: int, source: str = "") -> Alert | None: ...
    def create_alert(self, alert: Alert) -> Alert: ...
    def update_alert(self, alert: Alert) -> Alert: ...
    def list_alerts(
        self, model: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[Alert]: ...
    def get_alert(self, alert_id: int) -> Alert: ...
    def create_webhook(self, webhook: Webhook, secret: str) -> Webhook: ...
    def list_webhooks(self, model: str | None = None) -> list[Webhook]: ...
    def webhook_secret(self, webhook_id: int) -> str: ...
    def delete_webhook(self, webhook_id: int) -> None: ...
    def add_delivery(self, delivery: Delivery) -> Delivery: ...
    def list_deliveries(self, alert_id: int | None = None, limit: int = 100) -> list[Delivery]: ...
    def get_settings(self, model: str) -> dict[str, Any]: ...
    def set_settings(self, model: str, values: Mapping[str, Any]) -> None: ...


class Notifier(Protocol):
    """Sends one signed alert event to one webhook, retrying; returns every attempt."""

    def deliver(
        self, webhook: Webhook, secret: str, alert: Alert, event: str, payload: Mapping[str, Any]
    ) -> Iterator[Delivery]: ...


__all__ = ["Bucket", "ColumnSource", "FeedbackReceipt", "LogStore", "MonitoringStore", "Notifier"]
