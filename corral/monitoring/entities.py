"""Monitoring's plain entities: objectives and their evaluations, alerts, webhooks."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class ObjectiveState(enum.StrEnum):
    """Where an objective stands after its latest evaluation."""

    OK = "ok"
    AT_RISK = "at_risk"  # met, but within the objective's margin of its threshold
    BREACHED = "breached"
    NO_DATA = "no_data"  # fewer samples in the window than the objective's minimum


@dataclass(frozen=True, slots=True)
class Objective:
    """A declarative target: ``metric comparator threshold over window, min samples``."""

    id: int
    model: str
    metric: str
    comparator: str  # one of ">=", ">", "<=", "<"
    threshold: float
    window_seconds: int
    min_samples: int = 1
    version: int | None = None  # None: every version the model served in the window
    margin: float = 0.05  # at_risk when met by less than this share of the threshold
    created_at: datetime | None = None
    created_by: str = ""

    @property
    def expression(self) -> str:
        """The objective as text, e.g. ``accuracy >= 0.9 over 7d, min 500``."""
        from corral.monitoring.windows import format_duration

        threshold = repr(self.threshold).removesuffix(".0")
        text = f"{self.metric} {self.comparator} {threshold} over "
        text += format_duration(self.window_seconds)
        return text + (f", min {self.min_samples}" if self.min_samples > 1 else "")


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One evaluation of one objective."""

    objective_id: int
    at: datetime
    state: ObjectiveState
    value: float | None
    samples: int
    detail: str = ""


class AlertState(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Alert:
    """A breached objective (open until it recovers), or an integrity failure.

    ``source`` is "" for an objective's alert; an integrity alert names what failed, e.g.
    ``signature:<model>/<version>``, and has ``objective_id`` 0. One per objective and
    source is open at a time.
    """

    id: int
    model: str
    objective_id: int
    state: AlertState
    opened_at: datetime
    message: str
    value: float | None = None
    closed_at: datetime | None = None
    last_notified_at: datetime | None = None
    source: str = ""


@dataclass(frozen=True, slots=True)
class Webhook:
    """Where alerts are POSTed; ``model`` None means alerts of every model."""

    id: int
    url: str
    model: str | None = None
    created_at: datetime | None = None
    created_by: str = ""
    has_secret: bool = True


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to deliver one alert event to one webhook."""

    id: int
    webhook_id: int
    alert_id: int
    event: str  # "opened" | "closed" | "test"
    attempt: int
    at: datetime
    succeeded: bool
    status_code: int | None = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class FeedbackReceipt:
    """What a feedback upload did: how many labels were stored and how many matched."""

    received: int
    matched: int
    unknown: int
    unknown_ids: list[str] = field(default_factory=list)  # a sample, at most 20

    def to_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "matched": self.matched,
            "unknown": self.unknown,
            "unknown_ids": list(self.unknown_ids),
        }
