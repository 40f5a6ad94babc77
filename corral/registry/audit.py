"""The audit log's rules: what an event hashes to, how a chain is checked, what is recorded.

Each event's ``hash`` is the SHA-256 of a canonical JSON of its fields and the previous
event's hash, so editing an event breaks its own hash and deleting or reordering one breaks
the link of the event after it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from corral.registry.codec import jsonable
from corral.registry.entities import Alias, AuditEvent, AuditReport, Consumer, ModelVersion

__all__ = [
    "GENESIS",
    "ORIGIN",
    "AuditDraft",
    "AuditQuery",
    "Recorder",
    "alias_view",
    "consumer_target",
    "consumer_view",
    "event_hash",
    "verify_chain",
    "version_view",
]

#: The ``prev_hash`` of the first event.
GENESIS = "0" * 64

#: Where the current call comes from: "local" in-process, the client's address over HTTP.
ORIGIN: ContextVar[str] = ContextVar("corral_audit_origin", default="local")


@dataclass(frozen=True, slots=True)
class AuditDraft:
    """An event to append: the store chains and numbers it in the write's transaction."""

    at: datetime
    actor: str
    action: str
    target: str
    before: Any = None
    after: Any = None
    origin: str = ""


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters for listing audit events (newest first); every field set must match."""

    actor: str | None = None
    action: str | None = None  # a prefix: "alias" matches "alias.set" and "alias.delete"
    target: str | None = None  # a prefix: "model:churn" matches everything under churn
    since: datetime | None = None
    until: datetime | None = None
    offset: int = 0
    limit: int = 100


def event_hash(event: AuditDraft | AuditEvent, prev_hash: str) -> str:
    """The SHA-256 (hex) of the event's fields and the previous event's hash."""
    canonical = orjson.dumps(
        {
            "at": event.at.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": event.actor,
            "action": event.action,
            "target": event.target,
            "before": event.before,
            "after": event.after,
            "origin": event.origin,
            "prev_hash": prev_hash,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(canonical).hexdigest()


def verify_chain(events: Iterable[AuditEvent]) -> AuditReport:
    """Check every event, oldest first: its hash, then its link to the event before it."""
    previous: AuditEvent | None = None
    checked = 0
    for event in events:
        expected_prev = previous.hash if previous else GENESIS
        if event_hash(event, event.prev_hash) != event.hash:
            return AuditReport(
                ok=False,
                events_checked=checked,
                bad_event_id=event.id,
                problem="hash mismatch",
                detail=f"audit event {event.id} ({event.action} {event.target}) does not match "
                "its hash: it was edited after it was written",
            )
        if event.prev_hash != expected_prev:
            after = f"event {previous.id}" if previous else "the start of the log"
            return AuditReport(
                ok=False,
                events_checked=checked,
                bad_event_id=event.id,
                problem="broken link",
                detail=f"audit event {event.id} ({event.action} {event.target}) does not "
                f"follow {after}: an event between them was deleted, or events were reordered",
            )
        previous = event
        checked += 1
    return AuditReport(ok=True, events_checked=checked)


# -- what the service records --------------------------------------------------------


def version_view(version: ModelVersion) -> dict[str, Any]:
    """What the audit log keeps of a new version: everything but the file list."""
    view: dict[str, Any] = jsonable(version)
    view.pop("files", None)
    view["files"] = len(version.files)
    return view


def alias_view(alias: Alias | None) -> dict[str, Any] | None:
    if alias is None:
        return None
    return {
        "version": alias.version,
        "config": alias.config,
        "config_revision": alias.config_revision,
    }


def consumer_target(consumer: Consumer) -> str:
    return f"model:{consumer.model}/consumer:{consumer.name}"


def consumer_view(consumer: Consumer) -> dict[str, Any]:
    return {"version": consumer.version, "alias": consumer.alias}


class Recorder:
    """Builds audit drafts for one write transaction (see ``RegistryService._audit``)."""

    def __init__(self, drafts: list[AuditDraft], actor: str, clock: Callable[[], datetime]):
        self._drafts = drafts
        self._actor = actor
        self._clock = clock

    def __call__(self, action: str, target: str, before: Any = None, after: Any = None) -> None:
        self._drafts.append(
            AuditDraft(
                at=self._clock(),
                actor=self._actor,
                action=action,
                target=target,
                before=jsonable(before),
                after=jsonable(after),
                origin=ORIGIN.get(),
            )
        )
