"""The alert lifecycle: a breach opens an alert, later breaches update it, recovery closes it.

At most one alert per objective is open (the store enforces it), so repeated breaches are
deduplicated; while it stays open, webhooks hear of it again only once per cooldown. Every
delivery attempt is stored. Pure rules over a ``MonitoringStore`` and a ``Notifier``.

Integrity alerts (a version whose signature failed) follow the same rules with a ``source``
instead of an objective: one open per source, until an admin closes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from corral.errors import InvalidArgument
from corral.monitoring.entities import Alert, AlertState, Evaluation, Objective, ObjectiveState
from corral.monitoring.errors import AlertAlreadyOpen
from corral.monitoring.ports import MonitoringStore, Notifier
from corral.monitoring.windows import format_duration, utcnow

__all__ = [
    "EVENTS",
    "MIN_SECRET_LENGTH",
    "AlertKeeper",
    "alert_payload",
    "check_webhook_secret",
    "check_webhook_url",
]

#: What a webhook can be told about an alert.
EVENTS = ("opened", "reminder", "closed", "test")
MIN_SECRET_LENGTH = 16


def check_webhook_url(url: str) -> str:
    """``url`` if alerts may be POSTed to it: http or https, with a host.

    Which hosts may be reached is the outbound URL policy's to say (corral.security.urls),
    which the wiring gives the service and the notifier.
    """
    parts = urlsplit(url.strip()) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https"):
        raise InvalidArgument(f"webhook URL {url!r} must start with http:// or https://")
    if not parts.hostname or any(c.isspace() for c in url.strip()):
        raise InvalidArgument(f"webhook URL {url!r} needs a host, e.g. https://hooks.example/x")
    return url.strip()


def check_webhook_secret(secret: str) -> str:
    """``secret`` if it is long enough to sign with (receivers verify with the same one)."""
    if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
        raise InvalidArgument(
            f"a webhook secret needs at least {MIN_SECRET_LENGTH} characters; "
            "generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return secret


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def alert_payload(
    alert: Alert, objective: Objective | None, evaluation: Evaluation | None = None
) -> dict[str, Any]:
    """What a webhook receives about an alert (the notifier adds ``event`` and ``sent_at``).

    ``objective`` is None for an integrity alert (its ``source`` says what failed).
    """
    return {
        "model": alert.model,
        "alert": {
            "id": alert.id,
            "state": str(alert.state),
            "source": alert.source,
            "message": alert.message,
            "value": alert.value,
            "opened_at": _when(alert.opened_at),
            "closed_at": _when(alert.closed_at),
        },
        "objective": None
        if objective is None
        else {
            "id": objective.id,
            "expression": objective.expression,
            "metric": objective.metric,
            "comparator": objective.comparator,
            "threshold": objective.threshold,
            "window": format_duration(objective.window_seconds),
            "min_samples": objective.min_samples,
            "version": objective.version,
        },
        "evaluation": None
        if evaluation is None
        else {
            "at": _when(evaluation.at),
            "state": str(evaluation.state),
            "value": evaluation.value,
            "samples": evaluation.samples,
        },
    }


def _message(objective: Objective, evaluation: Evaluation) -> str:
    value = "no value" if evaluation.value is None else f"{evaluation.value:g}"
    return (
        f"{objective.metric} of '{objective.model}' is {value} over "
        f"{evaluation.samples} samples, breaching '{objective.expression}'"
    )


class AlertKeeper:
    """Opens, reminds of and closes the alerts of objectives as their evaluations come in,
    and the integrity alerts raised by ``signal``."""

    def __init__(
        self,
        store: MonitoringStore,
        notifier: Notifier,
        *,
        cooldown_seconds: float = 3600.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.cooldown = timedelta(seconds=cooldown_seconds)
        self.clock = clock

    def observe(self, objective: Objective, evaluation: Evaluation) -> Alert | None:
        """Apply one evaluation; return the alert it opened, updated or closed, if any.

        Breached without an open alert: open one and notify ``opened``. Breached with one:
        update its value, notify ``reminder`` once the cooldown since the last notice has
        passed. ``ok`` or ``at_risk`` with one: close it and notify ``closed``. ``no_data``
        changes nothing (missing data neither proves a breach nor a recovery).
        """
        if evaluation.state == ObjectiveState.NO_DATA:
            return None
        current = self.store.open_alert(objective.id)
        now = self.clock()
        if evaluation.state == ObjectiveState.BREACHED:
            if current is None:
                return self._open(objective, evaluation, now)
            return self._update(current, objective, evaluation, now)
        if current is None:
            return None
        closed = self.store.update_alert(
            replace(current, state=AlertState.CLOSED, closed_at=now, last_notified_at=now)
        )
        self._notify(closed, objective, evaluation, "closed")
        return closed

    def _open(self, objective: Objective, evaluation: Evaluation, now: datetime) -> Alert:
        draft = Alert(
            id=0,
            model=objective.model,
            objective_id=objective.id,
            state=AlertState.OPEN,
            opened_at=now,
            message=_message(objective, evaluation),
            value=evaluation.value,
            last_notified_at=now,
        )
        try:
            alert = self.store.create_alert(draft)
        except AlertAlreadyOpen:
            # Another evaluator opened (and announced) it a moment ago: treat this breach
            # as a repeat of that one.
            current = self.store.open_alert(objective.id)
            if current is None:  # and closed it meanwhile: this breach is news again
                return self._open(objective, evaluation, now)
            return self._update(current, objective, evaluation, now)
        self._notify(alert, objective, evaluation, "opened")
        return alert

    def _update(
        self, current: Alert, objective: Objective, evaluation: Evaluation, now: datetime
    ) -> Alert:
        last = current.last_notified_at or current.opened_at
        due = now - last >= self.cooldown
        alert = self.store.update_alert(
            replace(
                current,
                value=evaluation.value,
                message=_message(objective, evaluation),
                last_notified_at=now if due else current.last_notified_at,
            )
        )
        if due:
            self._notify(alert, objective, evaluation, "reminder")
        return alert

    def signal(self, model: str, source: str, message: str) -> Alert:
        """Open the alert of ``source`` (an integrity failure of ``model``), or update it.

        Opening notifies ``opened``; a repeat updates the message and notifies ``reminder``
        once the cooldown since the last notice has passed. No evaluation ever closes it.
        """
        now = self.clock()
        current = self.store.open_alert(0, source)
        if current is None:
            draft = Alert(
                id=0,
                model=model,
                objective_id=0,
                source=source,
                state=AlertState.OPEN,
                opened_at=now,
                message=message,
                last_notified_at=now,
            )
            try:
                alert = self.store.create_alert(draft)
            except AlertAlreadyOpen:  # another process opened (and announced) it just now
                current = self.store.open_alert(0, source)
                if current is None:
                    return self.signal(model, source, message)
            else:
                self._notify(alert, None, None, "opened")
                return alert
        last = current.last_notified_at or current.opened_at
        due = now - last >= self.cooldown
        alert = self.store.update_alert(
            replace(
                current,
                message=message,
                last_notified_at=now if due else current.last_notified_at,
            )
        )
        if due:
            self._notify(alert, None, None, "reminder")
        return alert

    def close(self, alert: Alert, objective: Objective | None = None) -> Alert:
        """Close an open alert by hand and notify ``closed`` (a closed one is returned as is)."""
        if alert.state == AlertState.CLOSED:
            return alert
        now = self.clock()
        closed = self.store.update_alert(
            replace(alert, state=AlertState.CLOSED, closed_at=now, last_notified_at=now)
        )
        self._notify(closed, objective, None, "closed")
        return closed

    def _notify(
        self,
        alert: Alert,
        objective: Objective | None,
        evaluation: Evaluation | None,
        event: str,
    ) -> None:
        """Deliver ``event`` to every webhook of the alert's model (or of every model)."""
        payload: Mapping[str, Any] = alert_payload(alert, objective, evaluation)
        for webhook in self.store.list_webhooks(alert.model):
            if webhook.model not in (None, alert.model):
                continue
            secret = self.store.webhook_secret(webhook.id)
            for delivery in self.notifier.deliver(webhook, secret, alert, event, payload):
                self.store.add_delivery(delivery)
