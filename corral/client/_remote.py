"""The registry's verbs over REST: the same signatures as ``RegistryService``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import orjson

from corral.errors import (
    CorralError,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    error_class_for_code,
)
from corral.registry.codec import from_jsonable, jsonable
from corral.registry.entities import (
    Alias,
    AliasEvent,
    AuditEvent,
    AuditReport,
    ConfigRevision,
    Consumer,
    FileEntry,
    Model,
    ModelVersion,
    Page,
    QuarantineEvent,
    Resolution,
    Signature,
    TrustEvent,
    VerifyReport,
)
from corral.registry.ports import GcReport
from corral.registry.service import VersionRef

if TYPE_CHECKING:
    from corral.serving.predictor import Prediction


def _seg(value: str | int) -> str:
    return quote(str(value), safe="")


def raise_for_problem(response: httpx.Response) -> None:
    """Re-raise a problem+json response as the Corral error class its code names."""
    if response.is_success:
        return
    response.read()
    try:
        body = response.json()
        code, detail = body.get("code", ""), body.get("detail") or body.get("title")
    except ValueError:
        code, detail = "", response.text[:500]
    if code:
        cls = error_class_for_code(code)
    else:  # not Corral's reply (a proxy in front of it): the status still says what failed
        cls = _CLASS_BY_STATUS.get(response.status_code, CorralError)
    raise cls(detail or f"HTTP {response.status_code} from {response.request.url}")


def api_call(http: httpx.Client, method: str, url: str, **kwargs: Any) -> Any:
    """``method`` on ``/api/v1<url>``: the reply's JSON (``None`` for 204), or the problem
    re-raised as its Corral error (``Unavailable`` when the server cannot be reached)."""
    try:
        response = http.request(method, "/api/v1" + url, **kwargs)
    except httpx.TransportError as exc:
        raise Unavailable(f"cannot reach the Corral server at {http.base_url}: {exc}") from exc
    raise_for_problem(response)
    return None if response.status_code == 204 else orjson.loads(response.content)


_CLASS_BY_STATUS: dict[int, type[CorralError]] = {401: Unauthenticated, 403: PermissionDenied}


class RemoteRegistry:
    """``RegistryService``'s verbs against a Corral server."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def _call(self, method: str, url: str, kind: Any = None, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise Unavailable(
                f"cannot reach the Corral server at {self.http.base_url}: {exc}"
            ) from exc
        raise_for_problem(response)
        if kind is None or response.status_code == 204:
            return None
        return from_jsonable(kind, orjson.loads(response.content))

    @staticmethod
    def _m(model: str) -> str:
        return f"/api/v1/models/{_seg(model)}"

    def _v(self, model: str, ref: VersionRef) -> str:
        return f"{self._m(model)}/versions/{_seg(ref)}"

    # -- models
    def create_model(self, name: str, *, actor: str = "", **fields: Any) -> Model:
        body = {"name": name, **{k: v for k, v in fields.items() if v is not None}}
        return self._call("POST", "/api/v1/models", Model, json=body)  # type: ignore[no-any-return]

    def get_model(self, name: str) -> Model:
        return self._call("GET", self._m(name), Model)  # type: ignore[no-any-return]

    def list_models(
        self,
        query: str | None = None,
        tags: dict[str, str] | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> Page[Model]:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if query:
            params["q"] = query
        if tags:
            params["tag"] = [f"{k}={v}" for k, v in tags.items()]
        return self._call("GET", "/api/v1/models", Page[Model], params=params)  # type: ignore[no-any-return]

    def update_model(self, name: str, *, actor: str = "", **changes: Any) -> Model:
        body = {k: v for k, v in changes.items() if v is not None}
        return self._call("PATCH", self._m(name), Model, json=body)  # type: ignore[no-any-return]

    def delete_model(self, name: str, *, actor: str = "") -> None:
        self._call("DELETE", self._m(name))

    # -- uploads and versions
    def begin_upload(self) -> str:
        data = self._call("POST", "/api/v1/uploads", dict[str, str])
        return str(data["upload_id"])

    def upload_file(self, upload_id: str, path: str, chunks: Iterable[bytes]) -> FileEntry:
        url = f"/api/v1/uploads/{_seg(upload_id)}/files/" + quote(path, safe="")
        return self._call("PUT", url, FileEntry, content=iter(chunks), timeout=None)  # type: ignore[no-any-return]

    def discard_upload(self, upload_id: str) -> None:
        self._call("DELETE", f"/api/v1/uploads/{_seg(upload_id)}")

    def create_version(
        self,
        model: str,
        upload_id: str,
        *,
        signature: Signature | None = None,
        actor: str = "",
        **fields: Any,
    ) -> ModelVersion:
        body = {
            "upload_id": upload_id,
            **{k: v for k, v in jsonable(fields).items() if v is not None},
        }
        if signature is not None:
            body["signature"] = jsonable(signature)
        return self._call("POST", f"{self._m(model)}/versions", ModelVersion, json=body)  # type: ignore[no-any-return]

    def get_version(self, model: str, ref: VersionRef) -> ModelVersion:
        return self._call("GET", self._v(model, ref), ModelVersion)  # type: ignore[no-any-return]

    def list_versions(self, model: str, offset: int = 0, limit: int = 100) -> Page[ModelVersion]:
        params = {"offset": offset, "limit": limit}
        return self._call(  # type: ignore[no-any-return]
            "GET", f"{self._m(model)}/versions", Page[ModelVersion], params=params
        )

    def search_versions(
        self,
        *,
        model: str | None = None,
        name_contains: str | None = None,
        tags: dict[str, str] | None = None,
        status: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> Page[ModelVersion]:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        for key, value in (("model", model), ("name", name_contains), ("status", status)):
            if value:
                params[key] = value
        if tags:
            params["tag"] = [f"{k}={v}" for k, v in tags.items()]
        return self._call("GET", "/api/v1/versions", Page[ModelVersion], params=params)  # type: ignore[no-any-return]

    def deprecate_version(
        self, model: str, ref: VersionRef, message: str, *, actor: str = ""
    ) -> ModelVersion:
        url = f"{self._v(model, ref)}/deprecation"
        return self._call("POST", url, ModelVersion, json={"message": message})  # type: ignore[no-any-return]

    def undeprecate_version(self, model: str, ref: VersionRef, *, actor: str = "") -> ModelVersion:
        return self._call("DELETE", f"{self._v(model, ref)}/deprecation", ModelVersion)  # type: ignore[no-any-return]

    def trust_version(
        self,
        model: str,
        ref: VersionRef,
        *,
        trusted: bool = True,
        reason: str = "",
        actor: str = "",
    ) -> ModelVersion:
        body = {"trusted": trusted, "reason": reason}
        return self._call("PUT", f"{self._v(model, ref)}/trust", ModelVersion, json=body)  # type: ignore[no-any-return]

    def trust_history(self, model: str, ref: VersionRef) -> list[TrustEvent]:
        data = self._call("GET", f"{self._v(model, ref)}/trust", dict[str, Any])
        return from_jsonable(list[TrustEvent], data["history"])  # type: ignore[no-any-return]

    def set_quarantine(
        self,
        model: str,
        ref: VersionRef,
        *,
        quarantined: bool = True,
        reason: str = "",
        actor: str = "",
    ) -> ModelVersion:
        body = {"quarantined": quarantined, "reason": reason}
        return self._call("PUT", f"{self._v(model, ref)}/quarantine", ModelVersion, json=body)  # type: ignore[no-any-return]

    def quarantine_history(self, model: str, ref: VersionRef) -> list[QuarantineEvent]:
        data = self._call("GET", f"{self._v(model, ref)}/quarantine", dict[str, Any])
        return from_jsonable(list[QuarantineEvent], data["history"])  # type: ignore[no-any-return]

    def verify_version(self, model: str, ref: VersionRef) -> VerifyReport:
        return self._call("POST", f"{self._v(model, ref)}/verify", VerifyReport, timeout=None)  # type: ignore[no-any-return]

    def sign_version(self, model: str, ref: VersionRef, *, actor: str = "") -> ModelVersion:
        return self._call("POST", f"{self._v(model, ref)}/sign", ModelVersion, timeout=None)  # type: ignore[no-any-return]

    def predict(
        self,
        model: str,
        inputs: Any,
        *,
        version: int | None = None,
        alias: str | None = None,
        consumer: str | None = None,
        key: str | None = None,
    ) -> Prediction:
        import numpy as np

        from corral.serving.predictor import Prediction

        body: dict[str, Any] = {"inputs": inputs}
        for name, value in (("version", version), ("alias", alias), ("key", key)):
            if value is not None:
                body[name] = value
        headers = {"X-Corral-Consumer": consumer} if consumer else None
        try:
            response = self.http.post(
                f"{self._m(model)}/predict", content=orjson.dumps(body), headers=headers
            )
        except httpx.TransportError as exc:
            raise Unavailable(
                f"cannot reach the Corral server at {self.http.base_url}: {exc}"
            ) from exc
        raise_for_problem(response)
        answer = orjson.loads(response.content)
        predictions = answer["predictions"]
        return Prediction(
            model=answer["model"],
            version=answer["version"],
            alias=answer["alias"],
            consumer=answer["consumer"],
            outputs=(
                {k: np.asarray(v) for k, v in predictions.items()}
                if isinstance(predictions, dict)
                else np.asarray(predictions)
            ),
            rows=len(
                next(iter(predictions.values())) if isinstance(predictions, dict) else predictions
            ),
            canary=answer.get("canary", False),
            request_id=answer.get("request_id", ""),
        )

    def stream_file(self, model: str, version: int, path: str) -> Iterator[bytes]:
        """The bytes of one file of a version, as the server sends them."""
        url = f"{self._v(model, version)}/files/" + quote(path, safe="")
        try:
            with self.http.stream("GET", url, timeout=None) as response:
                raise_for_problem(response)
                yield from response.iter_bytes(1 << 20)
        except httpx.TransportError as exc:
            raise Unavailable(
                f"download of '{path}' from {self.http.base_url} failed: {exc}"
            ) from exc

    # -- aliases
    def set_alias(
        self,
        model: str,
        alias: str,
        version: VersionRef,
        *,
        config: str | None = None,
        config_revision: int | None = None,
        reason: str = "",
        actor: str = "",
    ) -> Alias:
        if not isinstance(version, int):
            version = self.get_version(model, version).number
        body = {
            "version": version,
            "config": config,
            "config_revision": config_revision,
            "reason": reason,
        }
        return self._call("PUT", f"{self._m(model)}/aliases/{_seg(alias)}", Alias, json=body)  # type: ignore[no-any-return]

    def get_alias(self, model: str, alias: str) -> Alias:
        return self._call("GET", f"{self._m(model)}/aliases/{_seg(alias)}", Alias)  # type: ignore[no-any-return]

    def list_aliases(self, model: str) -> list[Alias]:
        return self._call("GET", f"{self._m(model)}/aliases", list[Alias])  # type: ignore[no-any-return]

    def delete_alias(self, model: str, alias: str, *, reason: str = "", actor: str = "") -> None:
        url = f"{self._m(model)}/aliases/{_seg(alias)}"
        self._call("DELETE", url, params={"reason": reason})

    def rollback_alias(self, model: str, alias: str, *, reason: str = "", actor: str = "") -> Alias:
        url = f"{self._m(model)}/aliases/{_seg(alias)}/rollback"
        return self._call("POST", url, Alias, json={"reason": reason})  # type: ignore[no-any-return]

    def alias_history(
        self, model: str, alias: str | None = None, offset: int = 0, limit: int = 100
    ) -> Page[AliasEvent]:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if alias:
            params["alias"] = alias
        url = f"{self._m(model)}/alias-history"
        return self._call("GET", url, Page[AliasEvent], params=params)  # type: ignore[no-any-return]

    # -- configs
    def create_config(
        self,
        model: str,
        config: str,
        values: dict[str, Any],
        *,
        comment: str = "",
        actor: str = "",
    ) -> ConfigRevision:
        url = f"{self._m(model)}/configs/{_seg(config)}"
        body = {"values": values, "comment": comment}
        return self._call("POST", url, ConfigRevision, json=body)  # type: ignore[no-any-return]

    def get_config(self, model: str, config: str, revision: int | None = None) -> ConfigRevision:
        params = {"revision": revision} if revision is not None else {}
        url = f"{self._m(model)}/configs/{_seg(config)}"
        return self._call("GET", url, ConfigRevision, params=params)  # type: ignore[no-any-return]

    def list_configs(self, model: str, config: str | None = None) -> list[ConfigRevision]:
        params = {"config": config} if config else {}
        url = f"{self._m(model)}/configs"
        return self._call("GET", url, list[ConfigRevision], params=params)  # type: ignore[no-any-return]

    # -- consumers
    def create_consumer(
        self,
        name: str,
        model: str,
        *,
        version: int | None = None,
        alias: str | None = None,
        description: str = "",
        actor: str = "",
    ) -> Consumer:
        body = {"name": name, "version": version, "alias": alias, "description": description}
        return self._call("POST", f"{self._m(model)}/consumers", Consumer, json=body)  # type: ignore[no-any-return]

    def get_consumer(self, name: str, model: str) -> Consumer:
        return self._call("GET", f"{self._m(model)}/consumers/{_seg(name)}", Consumer)  # type: ignore[no-any-return]

    def update_consumer(
        self,
        name: str,
        model: str,
        *,
        version: int | None = None,
        alias: str | None = None,
        actor: str = "",
    ) -> Consumer:
        url = f"{self._m(model)}/consumers/{_seg(name)}"
        body = {"version": version, "alias": alias}
        return self._call("PATCH", url, Consumer, json=body)  # type: ignore[no-any-return]

    def list_consumers(self, model: str | None = None) -> list[Consumer]:
        params = {"model": model} if model else {}
        return self._call("GET", "/api/v1/consumers", list[Consumer], params=params)  # type: ignore[no-any-return]

    def delete_consumer(self, name: str, model: str, *, actor: str = "") -> None:
        self._call("DELETE", f"{self._m(model)}/consumers/{_seg(name)}")

    def resolve_consumer(self, name: str, model: str) -> Resolution:
        url = f"{self._m(model)}/consumers/{_seg(name)}/resolve"
        return self._call("GET", url, Resolution)  # type: ignore[no-any-return]

    # -- resolution and maintenance
    def resolve(self, model: str, ref: VersionRef) -> Resolution:
        return self._call("GET", f"{self._m(model)}/resolve/{_seg(ref)}", Resolution)  # type: ignore[no-any-return]

    # -- audit
    def list_audit(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> Page[AuditEvent]:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        for key, value in (("actor", actor), ("action", action), ("target", target)):
            if value:
                params[key] = value
        for key, moment in (("since", since), ("until", until)):
            if moment is not None:
                params[key] = moment.isoformat()
        return self._call("GET", "/api/v1/audit", Page[AuditEvent], params=params)  # type: ignore[no-any-return]

    def verify_audit(self) -> AuditReport:
        return self._call("GET", "/api/v1/audit/verify", AuditReport, timeout=None)  # type: ignore[no-any-return]

    def gc(self, grace_seconds: float | None = None) -> GcReport:
        body = {"grace_seconds": grace_seconds}
        return self._call("POST", "/api/v1/gc", GcReport, json=body, timeout=None)  # type: ignore[no-any-return]
