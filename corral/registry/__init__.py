"""The registry domain: models, versions, aliases, deployment configs and consumers.

Owns the entities, the rules (names, rollback, signatures) and ``RegistryService``;
declares the storage it needs as protocols (``RegistryStore``, ``ArtifactStore``)
that ``corral.store`` implements. Imports no infrastructure.
"""

from corral.registry.entities import (
    Alias,
    AliasAction,
    AliasEvent,
    ConfigRevision,
    Consumer,
    Deprecation,
    FileEntry,
    Manifest,
    Model,
    ModelSource,
    ModelVersion,
    Page,
    Resolution,
    Signature,
    VersionStatus,
)
from corral.registry.ports import ArtifactStore, RegistryStore
from corral.registry.service import RegistryService

__all__ = [
    "Alias",
    "AliasAction",
    "AliasEvent",
    "ArtifactStore",
    "ConfigRevision",
    "Consumer",
    "Deprecation",
    "FileEntry",
    "Manifest",
    "Model",
    "ModelSource",
    "ModelVersion",
    "Page",
    "RegistryService",
    "RegistryStore",
    "Resolution",
    "Signature",
    "VersionStatus",
]
