"""Corral's settings: the one place that reads the environment.

Every setting has the ``CORRAL_`` prefix (``CORRAL_HOME``, ``CORRAL_DATABASE_URL`` …),
nested values use ``__``, and an optional ``corral.toml`` in the working directory or
in the Corral home supplies defaults. Load once in an entry point, then pass it down.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["Settings", "default_home", "load_settings"]

# The home a `load_settings(home=...)` call is for, so that its corral.toml is read too.
_HOME: ContextVar[Path | None] = ContextVar("corral_home", default=None)


def default_home() -> Path:
    """The Corral home when ``CORRAL_HOME`` is not set: ``~/.corral``."""
    return Path.home() / ".corral"


class Settings(BaseSettings):
    """Everything Corral can be configured with (see docs/configuration.md)."""

    model_config = SettingsConfigDict(
        env_prefix="CORRAL_",
        env_nested_delimiter="__",
        toml_file="corral.toml",
        extra="ignore",
    )

    home: Path = Field(
        default_factory=default_home,
        description="Folder holding the embedded database and the local artifact store.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata store; default sqlite:///<home>/corral.db.",
    )
    artifact_url: str | None = Field(
        default=None,
        description="fsspec URL of the artifact store root; default <home>/artifacts.",
    )
    artifact_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra fsspec storage options, e.g. {'endpoint_url': ...} for S3.",
    )
    host: str = Field(default="127.0.0.1", description="Address `corral server` binds to.")
    port: int = Field(default=8080, description="Port `corral server` listens on.")
    actor: str | None = Field(
        default=None,
        description="Name recorded as the author of local (SDK/CLI without server) writes.",
    )
    staging_grace_seconds: float = Field(
        default=3600.0,
        description="`corral gc` leaves staging data and blobs younger than this alone.",
    )
    max_upload_bytes: int = Field(
        default=64 * 1024**3,
        description="Largest single artifact file accepted by an upload, in bytes.",
    )
    server_url: str | None = Field(
        default=None,
        description="Corral server the CLI talks to; unset means the local home directly.",
    )
    cache_dir: Path | None = Field(
        default=None,
        description="Where the SDK caches verified versions it fetched; default <home>/cache.",
    )

    max_request_bytes: int = Field(
        default=10 * 1024**2,
        gt=0,
        description="Largest prediction request body (plain JSON or OIP), in bytes.",
    )
    max_request_rows: int = Field(
        default=10_000,
        gt=0,
        description="Most rows one prediction request may carry (a config's limits.max_rows wins).",
    )
    model_cache_bytes: int = Field(
        default=2 * 1024**3,
        gt=0,
        description="Memory budget for loaded versions in each server process (LRU eviction).",
    )
    route_poll_seconds: float = Field(
        default=0.1,
        gt=0,
        le=10,
        description="How often each server process checks the registry for alias moves.",
    )
    log_predictions: bool = Field(
        default=True,
        description="Log served predictions as Parquet under <artifact root>/monitoring/.",
    )
    log_flush_seconds: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="How often the prediction log is written; a hard crash loses at most this.",
    )
    log_queue_rows: int = Field(
        default=100_000,
        gt=0,
        description="Most prediction-log rows held in memory; beyond it new rows are dropped.",
    )
    log_hash_salt: str | None = Field(
        default=None,
        description="Salt of hashed sensitive log columns; default a random one kept in <home>.",
    )

    monitor_evaluate_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How often the server evaluates every objective (0 turns the schedule off).",
    )
    alert_cooldown_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="An alert still open is notified again only after this many seconds.",
    )
    outbound_allow_private: bool = Field(
        default=False,
        description="Let webhooks reach loopback, link-local and private addresses (tests, LANs).",
    )
    outbound_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts, addresses or networks webhooks may reach even when they are private.",
    )

    signing_key_path: Path | None = Field(
        default=None,
        description="EC private key (PEM) signing versions; default <home>/keys/signing-key.pem.",
    )
    signing_public_keys: list[Path] = Field(
        default_factory=list,
        description="Extra trusted public keys (PEM): keys of other servers, or retired keys.",
    )
    require_signatures: bool = Field(
        default=True,
        description="Refuse to load, fetch or download a version that has no signature.",
    )

    anonymous_role: Literal["none", "viewer", "consumer", "contributor", "maintainer", "admin"] = (
        Field(
            default="none",
            description="Role of server requests that carry no token or session ('none': refused).",
        )
    )
    token: str | None = Field(
        default=None,
        description="API token the CLI and SDK send to a Corral server (`--server`).",
    )
    session_hours: float = Field(
        default=12.0,
        gt=0,
        description="How long a web login lasts before the user must sign in again.",
    )
    rate_limit_storage: str = Field(
        default="memory://",
        description="Where rate-limit counters live: memory:// (per process) or redis://host:port.",
    )
    default_rate_limit: str = Field(
        default="",
        description="Requests a token may make unless it has its own limit, e.g. '100/second'.",
    )
    max_inflight_predictions: int = Field(
        default=64,
        gt=0,
        description="Predictions a process runs at once; under overload higher tiers go first.",
    )
    max_json_depth: int = Field(
        default=32,
        gt=0,
        description="Deepest nesting of arrays and objects accepted in a JSON request body.",
    )

    @field_validator("home", "cache_dir", mode="after")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        home = _HOME.get() or Path(os.environ.get("CORRAL_HOME", str(default_home())))
        home_toml = home.expanduser() / "corral.toml"
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls),
            TomlConfigSettingsSource(settings_cls, toml_file=home_toml),
        )

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'corral.db'}"

    @property
    def resolved_artifact_url(self) -> str:
        return self.artifact_url or str(self.home / "artifacts")

    @property
    def resolved_signing_key(self) -> Path:
        return (self.signing_key_path or self.home / "keys" / "signing-key.pem").expanduser()

    @property
    def resolved_cache_dir(self) -> Path:
        return self.cache_dir or self.home / "cache"


def load_settings(home: Path | str | None = None, **overrides: Any) -> Settings:
    """Settings from the environment and corral.toml files; ``home`` reads its own toml too."""
    if home is None:
        return Settings(**overrides)
    path = Path(home).expanduser()
    token = _HOME.set(path)
    try:
        return Settings(home=path, **overrides)
    finally:
        _HOME.reset(token)
