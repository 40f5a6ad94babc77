"""The audit log: list and filter its events, and verify its hash chain."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from corral.api.deps import registry
from corral.api.encoding import json_response
from corral.api.errors import API_ERRORS
from corral.registry.entities import AuditReport
from corral.registry.service import RegistryService

router = APIRouter(prefix="/api/v1", responses=API_ERRORS)


@router.get("/audit", tags=["audit"])
def list_audit(
    actor: str | None = Query(default=None, max_length=256, description="exactly this actor"),
    action: str | None = Query(default=None, max_length=64, description="action prefix"),
    target: str | None = Query(default=None, max_length=1024, description="target prefix"),
    since: datetime | None = Query(default=None, description="at or after (ISO 8601, zoned)"),
    until: datetime | None = Query(default=None, description="before (ISO 8601, zoned)"),
    offset: int = 0,
    limit: int = 100,
    svc: RegistryService = Depends(registry),
) -> Response:
    page = svc.list_audit(
        actor=actor,
        action=action,
        target=target,
        since=since,
        until=until,
        offset=offset,
        limit=limit,
    )
    return json_response(page)


@router.get("/audit/verify", tags=["audit"], response_model=AuditReport)
def verify_audit(svc: RegistryService = Depends(registry)) -> Response:
    return json_response(svc.verify_audit())
