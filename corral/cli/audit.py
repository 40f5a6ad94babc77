"""Audit commands: list, verify and export the hash-chained audit log."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from corral.cli import _output as o
from corral.errors import InvalidArgument

audit_app = typer.Typer(no_args_is_help=True, help="The audit log: list, verify, export.")

_EXPORT_PAGE = 1000


def _moment(option: str, value: str | None) -> datetime | None:
    """An ISO 8601 date or time; without a zone it is taken as UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidArgument(
            f"{option} {value!r} is not an ISO 8601 date or time (e.g. 2026-11-28T09:00)"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def install(app: typer.Typer, state: Any) -> None:
    """Attach the audit commands to the root app."""

    @audit_app.command("list")
    def audit_list(
        actor: str | None = typer.Option(None, "--actor", help="Only this actor's events."),
        action: str | None = typer.Option(None, "--action", help="Action prefix (alias.set)."),
        target: str | None = typer.Option(None, "--target", help="Target prefix (model:churn)."),
        since: str | None = typer.Option(None, "--since", help="At or after (ISO 8601, UTC)."),
        until: str | None = typer.Option(None, "--until", help="Before (ISO 8601, UTC)."),
        limit: int = typer.Option(100, "--limit", help="At most this many, newest first."),
        as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    ) -> None:
        """List audit events, newest first (--json for their before and after)."""
        page = state.client().list_audit(
            actor=actor,
            action=action,
            target=target,
            since=_moment("--since", since),
            until=_moment("--until", until),
            limit=limit,
        )
        if as_json:
            return o.emit_json(page)
        o.table(
            f"audit events ({len(page.items)} of {page.total})",
            ["id", "at", "actor", "action", "target", "origin"],
            [
                (
                    e.id,
                    e.at.strftime("%Y-%m-%d %H:%M:%S"),
                    e.actor,
                    e.action,
                    e.target,
                    e.origin,
                )
                for e in page.items
            ],
        )

    @audit_app.command("verify")
    def audit_verify(
        as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    ) -> None:
        """Re-hash the audit chain; exit 1 naming the first edited or deleted event."""
        report = state.client().verify_audit()
        if as_json:
            o.emit_json(report)
        elif report.ok:
            o.out.print(f"audit log intact: {report.events_checked} events verified")
        if not report.ok:
            o.err.print(f"error: audit log broken at event {report.bad_event_id}: {report.detail}")
            raise typer.Exit(1)

    @audit_app.command("export")
    def audit_export(
        output: Path | None = typer.Option(
            None, "--output", "-o", help="Write here instead of standard output."
        ),
    ) -> None:
        """Write every audit event, oldest first, as JSON lines (with its hash)."""
        client = state.client()
        total = client.list_audit(limit=1).total
        # Newest-first pages, read from the end so the export runs oldest first.
        offsets = range(max(total - _EXPORT_PAGE, 0), -_EXPORT_PAGE, -_EXPORT_PAGE)
        sink = output.open("w", encoding="utf-8") if output else sys.stdout
        try:
            for offset in offsets:
                page = client.list_audit(offset=max(offset, 0), limit=_EXPORT_PAGE + min(offset, 0))
                for event in reversed(page.items):
                    sink.write(json.dumps(o.jsonable(event), ensure_ascii=False) + "\n")
        finally:
            if output:
                sink.close()
        if output:
            o.err.print(f"wrote {total} audit events to {output}")

    app.add_typer(audit_app, name="audit")
