"""What the registry needs from storage, as protocols that ``corral.store`` implements."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from corral.registry.audit import AuditDraft, AuditQuery
from corral.registry.entities import (
    Alias,
    AliasAction,
    AliasEvent,
    AuditEvent,
    ConfigRevision,
    Consumer,
    Deprecation,
    FileEntry,
    Manifest,
    Model,
    ModelVersion,
    Page,
    QuarantineEvent,
    TrustEvent,
    VersionStatus,
)


@dataclass(frozen=True, slots=True)
class VersionQuery:
    """Filters for searching versions; every field set must match."""

    model: str | None = None
    name_contains: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    status: VersionStatus | None = None
    offset: int = 0
    limit: int = 100


@dataclass(frozen=True, slots=True)
class GcReport:
    staging_removed: int = 0
    blobs_removed: int = 0
    manifests_removed: int = 0
    bytes_freed: int = 0


class RegistryStore(Protocol):
    """Metadata of models, versions, aliases, configs and consumers.

    Every method is one transaction: it either happens whole or not at all.
    Methods naming a model raise ``ModelNotFound`` when it does not exist.
    Every write also increases the registry's ``generation`` in its transaction.
    """

    def create_model(self, model: Model) -> Model:
        """Insert a model; ``AlreadyExists`` when the name is taken."""
        ...

    def find_model(self, name: str) -> Model | None: ...

    def list_models(
        self, query: str | None, tags: dict[str, str], offset: int, limit: int
    ) -> Page[Model]:
        """Models whose name or description contains ``query`` and that carry ``tags``."""
        ...

    def update_model(self, name: str, changes: dict[str, Any]) -> Model: ...

    def delete_model(self, name: str) -> None:
        """Delete a model with its versions, aliases, history, configs and consumers."""
        ...

    def create_version(self, draft: ModelVersion) -> ModelVersion:
        """Insert a version, assigning the next number of its model atomically.

        ``draft.number`` and ``draft.trusted`` are ignored: a new version is untrusted.
        ``draft.quarantined`` and ``draft.scan`` (the registration scan) are kept.
        Concurrent calls from many processes get distinct, consecutive numbers.
        """
        ...

    def find_version(self, model: str, number: int) -> ModelVersion | None: ...

    def list_versions(self, query: VersionQuery) -> Page[ModelVersion]:
        """Versions matching the query, newest first (without ``files``)."""
        ...

    def set_deprecation(
        self, model: str, number: int, deprecation: Deprecation | None
    ) -> ModelVersion: ...

    def set_status(self, model: str, number: int, status: VersionStatus) -> ModelVersion: ...

    def set_trust(
        self, model: str, number: int, trusted: bool, actor: str, reason: str, at: datetime
    ) -> ModelVersion:
        """Set whether a version is trusted and record the ``TrustEvent``, together.

        ``VersionNotFound`` when the version does not exist.
        """
        ...

    def trust_history(self, model: str, number: int) -> list[TrustEvent]:
        """Every trust marking of one version, newest first."""
        ...

    def set_quarantine(
        self, model: str, number: int, quarantined: bool, actor: str, reason: str, at: datetime
    ) -> ModelVersion:
        """Quarantine or release a version and record the ``QuarantineEvent``, together.

        ``VersionNotFound`` when the version does not exist.
        """
        ...

    def quarantine_history(self, model: str, number: int) -> list[QuarantineEvent]:
        """Every quarantine and release of one version, newest first."""
        ...

    def generation(self) -> int:
        """A number that grows with every committed write: cheap to poll for changes."""
        ...

    def find_alias(self, model: str, alias: str) -> Alias | None: ...

    def list_aliases(self, model: str) -> list[Alias]: ...

    def move_alias(
        self,
        model: str,
        alias: str,
        target: Alias | None,
        action: AliasAction,
        actor: str,
        reason: str,
        expected_version: int | None,
    ) -> AliasEvent:
        """Point ``alias`` at ``target`` (or delete it when None) and record the move.

        ``expected_version`` is the version the caller saw the alias at (None: absent);
        when the alias moved meanwhile, raise ``Conflict`` and change nothing.
        """
        ...

    def alias_history(
        self, model: str, alias: str | None, offset: int, limit: int
    ) -> Page[AliasEvent]:
        """Moves of one alias (or all aliases of the model), newest first."""
        ...

    def create_config_revision(self, revision: ConfigRevision) -> ConfigRevision:
        """Insert the next revision of a named config (``revision.revision`` ignored)."""
        ...

    def find_config_revision(
        self, model: str, config: str, revision: int | None
    ) -> ConfigRevision | None:
        """One revision, or the latest when ``revision`` is None."""
        ...

    def list_config_revisions(self, model: str, config: str | None) -> list[ConfigRevision]: ...

    def create_consumer(self, consumer: Consumer) -> Consumer:
        """Insert a consumer; ``AlreadyExists`` when (name, model) is taken."""
        ...

    def update_consumer(self, consumer: Consumer) -> Consumer: ...

    def find_consumer(self, name: str, model: str) -> Consumer | None: ...

    def list_consumers(self, model: str | None) -> list[Consumer]: ...

    def delete_consumer(self, name: str, model: str) -> None: ...

    def audited(self) -> AbstractContextManager[list[AuditDraft]]:
        """One write transaction that the store's writes inside it join; the drafts put in
        its list are chained onto the audit log in that transaction, so an event exists
        exactly when its change does."""
        ...

    def list_audit(self, query: AuditQuery) -> Page[AuditEvent]:
        """Audit events matching the query, newest first."""
        ...

    def audit_chain(self) -> Iterator[AuditEvent]:
        """Every audit event, oldest first, read in batches."""
        ...

    def referenced_manifests(self) -> set[str]:
        """Digests of every manifest a version row points at."""
        ...


class FileWriter(Protocol):
    """A file being streamed into staging; ``close`` hashes, syncs and publishes it."""

    def write(self, chunk: bytes) -> None: ...

    def close(self) -> FileEntry: ...

    def abort(self) -> None: ...


class ArtifactStore(Protocol):
    """Content-addressed bytes on an fsspec URL: staging, blobs, manifests."""

    url: str

    def begin_upload(self) -> str:
        """Open a staging area and return its id."""
        ...

    def open_writer(self, upload_id: str, path: str, max_bytes: int) -> FileWriter:
        """Stream one file of an upload; the path is already validated."""
        ...

    def upload_entries(self, upload_id: str) -> list[FileEntry]:
        """The files finished so far in an upload; ``NotFound`` for an unknown id."""
        ...

    def discard_upload(self, upload_id: str) -> None: ...

    def put_manifest(self, files: list[FileEntry]) -> Manifest:
        """Write the manifest of these (already published) files; return it with its digest."""
        ...

    def get_manifest(self, digest: str) -> Manifest:
        """Read and verify a manifest; ``IntegrityError`` if its bytes do not match."""
        ...

    def read_file(self, entry: FileEntry) -> Iterator[bytes]:
        """Stream a blob's bytes, raising ``IntegrityError`` at the end on a mismatch."""
        ...

    def verify(self, manifest: Manifest) -> list[str]:
        """Check every file of a manifest; return a problem per bad file (empty: all good)."""
        ...

    def gc(self, referenced_manifests: Iterable[str], grace_seconds: float) -> GcReport:
        """Remove old staging data and blobs/manifests that nothing references."""
        ...

    def put_signature(self, model: str, version: int, data: bytes) -> None:
        """Keep a version's signature bundle (outside its files, next to the manifests)."""
        ...

    def find_signature(self, model: str, version: int) -> bytes | None:
        """A version's signature bundle; ``None`` when it was never signed."""
        ...


class VersionSigner(Protocol):
    """Signs a version's manifest and checks a signature (``corral.security.signing``)."""

    def sign(self, model: str, version: int, files: Sequence[FileEntry]) -> bytes:
        """The signature bundle over the version's files."""
        ...

    def verify(
        self,
        model: str,
        version: int,
        files: Sequence[FileEntry],
        bundle: bytes | None,
        folder: Path | None = None,
    ) -> None:
        """``SignatureInvalid`` unless ``bundle`` signs exactly ``files`` (and ``folder``)."""
        ...
