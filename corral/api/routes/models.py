"""Models, uploads and versions."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from corral.api.deps import actor, parse_tags, registry
from corral.api.encoding import deprecation_headers, json_response
from corral.api.errors import API_ERRORS
from corral.api.schemas import (
    DeprecationCreate,
    GcRequest,
    ModelCreate,
    ModelUpdate,
    QuarantineRead,
    QuarantineSet,
    TrustRead,
    TrustSet,
    UploadRead,
    VersionCreate,
)
from corral.registry.entities import FileEntry, Model, ModelVersion, VerifyReport
from corral.registry.ports import GcReport
from corral.registry.service import RegistryService
from corral.serving.errors import TooLarge

router = APIRouter(prefix="/api/v1", responses=API_ERRORS)
_CHUNK = 1 << 20


@router.get("/health", tags=["server"])
def health() -> dict[str, str]:
    from corral._version import __version__

    return {"status": "ok", "version": __version__}


@router.get("/models", tags=["models"])
def list_models(
    q: str | None = Query(
        default=None, max_length=200, description="substring of name/description"
    ),
    tag: list[str] | None = Query(default=None, description="key=value, repeatable"),
    offset: int = 0,
    limit: int = 100,
    svc: RegistryService = Depends(registry),
) -> Response:
    return json_response(svc.list_models(q, parse_tags(tag), offset, limit))


@router.post("/models", status_code=201, tags=["models"], response_model=Model)
def create_model(
    body: ModelCreate, svc: RegistryService = Depends(registry), who: str = Depends(actor)
) -> Response:
    model = svc.create_model(**body.model_dump(), actor=who)
    return json_response(model, 201)


@router.get("/models/{name}", tags=["models"], response_model=Model)
def get_model(name: str, svc: RegistryService = Depends(registry)) -> Response:
    return json_response(svc.get_model(name))


@router.patch("/models/{name}", tags=["models"], response_model=Model)
def update_model(
    name: str,
    body: ModelUpdate,
    svc: RegistryService = Depends(registry),
    who: str = Depends(actor),
) -> Response:
    return json_response(svc.update_model(name, actor=who, **body.model_dump()))


@router.delete("/models/{name}", status_code=204, tags=["models"])
def delete_model(
    name: str, svc: RegistryService = Depends(registry), who: str = Depends(actor)
) -> Response:
    svc.delete_model(name, actor=who)
    return Response(status_code=204)


@router.post("/uploads", status_code=201, tags=["versions"], response_model=UploadRead)
def begin_upload(svc: RegistryService = Depends(registry)) -> Response:
    return json_response({"upload_id": svc.begin_upload()}, 201)


@router.put("/uploads/{upload_id}/files/{path:path}", tags=["versions"], response_model=FileEntry)
async def upload_file(
    upload_id: str, path: str, request: Request, svc: RegistryService = Depends(registry)
) -> Response:
    """Stream one file's bytes (the raw request body) into an upload."""
    limit, declared = svc.max_upload_bytes, request.headers.get("content-length", "")
    over = f"file '{path}' is over the limit of {limit} bytes (max_upload_bytes)"
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(over)  # 413 before a byte is stored
    writer = await run_in_threadpool(svc.open_upload_file, upload_id, path)
    buffer = bytearray()
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge(over)
            buffer += chunk
            if len(buffer) >= _CHUNK:
                await run_in_threadpool(writer.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await run_in_threadpool(writer.write, bytes(buffer))
    except BaseException:
        await run_in_threadpool(writer.abort)
        raise
    entry = await run_in_threadpool(writer.close)
    return json_response(entry, 201)


@router.delete("/uploads/{upload_id}", status_code=204, tags=["versions"])
def discard_upload(upload_id: str, svc: RegistryService = Depends(registry)) -> Response:
    svc.discard_upload(upload_id)
    return Response(status_code=204)


@router.post(
    "/models/{name}/versions", status_code=201, tags=["versions"], response_model=ModelVersion
)
def create_version(
    name: str,
    body: VersionCreate,
    svc: RegistryService = Depends(registry),
    who: str = Depends(actor),
) -> Response:
    fields = body.model_dump(exclude={"upload_id", "signature"})
    version = svc.create_version(
        name, body.upload_id, signature=body.signature, actor=who, **fields
    )
    return json_response(version, 201)


@router.get("/models/{name}/versions", tags=["versions"])
def list_versions(
    name: str, offset: int = 0, limit: int = 100, svc: RegistryService = Depends(registry)
) -> Response:
    return json_response(svc.list_versions(name, offset, limit))


@router.get("/versions", tags=["versions"])
def search_versions(
    model: str | None = Query(default=None, max_length=200, description="exact model name"),
    name: str | None = Query(default=None, max_length=200, description="model name substring"),
    tag: list[str] | None = Query(default=None, description="key=value, repeatable"),
    status: str | None = None,
    offset: int = 0,
    limit: int = 100,
    svc: RegistryService = Depends(registry),
) -> Response:
    page = svc.search_versions(
        model=model,
        name_contains=name,
        tags=parse_tags(tag),
        status=status,
        offset=offset,
        limit=limit,
    )
    return json_response(page)


@router.get("/models/{name}/versions/{ref}", tags=["versions"], response_model=ModelVersion)
def get_version(name: str, ref: str, svc: RegistryService = Depends(registry)) -> Response:
    version = svc.get_version(name, ref)
    return json_response(version, headers=deprecation_headers(version.deprecation))


@router.post(
    "/models/{name}/versions/{ref}/deprecation", tags=["versions"], response_model=ModelVersion
)
def deprecate_version(
    name: str,
    ref: str,
    body: DeprecationCreate,
    svc: RegistryService = Depends(registry),
    who: str = Depends(actor),
) -> Response:
    version = svc.deprecate_version(name, ref, body.message, actor=who)
    return json_response(version, headers=deprecation_headers(version.deprecation))


@router.delete(
    "/models/{name}/versions/{ref}/deprecation", tags=["versions"], response_model=ModelVersion
)
def undeprecate_version(
    name: str, ref: str, svc: RegistryService = Depends(registry), who: str = Depends(actor)
) -> Response:
    return json_response(svc.undeprecate_version(name, ref, actor=who))


@router.put("/models/{name}/versions/{ref}/trust", tags=["versions"], response_model=ModelVersion)
def trust_version(
    name: str,
    ref: str,
    body: TrustSet,
    svc: RegistryService = Depends(registry),
    who: str = Depends(actor),
) -> Response:
    """Mark a version trusted (a reason is required) or untrusted; the marking is audited."""
    version = svc.trust_version(name, ref, trusted=body.trusted, reason=body.reason, actor=who)
    return json_response(version, headers=deprecation_headers(version.deprecation))


@router.get("/models/{name}/versions/{ref}/trust", tags=["versions"], response_model=TrustRead)
def trust_history(name: str, ref: str, svc: RegistryService = Depends(registry)) -> Response:
    version = svc.get_version(name, ref)
    history = svc.trust_history(name, version.number)
    return json_response({"trusted": version.trusted, "history": history})


@router.put(
    "/models/{name}/versions/{ref}/quarantine", tags=["versions"], response_model=ModelVersion
)
def set_quarantine(
    name: str,
    ref: str,
    body: QuarantineSet,
    svc: RegistryService = Depends(registry),
    who: str = Depends(actor),
) -> Response:
    """Release a quarantined version (``false``) or quarantine one (``true``), with a reason;
    audited. Releasing will require the admin role."""
    version = svc.set_quarantine(
        name, ref, quarantined=body.quarantined, reason=body.reason, actor=who
    )
    return json_response(version, headers=deprecation_headers(version.deprecation))


@router.get(
    "/models/{name}/versions/{ref}/quarantine", tags=["versions"], response_model=QuarantineRead
)
def quarantine_history(name: str, ref: str, svc: RegistryService = Depends(registry)) -> Response:
    """Whether a version is quarantined, its scan report, and every quarantine and release."""
    version = svc.get_version(name, ref)
    history = svc.quarantine_history(name, version.number)
    return json_response(
        {"quarantined": version.quarantined, "scan": version.scan, "history": history}
    )


@router.post("/models/{name}/versions/{ref}/verify", tags=["versions"], response_model=VerifyReport)
def verify_version(name: str, ref: str, svc: RegistryService = Depends(registry)) -> Response:
    return json_response(svc.verify_version(name, ref))


@router.post("/models/{name}/versions/{ref}/sign", tags=["versions"], response_model=ModelVersion)
def sign_version(
    name: str, ref: str, svc: RegistryService = Depends(registry), who: str = Depends(actor)
) -> Response:
    """Sign a version (re-hashing its bytes first), e.g. one registered before signing."""
    return json_response(svc.sign_version(name, ref, actor=who))


@router.get("/models/{name}/versions/{ref}/files/{path:path}", tags=["versions"])
async def download_file(
    name: str, ref: str, path: str, svc: RegistryService = Depends(registry)
) -> Response:
    """A file of a version, verified against its digest before the first byte is sent."""
    version, entry = await run_in_threadpool(svc.version_file, name, ref, path)
    chunks = await run_in_threadpool(svc.read_file, entry)
    headers = {
        "Content-Length": str(entry.size),
        "Corral-Sha256": entry.sha256,
        "Corral-Version": str(version.number),
        **deprecation_headers(version.deprecation),
    }
    return StreamingResponse(chunks, media_type="application/octet-stream", headers=headers)


@router.post("/gc", tags=["server"], response_model=GcReport)
def gc(body: GcRequest | None = None, svc: RegistryService = Depends(registry)) -> Response:
    """Remove abandoned uploads and unreferenced bytes (default grace: the server's setting)."""
    return json_response(svc.gc(body.grace_seconds if body else None))
