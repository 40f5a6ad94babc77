"""The registry service: every registry read and write goes through here."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from corral.access import Action, require
from corral.errors import Conflict, IntegrityError, InvalidArgument
from corral.registry.audit import (
    AuditQuery,
    Recorder,
    alias_view,
    consumer_target,
    consumer_view,
    verify_chain,
    version_view,
)
from corral.registry.codec import jsonable
from corral.registry.entities import (
    Alias,
    AliasAction,
    AliasEvent,
    AuditEvent,
    AuditReport,
    ConfigRevision,
    Consumer,
    Deprecation,
    FileEntry,
    Model,
    ModelSource,
    ModelVersion,
    Page,
    Resolution,
    Signature,
    TrustEvent,
    VerifyReport,
    VersionStatus,
)
from corral.registry.errors import (
    AliasNotFound,
    ConfigNotFound,
    ConsumerNotFound,
    FileNotInVersion,
    ModelNotFound,
    SignatureInvalid,
    VersionNotFound,
)
from corral.registry.history import rollback_target
from corral.registry.names import validate_artifact_path, validate_name
from corral.registry.permissions import (
    default_owner,
    require_owner_or,
    require_somewhere,
    visible,
    visible_page,
)
from corral.registry.ports import (
    ArtifactStore,
    FileWriter,
    GcReport,
    RegistryStore,
    VersionQuery,
    VersionSigner,
)
from corral.registry.quarantine import SCANNER_ACTOR, QuarantineVerbs, Scan, scan_upload
from corral.registry.signature import infer_signature
from corral.registry.values import (
    MAX_NUMBER,
    MAX_PAGE,
    detect_flavor,
    metric_map,
    page_args,
    str_map,
)

VersionRef = int | str
log = logging.getLogger("corral.registry")
_MODEL_FIELDS = ("description", "owner", "tags", "task", "framework", "license", "source")


class RegistryService(QuarantineVerbs):
    """Models, versions, aliases, deployment configs and consumers."""

    def __init__(
        self,
        store: RegistryStore,
        artifacts: ArtifactStore,
        *,
        max_upload_bytes: int = 64 * 1024**3,
        staging_grace_seconds: float = 3600.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        config_check: Callable[[dict[str, Any]], object] | None = None,
        signer: VersionSigner | None = None,
        require_signatures: bool = True,
        scan: Scan | None = None,
        on_signature_invalid: Callable[[str, int, str], None] | None = None,
    ) -> None:
        """``config_check`` refuses malformed deployment configs (``InvalidArgument``);
        serving supplies it, since it is serving that reads them. With a ``signer`` every
        new version is signed, and ``check_signature`` refuses a version whose signature
        fails (or is missing, when ``require_signatures``), then tells
        ``on_signature_invalid(model, version, reason)`` (monitoring's alert, by wiring)."""
        self.signer = signer
        self.on_signature_invalid = on_signature_invalid
        self.require_signatures = require_signatures
        # Scans a version's files before it is published (``corral.security``, by wiring);
        # an unsafe verdict publishes it quarantined.
        self.scan = scan
        self.store = store
        self.config_check = config_check
        self.artifacts = artifacts
        self.max_upload_bytes = max_upload_bytes
        self.staging_grace_seconds = staging_grace_seconds
        self._clock = clock

    @contextmanager
    def _audit(self, actor: str) -> Iterator[Recorder]:
        """A write transaction whose store writes and recorded events commit together."""
        with self.store.audited() as drafts:
            yield Recorder(drafts, actor, self._clock)

    def _maintain(self, model: str) -> None:
        """``require(MAINTAIN, model)``, which the model's owner passes too."""
        require_owner_or(Action.MAINTAIN, model, lambda: self._owner(model))

    def _owner(self, model: str) -> str:
        found = self.store.find_model(model)
        return found.owner if found is not None else ""

    # -- models -----------------------------------------------------------------------

    def create_model(
        self,
        name: str,
        *,
        description: str = "",
        owner: str = "",
        tags: dict[str, str] | None = None,
        task: str = "",
        framework: str = "",
        license: str = "",
        source: str = ModelSource.INTERNAL,
        actor: str = "",
    ) -> Model:
        """Create a model; ``AlreadyExists`` when the name is taken."""
        require(Action.REGISTER)
        validate_name("model", name)
        now = self._clock()
        with self._audit(actor) as record:
            created = self.store.create_model(
                Model(
                    name=name,
                    description=description,
                    owner=owner or default_owner(actor),
                    tags=str_map("tag", tags),
                    task=task,
                    framework=framework,
                    license=license,
                    source=self._source(source),
                    created_at=now,
                    updated_at=now,
                )
            )
            record("model.create", f"model:{name}", None, created)
        return created

    @staticmethod
    def _source(source: str) -> ModelSource:
        try:
            return ModelSource(source)
        except ValueError as exc:
            allowed = ", ".join(s.value for s in ModelSource)
            raise InvalidArgument(f"source must be one of {allowed}, not {source!r}") from exc

    def get_model(self, name: str) -> Model:
        require(Action.READ, name)
        model = self.store.find_model(name)
        if model is None:
            raise ModelNotFound(name)
        return model

    def list_models(
        self,
        query: str | None = None,
        tags: dict[str, str] | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> Page[Model]:
        """Models whose name or description contains ``query``, with all of ``tags``."""
        require_somewhere(Action.READ)
        page_args(offset, limit)
        wanted = str_map("tag", tags)
        return visible_page(
            lambda start, size: self.store.list_models(query or None, wanted, start, size),
            lambda model: model.name,
            offset,
            limit,
        )

    def update_model(self, name: str, *, actor: str = "", **changes: Any) -> Model:
        self._maintain(name)
        unknown = set(changes) - set(_MODEL_FIELDS)
        if unknown:
            raise InvalidArgument(f"cannot change {', '.join(sorted(unknown))} of a model")
        clean = {k: v for k, v in changes.items() if v is not None}
        if "tags" in clean:
            clean["tags"] = str_map("tag", clean["tags"])
        if "source" in clean:
            clean["source"] = self._source(clean["source"])
        # The store stamps updated_at itself (it refuses it as a change).
        current = self.get_model(name)
        with self._audit(actor) as record:
            updated = self.store.update_model(name, clean)
            record(
                "model.update",
                f"model:{name}",
                {k: getattr(current, k) for k in clean},
                {k: getattr(updated, k) for k in clean},
            )
        return updated

    def delete_model(self, name: str, *, actor: str = "") -> None:
        require(Action.ADMIN, name)
        current = self.get_model(name)
        with self._audit(actor) as record:
            self.store.delete_model(name)
            record("model.delete", f"model:{name}", current, None)

    # -- uploads and versions -------------------------------------------------------------

    def begin_upload(self) -> str:
        """Open a staging area for the files of a future version."""
        require_somewhere(Action.REGISTER)
        return self.artifacts.begin_upload()

    def upload_file(self, upload_id: str, path: str, chunks: Iterable[bytes]) -> FileEntry:
        """Stream one file into an upload; it is hashed and stored by content."""
        require_somewhere(Action.REGISTER)
        writer = self.open_upload_file(upload_id, path)
        try:
            for chunk in chunks:
                writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        return writer.close()

    def open_upload_file(self, upload_id: str, path: str) -> FileWriter:
        """A writer for one file of an upload (for callers that push chunks themselves)."""
        require_somewhere(Action.REGISTER)
        validate_artifact_path(path)
        self.artifacts.upload_entries(upload_id)  # raises UploadNotFound
        return self.artifacts.open_writer(upload_id, path, self.max_upload_bytes)

    def discard_upload(self, upload_id: str) -> None:
        require_somewhere(Action.REGISTER)
        self.artifacts.discard_upload(upload_id)

    def create_version(
        self,
        model: str,
        upload_id: str,
        *,
        flavor: str = "",
        description: str = "",
        metrics: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        signature: Signature | None = None,
        example: Any = None,
        source_uri: str = "",
        parent_version: int | None = None,
        alias: str | None = None,
        sensitive: Sequence[str] | None = None,
        actor: str = "",
    ) -> ModelVersion:
        """Publish the files of an upload as the next version of a model.

        The version becomes visible only once its bytes and manifest are durable.
        ``sensitive`` names input columns of the signature (given or inferred from
        ``example``) to hash or drop in the prediction log.
        """
        require(Action.REGISTER, model)
        self.get_model(model)  # a missing model is NotFound (the SDK then creates it)
        if alias is not None:  # checked before writing: a refused alias leaves no new version
            self._maintain(model)
        if alias is not None:
            validate_name("alias", alias)
        metric_values = metric_map(metrics)
        param_values = str_map("param", params)
        tag_values = str_map("tag", tags)
        if parent_version is not None:
            self.get_version(model, parent_version)
        if signature is None and example is not None:
            signature = infer_signature(example)
        if sensitive:
            signature = _mark_sensitive(signature, sensitive)
        entries = self.artifacts.upload_entries(upload_id)
        if not entries:
            raise InvalidArgument(f"upload '{upload_id}' has no files; upload at least one")
        # Scanned before the write transaction: a long scan must not hold the write lock.
        scanned = scan_upload(self.artifacts, entries, self.scan) if self.scan else None
        manifest = self.artifacts.put_manifest(entries)
        with self._audit(actor) as record:
            version = self.store.create_version(
                ModelVersion(
                    model=model,
                    number=0,
                    status=VersionStatus.READY,
                    manifest_digest=manifest.digest,
                    flavor=flavor or detect_flavor(e.path for e in entries),
                    description=description,
                    metrics=metric_values,
                    params=param_values,
                    tags=tag_values,
                    signature=signature,
                    source_uri=source_uri,
                    parent_version=parent_version,
                    created_by=actor,
                    created_at=self._clock(),
                    files=list(manifest.files),
                    size=manifest.total_size,
                    quarantined=scanned is not None and not scanned.safe,
                    scan=scanned.as_json() if scanned is not None else None,
                )
            )
            record(
                "version.create",
                f"model:{model}/version:{version.number}",
                None,
                version_view(version),
            )
            if version.quarantined and scanned is not None:
                version = self._record_quarantine(
                    record,
                    dataclasses.replace(version, quarantined=False),
                    True,
                    f"scan at registration: {scanned.summary}",
                    SCANNER_ACTOR,
                )
            if self.signer is not None:  # inside the transaction: no unsigned version commits
                bundle = self.signer.sign(model, version.number, version.files)
                self.artifacts.put_signature(model, version.number, bundle)
        self.artifacts.discard_upload(upload_id)
        if alias is not None:
            self.set_alias(model, alias, version.number, reason="set at registration", actor=actor)
        return version

    def get_version(self, model: str, ref: VersionRef) -> ModelVersion:
        """A version by number, or by the alias that points at it."""
        require(Action.READ, model)
        number = self._number(model, ref)
        version = self.store.find_version(model, number) if 0 < number <= MAX_NUMBER else None
        if version is None:
            self.get_model(model)
            raise VersionNotFound(model, number)
        return version

    def _number(self, model: str, ref: VersionRef) -> int:
        if isinstance(ref, int):
            return ref
        if ref.isascii() and ref.isdigit():  # not '²', which int() refuses
            return int(ref)
        validate_name("alias", ref)
        alias = self.store.find_alias(model, ref)
        if alias is not None:
            return alias.version
        if ref == "latest":
            latest = self.get_model(model).latest_version
            if latest is not None:
                return latest
        self.get_model(model)
        raise AliasNotFound(model, ref)

    def list_versions(self, model: str, offset: int = 0, limit: int = 100) -> Page[ModelVersion]:
        require(Action.READ, model)
        self.get_model(model)
        return self.search_versions(model=model, offset=offset, limit=limit)

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
        """Versions across models filtered by model name (substring), tags and status."""
        if model is not None:
            require(Action.READ, model)
        else:
            require_somewhere(Action.READ)
        page_args(offset, limit)
        try:
            wanted = VersionStatus(status) if status else None
        except ValueError as exc:
            raise InvalidArgument(f"unknown version status {status!r}") from exc
        tag_values = str_map("tag", tags)
        return visible_page(
            lambda start, size: self.store.list_versions(
                VersionQuery(
                    model=model,
                    name_contains=name_contains or None,
                    tags=tag_values,
                    status=wanted,
                    offset=start,
                    limit=size,
                )
            ),
            lambda version: version.model,
            offset,
            limit,
        )

    def deprecate_version(
        self, model: str, ref: VersionRef, message: str, *, actor: str = ""
    ) -> ModelVersion:
        """Mark a version deprecated: it still serves, and says so."""
        self._maintain(model)
        if not message.strip():
            raise InvalidArgument("a deprecation needs a message telling consumers what to do")
        version = self.get_version(model, ref)
        deprecation = Deprecation(message=message.strip(), by=actor, at=self._clock())
        return self._set_deprecation(version, deprecation, actor)

    def undeprecate_version(self, model: str, ref: VersionRef, *, actor: str = "") -> ModelVersion:
        self._maintain(model)
        version = self.get_version(model, ref)
        return self._set_deprecation(version, None, actor)

    def _set_deprecation(
        self, version: ModelVersion, deprecation: Deprecation | None, actor: str
    ) -> ModelVersion:
        action = "version.deprecate" if deprecation else "version.undeprecate"
        with self._audit(actor) as record:
            changed = self.store.set_deprecation(version.model, version.number, deprecation)
            record(
                action,
                f"model:{version.model}/version:{version.number}",
                version.deprecation,
                deprecation,
            )
        return changed

    def trust_version(
        self,
        model: str,
        ref: VersionRef,
        *,
        trusted: bool = True,
        reason: str = "",
        actor: str = "",
    ) -> ModelVersion:
        """Mark a version trusted (or not) to run the code it ships; the marking is audited.

        Code-bearing flavors (``python``, ``pickle``, ``joblib``) load only when trusted.
        Trusting needs a reason; marking the same value again is allowed and recorded too.
        Only an admin trusts or distrusts.
        """
        require(Action.ADMIN, model)
        reason = reason.strip()
        if trusted and not reason:
            raise InvalidArgument(
                f"trusting version {ref} of '{model}' lets it run any code: give a reason "
                "(who reviewed it, and what)"
            )
        version = self.get_version(model, ref)
        with self._audit(actor) as record:
            changed = self.store.set_trust(
                model, version.number, trusted, actor, reason, self._clock()
            )
            record(
                "version.trust",
                f"model:{model}/version:{version.number}",
                {"trusted": version.trusted},
                {"trusted": trusted, "reason": reason},
            )
        return changed

    def trust_history(self, model: str, ref: VersionRef) -> list[TrustEvent]:
        """Every trust marking of a version, newest first."""
        require(Action.READ, model)
        version = self.get_version(model, ref)
        return self.store.trust_history(model, version.number)

    def generation(self) -> int:
        """A number that grows with every registry write: poll it to know when to refresh.

        Unchecked: it says nothing about any model, and readiness probes ask for it.
        """
        return self.store.generation()

    def verify_version(self, model: str, ref: VersionRef) -> VerifyReport:
        """Re-hash every stored byte of a version; ``IntegrityError`` names each bad file."""
        require(Action.READ, model)
        version = self.get_version(model, ref)
        manifest = self.artifacts.get_manifest(version.manifest_digest)
        if sorted(manifest.files, key=lambda f: f.path) != sorted(
            version.files, key=lambda f: f.path
        ):
            raise IntegrityError(
                f"version {version.number} of '{model}': the stored manifest "
                f"{version.manifest_digest} does not list the files the registry recorded"
            )
        problems = self.artifacts.verify(manifest)
        if problems:
            raise IntegrityError(
                f"version {version.number} of '{model}' failed verification: " + "; ".join(problems)
            )
        self.check_signature(version)
        return VerifyReport(
            model=model,
            version=version.number,
            manifest_digest=manifest.digest,
            files_checked=len(manifest.files),
            bytes_checked=manifest.total_size,
        )

    def check_signature(self, version: ModelVersion, folder: Path | None = None) -> None:
        """``SignatureInvalid`` (and an audit event) unless the version's signature matches its
        manifest and, when given, the files of ``folder`` exactly."""
        require(Action.READ, version.model)
        if self.signer is None:
            return
        bundle = self.artifacts.find_signature(version.model, version.number)
        if bundle is None and not self.require_signatures:
            return
        try:
            self.signer.verify(version.model, version.number, version.files, bundle, folder)
        except SignatureInvalid as exc:
            with self._audit("corral") as record:
                record(
                    "version.signature_invalid",
                    f"model:{version.model}/version:{version.number}",
                    None,
                    {"reason": exc.message, "folder": str(folder) if folder else None},
                )
            if self.on_signature_invalid is not None:
                try:
                    self.on_signature_invalid(version.model, version.number, exc.message)
                except Exception:  # the alert is a courtesy: the refusal must still be raised
                    log.exception(
                        "could not raise the alert of version %d of '%s'",
                        version.number,
                        version.model,
                    )
            raise

    def sign_version(self, model: str, ref: VersionRef, *, actor: str = "") -> ModelVersion:
        """Sign a version after re-hashing its stored bytes (for versions from before signing)."""
        self._maintain(model)
        if self.signer is None:
            raise Conflict("signing is not configured on this registry")
        version = self.get_version(model, ref)
        problems = self.artifacts.verify(self.artifacts.get_manifest(version.manifest_digest))
        if problems:
            raise IntegrityError(
                f"version {version.number} of '{model}' cannot be signed: " + "; ".join(problems)
            )
        with self._audit(actor) as record:
            bundle = self.signer.sign(model, version.number, version.files)
            self.artifacts.put_signature(model, version.number, bundle)
            record("version.sign", f"model:{model}/version:{version.number}", None, {})
        return version

    def version_file(
        self, model: str, ref: VersionRef, path: str
    ) -> tuple[ModelVersion, FileEntry]:
        """A version and its file at ``path`` (refused while the version is quarantined)."""
        require(Action.READ, model)
        version = self.get_version(model, ref)
        self.check_servable(version)
        for entry in version.files:
            if entry.path == path:
                return version, entry
        raise FileNotInVersion(model, version.number, path)

    def read_file(self, entry: FileEntry, *, verify_first: bool = True) -> Iterator[bytes]:
        """The bytes of a stored file; verified in full before the first byte when asked."""
        require_somewhere(Action.READ)  # the entry came from a checked ``version_file``
        if verify_first:
            for _ in self.artifacts.read_file(entry):
                pass
        return self.artifacts.read_file(entry)

    def stream_file(self, model: str, version: int, path: str) -> Iterator[bytes]:
        """The bytes of one file of a version; ``IntegrityError`` at the end on a mismatch."""
        require(Action.READ, model)
        _, entry = self.version_file(model, version, path)
        return self.artifacts.read_file(entry)

    # -- aliases ------------------------------------------------------------------------

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
        """Point an alias at a version (and optionally a config revision); record the move."""
        self._maintain(model)
        validate_name("alias", alias)
        if alias.isdigit() or alias == "latest":
            raise InvalidArgument(f"alias name '{alias}' is reserved; choose another")
        target = self.get_version(model, version)
        if target.status is not VersionStatus.READY:
            raise Conflict(
                f"version {target.number} of '{model}' is {target.status.value}; "
                "only a ready version can be aliased"
            )
        if config is not None:
            rev = self.get_config(model, config, config_revision)
            config_revision = rev.revision
        elif config_revision is not None:
            raise InvalidArgument("config_revision needs a config name")
        current = self.store.find_alias(model, alias)
        new = Alias(
            model=model,
            name=alias,
            version=target.number,
            config=config,
            config_revision=config_revision,
            updated_by=actor,
            updated_at=self._clock(),
        )
        self._move_alias(current, new, model, alias, AliasAction.SET, actor, reason)
        return new

    def _move_alias(
        self,
        current: Alias | None,
        new: Alias | None,
        model: str,
        alias: str,
        action: AliasAction,
        actor: str,
        reason: str,
    ) -> None:
        with self._audit(actor) as record:
            self.store.move_alias(
                model, alias, new, action, actor, reason, current.version if current else None
            )
            after = alias_view(new)
            record(
                f"alias.{action.value}",
                f"model:{model}/alias:{alias}",
                alias_view(current),
                {**after, "reason": reason} if after else None,
            )

    def get_alias(self, model: str, alias: str) -> Alias:
        require(Action.READ, model)
        validate_name("alias", alias)
        found = self.store.find_alias(model, alias)
        if found is None:
            self.get_model(model)
            raise AliasNotFound(model, alias)
        return found

    def list_aliases(self, model: str) -> list[Alias]:
        require(Action.READ, model)
        self.get_model(model)
        return self.store.list_aliases(model)

    def delete_alias(self, model: str, alias: str, *, reason: str = "", actor: str = "") -> None:
        self._maintain(model)
        current = self.get_alias(model, alias)
        self._move_alias(current, None, model, alias, AliasAction.DELETE, actor, reason)

    def rollback_alias(self, model: str, alias: str, *, reason: str = "", actor: str = "") -> Alias:
        """Move an alias back to the target it had before its current one (version and config)."""
        self._maintain(model)
        validate_name("alias", alias)
        current = self.store.find_alias(model, alias)
        history = self._full_history(model, alias)
        target = rollback_target(reversed(history))
        if target is None:
            raise Conflict(
                f"alias '{alias}' of model '{model}' has no earlier target to roll back to"
            )
        version, config, config_revision = target
        new = Alias(
            model=model,
            name=alias,
            version=version,
            config=config,
            config_revision=config_revision,
            updated_by=actor,
            updated_at=self._clock(),
        )
        self._move_alias(current, new, model, alias, AliasAction.ROLLBACK, actor, reason)
        return new

    def _full_history(self, model: str, alias: str) -> list[AliasEvent]:
        events: list[AliasEvent] = []
        while True:
            page = self.store.alias_history(model, alias, len(events), MAX_PAGE)
            events.extend(page.items)
            if not page.items or len(events) >= page.total:
                return events

    def alias_history(
        self, model: str, alias: str | None = None, offset: int = 0, limit: int = 100
    ) -> Page[AliasEvent]:
        """Every move of an alias (or of all the model's aliases), newest first."""
        require(Action.READ, model)
        page_args(offset, limit)
        self.get_model(model)
        if alias is not None:
            validate_name("alias", alias)
        return self.store.alias_history(model, alias, offset, limit)

    # -- deployment configs -------------------------------------------------------------

    def create_config(
        self,
        model: str,
        config: str,
        values: dict[str, Any],
        *,
        comment: str = "",
        actor: str = "",
    ) -> ConfigRevision:
        """Add an immutable revision to a named deployment config."""
        self._maintain(model)
        validate_name("config", config)
        if not isinstance(values, dict):
            raise InvalidArgument("config values must be an object of settings")
        if self.config_check is not None:
            self.config_check(values)
        self.get_model(model)
        previous = self.store.find_config_revision(model, config, None)
        with self._audit(actor) as record:
            created = self.store.create_config_revision(
                ConfigRevision(
                    model=model,
                    config=config,
                    revision=0,
                    values=values,
                    created_by=actor,
                    created_at=self._clock(),
                    comment=comment,
                )
            )
            record(
                "config.create",
                f"model:{model}/config:{config}",
                {"revision": previous.revision, "values": previous.values} if previous else None,
                {"revision": created.revision, "values": values, "comment": comment},
            )
        return created

    def get_config(self, model: str, config: str, revision: int | None = None) -> ConfigRevision:
        require(Action.READ, model)
        validate_name("config", config)
        found = (
            self.store.find_config_revision(model, config, revision)
            if revision is None or 0 < revision <= MAX_NUMBER
            else None
        )
        if found is None:
            self.get_model(model)
            raise ConfigNotFound(model, config, revision)
        return found

    def list_configs(self, model: str, config: str | None = None) -> list[ConfigRevision]:
        require(Action.READ, model)
        self.get_model(model)
        return self.store.list_config_revisions(model, config)

    # -- consumers ----------------------------------------------------------------------

    def _check_binding(self, model: str, version: int | None, alias: str | None) -> None:
        if (version is None) == (alias is None):
            raise InvalidArgument("a consumer pins a version or follows an alias: give exactly one")
        if version is not None:
            self.get_version(model, version)
        else:
            assert alias is not None
            self.get_alias(model, alias)

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
        """Register a consumer that pins a version or follows an alias."""
        self._maintain(model)
        validate_name("consumer", name)
        self._check_binding(model, version, alias)
        now = self._clock()
        with self._audit(actor) as record:
            created = self.store.create_consumer(
                Consumer(
                    name=name,
                    model=model,
                    version=version,
                    alias=alias,
                    description=description,
                    created_by=actor,
                    created_at=now,
                    updated_at=now,
                )
            )
            record("consumer.create", consumer_target(created), None, consumer_view(created))
        return created

    def get_consumer(self, name: str, model: str) -> Consumer:
        require(Action.READ, model)
        validate_name("consumer", name)
        found = self.store.find_consumer(name, model)
        if found is None:
            self.get_model(model)
            raise ConsumerNotFound(name, model)
        return found

    def update_consumer(
        self,
        name: str,
        model: str,
        *,
        version: int | None = None,
        alias: str | None = None,
        actor: str = "",
    ) -> Consumer:
        """Move a consumer's pin (only the consumer's owner moves it; aliases never do)."""
        self._maintain(model)
        current = self.get_consumer(name, model)
        self._check_binding(model, version, alias)
        with self._audit(actor) as record:
            updated = self.store.update_consumer(
                dataclasses.replace(current, version=version, alias=alias, updated_at=self._clock())
            )
            record(
                "consumer.update",
                consumer_target(updated),
                consumer_view(current),
                consumer_view(updated),
            )
        return updated

    def list_consumers(self, model: str | None = None) -> list[Consumer]:
        """The consumers of ``model``, or of every model the caller can see."""
        if model is not None:
            require(Action.READ, model)
            self.get_model(model)
            return self.store.list_consumers(model)
        principal = require_somewhere(Action.READ)
        return [c for c in self.store.list_consumers(None) if visible(principal, c.model)]

    def delete_consumer(self, name: str, model: str, *, actor: str = "") -> None:
        self._maintain(model)
        current = self.get_consumer(name, model)
        with self._audit(actor) as record:
            self.store.delete_consumer(name, model)
            record("consumer.delete", consumer_target(current), consumer_view(current), None)

    def resolve_consumer(self, name: str, model: str) -> Resolution:
        """What a consumer gets right now: its pinned version, or its alias's target."""
        require(Action.READ, model)
        consumer = self.get_consumer(name, model)
        if consumer.version is not None:
            return dataclasses.replace(
                self.resolve(model, consumer.version), consumer=name, pinned=True
            )
        assert consumer.alias is not None
        return dataclasses.replace(self.resolve(model, consumer.alias), consumer=name)

    # -- resolution and maintenance -----------------------------------------------------

    def resolve(self, model: str, ref: VersionRef) -> Resolution:
        """The version (and config) a number or alias designates right now."""
        require(Action.READ, model)
        alias: Alias | None = None
        if isinstance(ref, str) and not (ref.isascii() and ref.isdigit()):
            validate_name("alias", ref)
            alias = self.store.find_alias(model, ref)
        version = self.get_version(model, alias.version if alias else ref)
        config_values = None
        if alias is not None and alias.config is not None:
            config_values = self.get_config(model, alias.config, alias.config_revision).values
        return Resolution(
            model=model,
            version=version.number,
            manifest_digest=version.manifest_digest,
            alias=alias.name if alias else None,
            config=alias.config if alias else None,
            config_revision=alias.config_revision if alias else None,
            config_values=config_values,
            deprecation=version.deprecation,
            status=version.status,
        )

    def gc(self, grace_seconds: float | None = None, *, actor: str = "") -> GcReport:
        """Remove abandoned staging data and bytes no version references.

        Args:
            grace_seconds: leave data younger than this alone (default: the configured grace).
        """
        require(Action.ADMIN)
        if grace_seconds is None:
            grace_seconds = self.staging_grace_seconds
        if grace_seconds < 0:
            raise InvalidArgument("grace period must be 0 seconds or more")
        report = self.artifacts.gc(self.store.referenced_manifests(), grace_seconds)
        # Recorded after the fact: holding the write lock through a long sweep would stall
        # every writer, and the sweep only removes bytes no version references.
        with self._audit(actor) as record:
            record("registry.gc", "artifacts", None, {**jsonable(report), "grace": grace_seconds})
        return report

    # -- audit --------------------------------------------------------------------------

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
        """Audit events, newest first; ``action`` and ``target`` match as prefixes."""
        require(Action.ADMIN)
        page_args(offset, limit)
        for name, value in (("since", since), ("until", until)):
            if value is not None and value.tzinfo is None:
                raise InvalidArgument(f"{name} must carry a time zone (e.g. 2026-01-01T00:00Z)")
        return self.store.list_audit(
            AuditQuery(
                actor=actor or None,
                action=action or None,
                target=target or None,
                since=since,
                until=until,
                offset=offset,
                limit=limit,
            )
        )

    def verify_audit(self) -> AuditReport:
        """Re-hash the whole audit chain; the report names the first edited or missing event."""
        require(Action.ADMIN)
        return verify_chain(self.store.audit_chain())


def _mark_sensitive(signature: Signature | None, names: Sequence[str]) -> Signature:
    """The signature with the named input columns marked sensitive."""
    if isinstance(names, str):
        names = [names]
    if signature is None:
        raise InvalidArgument(
            "sensitive columns need a signature: give an example (or a signature) that "
            "names the input columns"
        )
    known = {column.name for column in signature.inputs}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InvalidArgument(
            f"sensitive column {', '.join(repr(n) for n in unknown)} is not an input of the "
            f"signature; its inputs are {', '.join(sorted(known)) or 'none'}"
        )
    chosen = set(names)
    inputs = [
        dataclasses.replace(column, sensitive=True) if column.name in chosen else column
        for column in signature.inputs
    ]
    return dataclasses.replace(signature, inputs=inputs)
