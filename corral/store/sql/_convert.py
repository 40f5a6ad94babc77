"""Conversions between ORM rows and the registry's entities (JSON columns included)."""

from __future__ import annotations

from typing import Any

from corral.registry.entities import (
    Alias,
    AliasAction,
    AliasEvent,
    ColumnSpec,
    ConfigRevision,
    Consumer,
    Deprecation,
    FileEntry,
    Model,
    ModelSource,
    ModelVersion,
    QuarantineEvent,
    Signature,
    TrustEvent,
    VersionStatus,
)
from corral.store.sql.tables import (
    AliasEventRow,
    ConfigRevisionRow,
    ConsumerRow,
    QuarantineEventRow,
    TrustEventRow,
)


def model_from_row(row: Any) -> Model:
    """A model from an ORM row or a plain row of the same columns."""
    return Model(
        name=row.name,
        description=row.description,
        owner=row.owner,
        tags=dict(row.tags),
        task=row.task,
        framework=row.framework,
        license=row.license,
        source=ModelSource(row.source),
        created_at=row.created_at,
        updated_at=row.updated_at,
        latest_version=row.next_version - 1 if row.next_version > 1 else None,
    )


def signature_to_json(signature: Signature | None) -> dict[str, Any] | None:
    if signature is None:
        return None
    return {
        "inputs": [_column_to_json(c) for c in signature.inputs],
        "outputs": [_column_to_json(c) for c in signature.outputs],
    }


def _column_to_json(column: ColumnSpec) -> dict[str, Any]:
    data: dict[str, Any] = {"name": column.name, "dtype": column.dtype, "shape": list(column.shape)}
    if column.sensitive:  # written only when set: older rows and readers stay unchanged
        data["sensitive"] = True
    return data


def _column_from_json(data: dict[str, Any]) -> ColumnSpec:
    return ColumnSpec(
        data["name"], data["dtype"], list(data["shape"]), bool(data.get("sensitive", False))
    )


def signature_from_json(data: dict[str, Any] | None) -> Signature | None:
    if data is None:
        return None
    return Signature(
        inputs=[_column_from_json(c) for c in data["inputs"]],
        outputs=[_column_from_json(c) for c in data["outputs"]],
    )


def files_to_json(files: list[FileEntry]) -> list[Any]:
    return [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files]


def files_from_json(data: list[Any]) -> list[FileEntry]:
    return [FileEntry(path=f["path"], size=f["size"], sha256=f["sha256"]) for f in data]


def version_from_row(row: Any, model: str, with_files: bool = True) -> ModelVersion:
    """A version from an ORM row or a plain row of the same columns."""
    deprecation = None
    if row.deprecated_at is not None:
        deprecation = Deprecation(
            message=row.deprecation_message or "", by=row.deprecated_by or "", at=row.deprecated_at
        )
    return ModelVersion(
        model=model,
        number=row.number,
        status=VersionStatus(row.status),
        manifest_digest=row.manifest_digest,
        flavor=row.flavor,
        description=row.description,
        metrics=dict(row.metrics),
        params=dict(row.params),
        tags=dict(row.tags),
        signature=signature_from_json(row.signature),
        source_uri=row.source_uri,
        parent_version=row.parent_version,
        created_by=row.created_by,
        created_at=row.created_at,
        deprecation=deprecation,
        files=files_from_json(row.files) if with_files else [],
        size=row.size,
        trusted=bool(row.trusted),
        # Rows from before the scan (or plain rows without its columns) read as not quarantined.
        quarantined=bool(getattr(row, "quarantined", False)),
        scan=dict(report) if (report := getattr(row, "scan_report", None)) else None,
    )


def alias_from_row(row: Any, model: str) -> Alias:
    """An alias from an ORM row or a plain row of the same columns."""
    return Alias(
        model=model,
        name=row.name,
        version=row.version,
        config=row.config,
        config_revision=row.config_revision,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


def alias_event_from_row(row: AliasEventRow, model: str) -> AliasEvent:
    return AliasEvent(
        id=row.id,
        model=model,
        alias=row.alias,
        action=AliasAction(row.action),
        from_version=row.from_version,
        to_version=row.to_version,
        from_config=row.from_config,
        from_config_revision=row.from_config_revision,
        to_config=row.to_config,
        to_config_revision=row.to_config_revision,
        actor=row.actor,
        reason=row.reason,
        at=row.at,
    )


def config_revision_from_row(row: ConfigRevisionRow, model: str) -> ConfigRevision:
    return ConfigRevision(
        model=model,
        config=row.config,
        revision=row.revision,
        values=dict(row.values),
        created_by=row.created_by,
        created_at=row.created_at,
        comment=row.comment,
    )


def consumer_from_row(row: ConsumerRow, model: str) -> Consumer:
    return Consumer(
        name=row.name,
        model=model,
        version=row.version,
        alias=row.alias,
        description=row.description,
        created_by=row.created_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def trust_event_from_row(row: TrustEventRow, model: str) -> TrustEvent:
    return TrustEvent(
        id=row.id,
        model=model,
        version=row.version,
        trusted=row.trusted,
        actor=row.actor,
        reason=row.reason,
        at=row.at,
    )


def quarantine_event_from_row(row: QuarantineEventRow, model: str) -> QuarantineEvent:
    return QuarantineEvent(
        id=row.id,
        model=model,
        version=row.version,
        action=row.action,
        actor=row.actor,
        reason=row.reason,
        at=row.at,
    )
