"""The composition root: the only module that sees every layer."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from corral.config import Settings
from corral.registry.service import RegistryService

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from corral.monitoring.service import MonitoringService
    from corral.security.admission import Gatekeeper
    from corral.security.identity import IdentityService
    from corral.security.signing import ManifestSigner
    from corral.serving.gateway import Gateway
    from corral.serving.recorder import PredictionRecorder

__all__ = ["Corral", "open_corral"]


@dataclass
class Corral:
    """The wired services of one Corral home or deployment."""

    settings: Settings
    registry: RegistryService
    engine: Engine
    _gateway: Gateway | None = field(default=None, repr=False)
    _monitoring: MonitoringService | None = field(default=None, repr=False)
    _gatekeeper: Gatekeeper | None = field(default=None, repr=False)
    _identity: IdentityService | None = field(default=None, repr=False)

    @property
    def identity(self) -> IdentityService:
        """Users, teams, grants, tokens and sessions (kept in the metadata store)."""
        if self._identity is None:
            from corral.security.identity import IdentityService
            from corral.store.ratelimits import validate_limit

            self._identity = IdentityService(
                self.registry.store,  # type: ignore[arg-type]
                session_hours=self.settings.session_hours,
                validate_rate=validate_limit,
            )
        return self._identity

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
                recorder=_prediction_recorder(settings),
            )
        return self._gateway

    @property
    def monitoring(self) -> MonitoringService:
        """Prediction logs, feedback, performance, drift, objectives and alerts."""
        if self._monitoring is None:
            from corral.monitoring.service import MonitoringService
            from corral.security.urls import UrlPolicy
            from corral.store.metrics import ParquetLogStore
            from corral.store.metrics.feedback import parse_feedback
            from corral.store.metrics.files import FileColumns
            from corral.store.sql import SqlMonitoringStore
            from corral.store.webhooks import HttpNotifier

            settings = self.settings
            options = dict(settings.artifact_options) or None
            policy = UrlPolicy.from_settings(
                settings.outbound_allow_private, settings.outbound_allowed_hosts
            )
            self._monitoring = MonitoringService(
                self.registry,
                ParquetLogStore(settings.resolved_artifact_url, options),
                SqlMonitoringStore(self.engine),
                HttpNotifier(check_url=policy.check),
                open_file=lambda path: FileColumns(
                    f"{settings.resolved_artifact_url.rstrip('/')}/{path}", options
                ),
                parse_feedback=parse_feedback,
                cooldown_seconds=settings.alert_cooldown_seconds,
                check_url=policy.check,
            )
        return self._monitoring

    @property
    def gatekeeper(self) -> Gatekeeper:
        """Request rates, row quotas and tier admission (counters in rate_limit_storage)."""
        if self._gatekeeper is None:
            from corral.security.admission import Gatekeeper
            from corral.store.ratelimits import LimitsCounters

            settings = self.settings
            self._gatekeeper = Gatekeeper(
                LimitsCounters(settings.rate_limit_storage),
                default_rate=settings.default_rate_limit,
                max_inflight=settings.max_inflight_predictions,
                on_refuse=lambda reason, tier: self.gateway.metrics.rate_limited.labels(
                    reason, tier
                ).inc(),
            )
        return self._gatekeeper

    async def aclose(self) -> None:
        """Release what a server's event loop holds (the rate-limit storage's connections)."""
        if self._gatekeeper is not None:
            await self._gatekeeper.aclose()

    def close(self) -> None:
        if self._gateway is not None and self._gateway.recorder is not None:
            self._gateway.recorder.close()  # writes the queued prediction log rows
        self.engine.dispose()


def _prediction_recorder(settings: Settings) -> PredictionRecorder | None:
    """The prediction logger of a gateway, writing Parquet under the artifact root."""
    if not settings.log_predictions:
        return None
    from corral.serving.recorder import PredictionRecorder
    from corral.store.metrics import ParquetLogStore
    from corral.store.metrics.batches import BatchWriter

    url, options = settings.resolved_artifact_url, dict(settings.artifact_options) or None
    store = ParquetLogStore(url, options)
    return PredictionRecorder(
        BatchWriter(url, options, store.write_predictions),
        flush_seconds=settings.log_flush_seconds,
        max_rows=settings.log_queue_rows,
        salt=_log_salt(settings),
    )


def _log_salt(settings: Settings) -> bytes:
    """The configured salt, else a random one created once and kept in the home."""
    if settings.log_hash_salt:
        return settings.log_hash_salt.encode()
    import os
    import secrets

    path = settings.home / "log-salt"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".log-salt.{os.getpid()}")
    temporary.write_bytes(secrets.token_hex(16).encode())
    try:
        os.link(temporary, path)  # the first process to create it wins; others read its salt
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return path.read_bytes()


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
    from corral.security.quarantine import scan_for_registration
    from corral.serving.deployment import parse_deployment

    registry = RegistryService(
        SqlRegistryStore(engine),
        artifacts,
        max_upload_bytes=settings.max_upload_bytes,
        staging_grace_seconds=settings.staging_grace_seconds,
        config_check=parse_deployment,
        signer=_signer(settings),
        require_signatures=settings.require_signatures,
        scan=scan_for_registration,
    )
    wired = Corral(settings=settings, registry=registry, engine=engine)

    def alert(model: str, version: int, reason: str) -> None:
        # Monitoring is built on first use, after the registry: look it up when called.
        wired.monitoring.raise_integrity_alert(model, version, reason)

    registry.on_signature_invalid = alert
    return wired


def _signer(settings: Settings) -> ManifestSigner:
    """Signs with the configured key, else one created on first use under ``<home>/keys``."""
    from corral.security.signing import ManifestSigner

    return ManifestSigner(settings.resolved_signing_key, settings.signing_public_keys)
