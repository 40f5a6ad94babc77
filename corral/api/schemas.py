"""Request bodies of the REST API (responses are the registry's entities)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from corral.registry.entities import QuarantineEvent, Signature, TrustEvent


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelCreate(_Body):
    name: str = Field(max_length=10_000)
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    task: str = ""
    framework: str = ""
    license: str = ""
    source: str = "internal"


class ModelUpdate(_Body):
    description: str | None = None
    owner: str | None = None
    tags: dict[str, str] | None = None
    task: str | None = None
    framework: str | None = None
    license: str | None = None
    source: str | None = None


class UploadRead(BaseModel):
    upload_id: str


class VersionCreate(_Body):
    upload_id: str
    flavor: str = ""
    description: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, Any] = Field(default_factory=dict)
    signature: Signature | None = None
    example: Any = None
    source_uri: str = ""
    parent_version: int | None = None
    alias: str | None = None
    sensitive: list[str] | None = None


class DeprecationCreate(_Body):
    message: str


class TrustSet(_Body):
    trusted: bool
    reason: str = ""


class TrustRead(BaseModel):
    """Whether a version is trusted now, and every marking of it, newest first."""

    trusted: bool
    history: list[TrustEvent]


class QuarantineSet(_Body):
    """``false`` releases a quarantined version, ``true`` quarantines one; both need a reason."""

    quarantined: bool
    reason: str


class QuarantineRead(BaseModel):
    """Whether a version is quarantined now, its scan report, and every quarantine and release."""

    quarantined: bool
    scan: dict[str, Any] | None
    history: list[QuarantineEvent]


class AliasSet(_Body):
    version: int
    config: str | None = None
    config_revision: int | None = None
    reason: str = ""


class AliasReason(_Body):
    reason: str = ""


class ConfigCreate(_Body):
    values: dict[str, Any]
    comment: str = ""


class ConsumerCreate(_Body):
    name: str = Field(max_length=10_000)
    version: int | None = None
    alias: str | None = None
    description: str = ""


class ConsumerUpdate(_Body):
    version: int | None = None
    alias: str | None = None


class GcRequest(_Body):
    grace_seconds: float | None = None
