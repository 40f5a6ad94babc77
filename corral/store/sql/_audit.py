"""The audit half of ``SqlRegistryStore``: listing the chained events and reading the chain.

Appending happens in ``SessionBase._transaction``, inside the write it records.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import ColumnElement, func, select
from typing_extensions import override

from corral.registry.audit import AuditQuery
from corral.registry.entities import AuditEvent, Page
from corral.store.sql._base import SessionBase
from corral.store.sql.tables import AuditEventRow

_BATCH = 1000


def _event(row: Any) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        before=row.before,
        after=row.after,
        origin=row.origin,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _prefix(column: Any, value: str) -> ColumnElement[bool]:
    return column.startswith(value, autoescape=True)  # type: ignore[no-any-return]


class AuditMethods(SessionBase):
    @override
    def list_audit(self, query: AuditQuery) -> Page[AuditEvent]:
        conditions: list[ColumnElement[bool]] = []
        if query.actor is not None:
            conditions.append(AuditEventRow.actor == query.actor)
        if query.action:
            conditions.append(_prefix(AuditEventRow.action, query.action))
        if query.target:
            conditions.append(_prefix(AuditEventRow.target, query.target))
        if query.since is not None:
            conditions.append(AuditEventRow.at >= query.since)
        if query.until is not None:
            conditions.append(AuditEventRow.at < query.until)
        table = AuditEventRow.__table__
        with self._reading_rows() as connection:
            total = connection.scalar(select(func.count()).select_from(table).where(*conditions))
            rows = connection.execute(
                select(table)
                .where(*conditions)
                .order_by(AuditEventRow.id.desc())
                .offset(query.offset)
                .limit(query.limit)
            ).all()
        return Page(
            items=[_event(r) for r in rows],
            total=total or 0,
            offset=query.offset,
            limit=query.limit,
        )

    @override
    def audit_chain(self) -> Iterator[AuditEvent]:
        table = AuditEventRow.__table__
        last_id = 0
        while True:
            with self._reading_rows() as connection:
                rows = connection.execute(
                    select(table)
                    .where(AuditEventRow.id > last_id)
                    .order_by(AuditEventRow.id)
                    .limit(_BATCH)
                ).all()
            yield from (_event(r) for r in rows)
            if len(rows) < _BATCH:
                return
            last_id = rows[-1].id
