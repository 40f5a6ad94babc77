"""The registry's entities: plain, immutable values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ModelSource(StrEnum):
    INTERNAL = "internal"
    THIRD_PARTY = "third-party"


class VersionStatus(StrEnum):
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"
    QUARANTINED = "quarantined"


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    task: str = ""
    framework: str = ""
    license: str = ""
    source: ModelSource = ModelSource.INTERNAL
    created_at: datetime | None = None
    updated_at: datetime | None = None
    latest_version: int | None = None


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One input or output column: its name, dtype and shape (-1 = any length).

    A ``sensitive`` input is hashed or dropped before it reaches the prediction log.
    """

    name: str
    dtype: str
    shape: list[int] = field(default_factory=lambda: [-1])
    sensitive: bool = False


@dataclass(frozen=True, slots=True)
class Signature:
    inputs: list[ColumnSpec] = field(default_factory=list)
    outputs: list[ColumnSpec] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a version: its path inside the version, size and sha256."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Manifest:
    """The files of a version; its digest is the sha256 of its canonical JSON."""

    files: list[FileEntry]
    digest: str = ""

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True, slots=True)
class Deprecation:
    message: str
    by: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ModelVersion:
    model: str
    number: int
    status: VersionStatus
    manifest_digest: str
    flavor: str = ""
    description: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    signature: Signature | None = None
    source_uri: str = ""
    parent_version: int | None = None
    created_by: str = ""
    created_at: datetime | None = None
    deprecation: Deprecation | None = None
    files: list[FileEntry] = field(default_factory=list)
    size: int = 0
    # May the code this version ships (python, pickle, joblib flavors) run? Set only
    # through ``RegistryService.trust_version``, which records a ``TrustEvent``.
    trusted: bool = False
    # Unsafe by the scan at registration (or by an admin): neither served nor downloaded
    # until released with a reason (``RegistryService.set_quarantine``, a ``QuarantineEvent``).
    quarantined: bool = False
    # The scan report stored at registration: verdict, summary and findings (None: not scanned).
    scan: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class TrustEvent:
    """One marking of a version as trusted (or not) to run its code: who, when and why."""

    id: int
    model: str
    version: int
    trusted: bool
    actor: str = ""
    reason: str = ""
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class QuarantineEvent:
    """One quarantine or release of a version: who, when and why."""

    id: int
    model: str
    version: int
    action: str  # "quarantine" or "release"
    actor: str = ""
    reason: str = ""
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Alias:
    model: str
    name: str
    version: int
    config: str | None = None
    config_revision: int | None = None
    updated_by: str = ""
    updated_at: datetime | None = None


class AliasAction(StrEnum):
    SET = "set"
    DELETE = "delete"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class AliasEvent:
    """One move of an alias: who, when, from which target to which, and why."""

    id: int
    model: str
    alias: str
    action: AliasAction
    from_version: int | None
    to_version: int | None
    from_config: str | None = None
    from_config_revision: int | None = None
    to_config: str | None = None
    to_config_revision: int | None = None
    actor: str = ""
    reason: str = ""
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ConfigRevision:
    """One immutable revision of a named deployment configuration."""

    model: str
    config: str
    revision: int
    values: dict[str, Any]
    created_by: str = ""
    created_at: datetime | None = None
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Consumer:
    """A named consumer of one model: pinned to a version or following an alias."""

    name: str
    model: str
    version: int | None = None
    alias: str | None = None
    description: str = ""
    created_by: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a consumer, alias or version reference resolves to right now."""

    model: str
    version: int
    manifest_digest: str
    alias: str | None = None
    consumer: str | None = None
    pinned: bool = False
    config: str | None = None
    config_revision: int | None = None
    config_values: dict[str, Any] | None = None
    deprecation: Deprecation | None = None
    status: VersionStatus = VersionStatus.READY


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    offset: int = 0
    limit: int = 100


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One entry of the append-only audit log, chained to the one before it by ``prev_hash``.

    ``before`` and ``after`` are plain JSON values: the state the action changed, as it was
    and as it became (``None`` for what did not exist).
    """

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    before: Any = None
    after: Any = None
    origin: str = ""
    prev_hash: str = ""
    hash: str = ""


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The result of re-checking the audit chain: ``ok``, or the first bad event and why."""

    ok: bool
    events_checked: int
    bad_event_id: int | None = None
    problem: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class VerifyReport:
    model: str
    version: int
    manifest_digest: str
    files_checked: int
    bytes_checked: int
