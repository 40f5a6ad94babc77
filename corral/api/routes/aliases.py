"""Aliases with their history, deployment configs, consumers and resolution."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from corral.api.deps import actor, registry
from corral.api.encoding import deprecation_headers, json_response
from corral.api.errors import API_ERRORS
from corral.api.schemas import AliasReason, AliasSet, ConfigCreate, ConsumerCreate, ConsumerUpdate
from corral.registry.entities import Alias, ConfigRevision, Consumer, Resolution
from corral.registry.service import RegistryService

router = APIRouter(prefix="/api/v1", responses=API_ERRORS)


@router.get("/models/{name}/aliases", tags=["aliases"])
def list_aliases(name: str, svc: RegistryService = Depends(registry)) -> Response:
    return json_response(svc.list_aliases(name))


@router.get("/models/{name}/aliases/{alias}", tags=["aliases"], response_model=Alias)
def get_alias(name: str, alias: str, svc: RegistryService = Depends(registry)) -> Response:
    return json_response(svc.get_alias(name, alias))


@router.put("/models/{name}/aliases/{alias}", tags=["aliases"], response_model=Alias)
def set_alias(
    name: str,
    alias: str,
    body: AliasSet,
    svc: RegistryService = Depends(registry),
    who: str = Depends(actor),
) -> Response:
    moved = svc.set_alias(
        name,
        alias,
        body.version,
        config=body.config,
        config_revision=body.config_revision,
        reason=body.reason,
        actor=who,
    )
    return json_response(moved)


@router.delete("/models/{name}/aliases/{alias}", status_code=204, tags=["aliases"])
def delete_alias(
    name: str,
    alias: str,
    reason: str = Query(default="", max_length=2000),
    svc: RegistryService = Depends(registry),
    who: str = Depends(actor),
) -> Response:
    svc.delete_alias(name, alias, reason=reason, actor=who)
    return Response(status_code=204)


@router.post("/models/{name}/aliases/{alias}/rollback", tags=["aliases"], response_model=Alias)
def rollback_alias(
    name: str,
    alias: str,
    body: AliasReason | None = None,
    svc: RegistryService = Depends(registry),
    who: str = Depends(actor),
) -> Response:
    reason = body.reason if body else ""
    return json_response(svc.rollback_alias(name, alias, reason=reason, actor=who))


@router.get("/models/{name}/alias-history", tags=["aliases"])
def alias_history(
    name: str,
    alias: str | None = None,
    offset: int = 0,
    limit: int = 100,
    svc: RegistryService = Depends(registry),
) -> Response:
    return json_response(svc.alias_history(name, alias, offset, limit))


@router.get("/models/{name}/resolve/{ref}", tags=["aliases"], response_model=Resolution)
def resolve(name: str, ref: str, svc: RegistryService = Depends(registry)) -> Response:
    found = svc.resolve(name, ref)
    return json_response(found, headers=deprecation_headers(found.deprecation))


@router.get("/models/{name}/configs", tags=["configs"])
def list_configs(
    name: str, config: str | None = None, svc: RegistryService = Depends(registry)
) -> Response:
    return json_response(svc.list_configs(name, config))


@router.post(
    "/models/{name}/configs/{config}",
    status_code=201,
    tags=["configs"],
    response_model=ConfigRevision,
)
def create_config(
    name: str,
    config: str,
    body: ConfigCreate,
    svc: RegistryService = Depends(registry),
    who: str = Depends(actor),
) -> Response:
    revision = svc.create_config(name, config, body.values, comment=body.comment, actor=who)
    return json_response(revision, 201)


@router.get("/models/{name}/configs/{config}", tags=["configs"], response_model=ConfigRevision)
def get_config(
    name: str, config: str, revision: int | None = None, svc: RegistryService = Depends(registry)
) -> Response:
    return json_response(svc.get_config(name, config, revision))


@router.get("/consumers", tags=["consumers"])
def list_consumers(model: str | None = None, svc: RegistryService = Depends(registry)) -> Response:
    return json_response(svc.list_consumers(model))


@router.post(
    "/models/{name}/consumers", status_code=201, tags=["consumers"], response_model=Consumer
)
def create_consumer(
    name: str,
    body: ConsumerCreate,
    svc: RegistryService = Depends(registry),
    who: str = Depends(actor),
) -> Response:
    consumer = svc.create_consumer(
        body.name,
        name,
        version=body.version,
        alias=body.alias,
        description=body.description,
        actor=who,
    )
    return json_response(consumer, 201)


@router.get("/models/{name}/consumers/{consumer}", tags=["consumers"], response_model=Consumer)
def get_consumer(name: str, consumer: str, svc: RegistryService = Depends(registry)) -> Response:
    return json_response(svc.get_consumer(consumer, name))


@router.patch("/models/{name}/consumers/{consumer}", tags=["consumers"], response_model=Consumer)
def update_consumer(
    name: str,
    consumer: str,
    body: ConsumerUpdate,
    svc: RegistryService = Depends(registry),
    who: str = Depends(actor),
) -> Response:
    updated = svc.update_consumer(consumer, name, version=body.version, alias=body.alias, actor=who)
    return json_response(updated)


@router.delete("/models/{name}/consumers/{consumer}", status_code=204, tags=["consumers"])
def delete_consumer(
    name: str, consumer: str, svc: RegistryService = Depends(registry), who: str = Depends(actor)
) -> Response:
    svc.delete_consumer(consumer, name, actor=who)
    return Response(status_code=204)


@router.get(
    "/models/{name}/consumers/{consumer}/resolve", tags=["consumers"], response_model=Resolution
)
def resolve_consumer(
    name: str, consumer: str, svc: RegistryService = Depends(registry)
) -> Response:
    found = svc.resolve_consumer(consumer, name)
    return json_response(found, headers=deprecation_headers(found.deprecation))
