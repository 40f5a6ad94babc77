"""The composition root: the only module that sees every layer."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from corral.config import Settings
from corral.registry.service import RegistryService

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from corral.serving.gateway import Gateway

__all__ = ["Corral", "open_corral"]


@dataclass
class Corral:
    """The wired services of one Corral home or deployment."""

    settings: Settings
    registry: RegistryService
    engine: Engine
    _gateway: Gateway | None = field(default=None, repr=False)

    @property
    def gateway(self) -> Gateway:
        """The serving gateway (built on first use: registry-only work never loads models)."""
        if self._gateway is None:
            from corral.serving.gateway import Gateway

            settings = self.settings
            self._gateway = Gateway(
                self.registry,
                settings.resolved_cache_dir,
                memory_budget_bytes=settings.model_cache_bytes,
                max_rows=settings.max_request_rows,
                poll_seconds=settings.route_poll_seconds,
            )
        return self._gateway

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
    from corral.serving.deployment import parse_deployment

    registry = RegistryService(
        SqlRegistryStore(engine),
        artifacts,
        max_upload_bytes=settings.max_upload_bytes,
        staging_grace_seconds=settings.staging_grace_seconds,
        config_check=parse_deployment,
    )
    return Corral(settings=settings, registry=registry, engine=engine)
