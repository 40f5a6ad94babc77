"""The composition root: the only module that sees every layer."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from typing import TYPE_CHECKING

from corral.config import Settings
from corral.registry.service import RegistryService

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["Corral", "open_corral"]


@dataclass
class Corral:
    """The wired services of one Corral home or deployment."""

    settings: Settings
    registry: RegistryService
    engine: Engine

    def close(self) -> None:
        self.engine.dispose()


def default_actor(settings: Settings) -> str:
    """Who local writes are recorded as: the configured actor, else the OS user."""
    if settings.actor:
        return settings.actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"


def open_corral(settings: Settings, *, migrate: bool = True) -> Corral:
    """Connect the stores named by ``settings`` and build the services on them."""
    from corral.store.artifacts import FsspecArtifactStore
    from corral.store.sql import SqlRegistryStore, make_engine, upgrade_database

    engine = make_engine(settings.resolved_database_url)
    if migrate:
        upgrade_database(engine)
    artifacts = FsspecArtifactStore(
        settings.resolved_artifact_url, dict(settings.artifact_options) or None
    )
    registry = RegistryService(
        SqlRegistryStore(engine),
        artifacts,
        max_upload_bytes=settings.max_upload_bytes,
        staging_grace_seconds=settings.staging_grace_seconds,
    )
    return Corral(settings=settings, registry=registry, engine=engine)
