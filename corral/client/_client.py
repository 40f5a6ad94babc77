"""``Client``: one object, two transports (REST or the local services directly)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.client._identity import IdentityVerbs
from corral.client._monitoring import MonitoringVerbs
from corral.errors import AlreadyExists, InvalidArgument, NotFound
from corral.registry.entities import FileEntry, ModelVersion
from corral.registry.errors import VersionQuarantined
from corral.registry.fetching import Progress, fetch_version, write_verified
from corral.registry.signature import EXAMPLE_FILE

if TYPE_CHECKING:
    from corral.config import Settings
    from corral.serving.predictor import Prediction

_CHUNK = 1 << 20

# The verbs both transports offer with the same signatures (see RegistryService).
VERBS = frozenset(
    {
        "create_model", "get_model", "list_models", "update_model", "delete_model",
        "begin_upload", "upload_file", "discard_upload", "create_version",
        "get_version", "list_versions", "search_versions", "deprecate_version",
        "undeprecate_version", "verify_version", "stream_file",
        "set_alias", "get_alias", "list_aliases", "delete_alias", "rollback_alias",
        "alias_history", "create_config", "get_config", "list_configs",
        "create_consumer", "get_consumer", "update_consumer", "list_consumers",
        "delete_consumer", "resolve_consumer", "resolve", "gc",
        "trust_version", "trust_history", "list_audit", "verify_audit", "sign_version",
        "set_quarantine", "quarantine_history",
    }
)  # fmt: skip
_WRITES = frozenset(
    {
        "create_model", "update_model", "delete_model", "create_version", "deprecate_version",
        "undeprecate_version", "set_alias", "delete_alias", "rollback_alias", "create_config",
        "create_consumer", "update_consumer", "delete_consumer",
        "trust_version", "sign_version", "set_quarantine",
    }
)  # fmt: skip


def _file_chunks(path: Path, progress: Progress | None) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            if progress:
                progress(len(chunk))
            yield chunk


def _collect(path: Path) -> list[tuple[str, Path]]:
    """(relative POSIX path, file) for a file or every file under a folder."""
    if path.is_symlink():
        raise InvalidArgument(f"'{path}' is a symbolic link; register the file it points to")
    if path.is_file():
        return [(path.name, path)]
    if not path.is_dir():
        raise InvalidArgument(f"'{path}' does not exist")
    files: list[tuple[str, Path]] = []
    for item in sorted(path.rglob("*")):
        if item.is_symlink():
            raise InvalidArgument(f"'{item}' is a symbolic link; Corral stores regular files only")
        if item.is_file():
            files.append((item.relative_to(path).as_posix(), item))
    if not files:
        raise InvalidArgument(f"folder '{path}' has no files to register")
    return files


class Client(MonitoringVerbs, IdentityVerbs):
    """The Corral SDK.

    ``Client("http://host:8080")`` talks to a server; ``Client(home="/path")`` (or
    ``Client()`` with no server configured) works on a local Corral home directly.
    A server is sent ``token`` (default: the ``token`` setting, ``CORRAL_TOKEN``) as
    ``Authorization: Bearer …``; a local home needs none.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        home: str | os.PathLike[str] | None = None,
        settings: Settings | None = None,
        actor: str | None = None,
        token: str | None = None,
        timeout: float = 60.0,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if url is not None and not url.startswith(("http://", "https://")):
            home, url = url, None
        if url is None and home is None:
            from corral.config import Settings

            settings = settings or Settings()
            url = settings.server_url
        self._corral: Any = None
        self.cache_dir: Path
        if url is not None:
            import httpx

            from corral.client._remote import RemoteRegistry

            headers = {"User-Agent": "corral-sdk"}
            if actor:
                headers["X-Corral-Actor"] = actor
            if token is None:
                from corral.config import Settings

                token = (settings or Settings()).token
            if token and token.strip():
                headers["Authorization"] = f"Bearer {token.strip()}"
            self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout, headers=headers)
            self._backend: Any = RemoteRegistry(self._http)
            self.url: str | None = url
            self.cache_dir = Path.home() / ".cache" / "corral"
            self._actor = ""
        else:
            from corral.config import Settings
            from corral.wiring import default_actor, open_corral

            if home is not None:
                from corral.config import load_settings

                settings = load_settings(Path(home))
            assert settings is not None
            self._corral = open_corral(settings)
            self._backend = self._corral.registry
            self.url = None
            self.cache_dir = settings.resolved_cache_dir
            self._actor = actor or default_actor(settings)
        if cache_dir is not None:
            self.cache_dir = Path(cache_dir)

    @property
    def is_remote(self) -> bool:
        return self.url is not None

    def __getattr__(self, name: str) -> Any:
        if name in VERBS:
            verb = getattr(self._backend, name)
            if name in _WRITES and self._actor:
                actor = self._actor

                def with_actor(*args: Any, **kwargs: Any) -> Any:
                    kwargs.setdefault("actor", actor)
                    return verb(*args, **kwargs)

                return with_actor
            return verb
        raise AttributeError(f"'Client' has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | VERBS)

    def close(self) -> None:
        if self._corral is not None:
            self._corral.close()
        else:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- conveniences built on the verbs ------------------------------------------------

    def register(
        self,
        model: str,
        path: str | os.PathLike[str],
        *,
        flavor: str = "",
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        description: str = "",
        example: Any = None,
        alias: str | None = None,
        source_uri: str = "",
        parent_version: int | None = None,
        create_model: bool = True,
        progress: Callable[[str, int], Callable[[int], None]] | None = None,
        sensitive: list[str] | None = None,
    ) -> ModelVersion:
        """Upload a file or folder and publish it as the next version of ``model``.

        ``example`` (records, columns, a 2-D array, or a JSON/CSV file path) is stored
        with the version as ``input_example.json`` and its signature inferred.
        ``sensitive`` names input columns hashed or dropped in the prediction log.
        ``progress(label, total_bytes)`` returns a callback fed with byte counts.
        """
        files = _collect(Path(path))
        example_value = self._example(example)
        upload_id = self.begin_upload()
        try:
            for rel, file in files:
                tick = progress(rel, file.stat().st_size) if progress else None
                self.upload_file(upload_id, rel, _file_chunks(file, tick))
            if example_value is not None and EXAMPLE_FILE not in dict(files):
                import json

                payload = json.dumps(example_value).encode()
                self.upload_file(upload_id, EXAMPLE_FILE, iter([payload]))
            fields = {
                "flavor": flavor,
                "metrics": metrics,
                "params": params,
                "tags": tags,
                "description": description,
                "example": example_value,
                "source_uri": source_uri,
                "parent_version": parent_version,
                "alias": alias,
            }
            if sensitive:
                fields["sensitive"] = list(sensitive)
            try:
                return self.create_version(model, upload_id, **fields)  # type: ignore[no-any-return]
            except NotFound:
                if not create_model:
                    raise
            # Maybe the first version of a new model: create it (another process may just
            # have, which is fine) and publish the upload, still staged, again. Any other
            # missing thing (a parent version) fails the same way the second time.
            with contextlib.suppress(AlreadyExists):
                self.create_model(model)
            return self.create_version(model, upload_id, **fields)  # type: ignore[no-any-return]
        except BaseException:
            with contextlib.suppress(Exception):
                self.discard_upload(upload_id)
            raise

    def log_model(
        self,
        model: Any,
        name: str,
        *,
        example: Any = None,
        flavor: str | None = None,
        description: str = "",
        metrics: dict[str, float] | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        alias: str | None = None,
        source_uri: str = "",
        parent_version: int | None = None,
        create_model: bool = True,
        progress: Callable[[str, int], Callable[[int], None]] | None = None,
    ) -> ModelVersion:
        """Save an in-memory model in its flavor's format as the next version of ``name``.

        The flavor comes from the object (scikit-learn via skops, XGBoost, LightGBM, ONNX,
        else ``python``: its class's source file and attributes); nothing is pickled. The
        other arguments are ``register``'s.
        """
        from corral.serving.saving import save_model

        with tempfile.TemporaryDirectory(prefix="corral-log-model-") as tmp:
            folder = Path(tmp) / "model"
            saved_as = save_model(model, folder, flavor=flavor, example=example)
            return self.register(
                name,
                folder,
                flavor=saved_as,
                metrics=metrics,
                params=params,
                tags=tags,
                description=description,
                example=example,
                alias=alias,
                source_uri=source_uri,
                parent_version=parent_version,
                create_model=create_model,
                progress=progress,
            )

    @staticmethod
    def _example(example: Any) -> Any:
        if isinstance(example, str | os.PathLike) and Path(example).suffix.lower() in (
            ".json",
            ".csv",
        ):
            from corral.registry.signature import load_example

            return load_example(Path(example))
        if example is None:
            return None
        from corral.registry.codec import jsonable

        if hasattr(example, "to_dict") and hasattr(example, "columns"):
            return jsonable(example.to_dict(orient="list"))
        if hasattr(example, "tolist"):
            return example.tolist()
        return jsonable(example)

    def download(
        self,
        model: str,
        ref: int | str,
        dest: str | os.PathLike[str],
        *,
        progress: Callable[[str, int], Callable[[int], None]] | None = None,
    ) -> Path:
        """Write a version's files under ``dest``, each verified against its digest; the
        version's signature is checked first (``SignatureInvalid``: nothing is written)."""
        version = self.get_version(model, ref)
        self._check_quarantine(version)
        self._check_signature(version, None)
        target: Path = Path(dest)
        for entry in version.files:
            tick = progress(entry.path, entry.size) if progress else None
            self._download_file(model, version.number, entry, target, tick)
        return target

    def _download_file(
        self, model: str, number: int, entry: FileEntry, dest: Path, tick: Progress | None
    ) -> None:
        write_verified(entry, dest, self.stream_file(model, number, entry.path), tick)

    def predict(
        self,
        model: str,
        inputs: Any,
        *,
        version: int | None = None,
        alias: str | None = None,
        consumer: str | None = None,
        key: str | None = None,
    ) -> Prediction:
        """Predictions for records, columns, a 2-D array (or NumPy array / DataFrame).

        Without ``version`` or ``alias`` the model's ``champion`` alias answers (the latest
        version when it has none); a ``consumer`` gets what its binding says.
        """
        from corral.serving.inputs import plain_inputs

        body = plain_inputs(inputs)
        if self._corral is not None:
            return self._corral.gateway.predict_sync(  # type: ignore[no-any-return]
                model, body, version=version, alias=alias, consumer=consumer, key=key
            )
        return self._backend.predict(  # type: ignore[no-any-return]
            model, body, version=version, alias=alias, consumer=consumer, key=key
        )

    def fetch(self, model: str, ref: int | str = "latest") -> Path:
        """A local folder with the version's verified files (see ``fetch_version``)."""
        version = self.get_version(model, ref)
        self._check_quarantine(version)  # a copy cached before the quarantine stays unread
        return fetch_version(
            version,
            self.cache_dir,
            lambda entry: self.stream_file(model, version.number, entry.path),
            lambda folder: self._check_signature(version, folder),
        )

    def _check_quarantine(self, version: ModelVersion) -> None:
        if not version.quarantined:
            return
        if self._corral is not None:
            self._corral.registry.check_servable(version)  # raises, naming the latest reason
        scan = version.scan or {}
        summary = scan.get("summary", "") if scan.get("safe") is False else "quarantined by hand"
        raise VersionQuarantined(version.model, version.number, str(summary))

    def release_version(self, model: str, ref: int | str, reason: str) -> ModelVersion:
        """Release a quarantined version once its files are reviewed; the reason is recorded
        and audited (this will require the admin role)."""
        return self.set_quarantine(model, ref, quarantined=False, reason=reason)  # type: ignore[no-any-return]

    def quarantine_version(self, model: str, ref: int | str, reason: str) -> ModelVersion:
        """Quarantine a version by hand: it is neither served nor downloaded until released."""
        return self.set_quarantine(model, ref, quarantined=True, reason=reason)  # type: ignore[no-any-return]

    def _check_signature(self, version: ModelVersion, folder: Path | None) -> None:
        """Locally: the signature against the manifest (and folder). Over REST: the server
        checks it while re-hashing the stored bytes (``verify_version``); the folder holds
        exactly the manifest's files, each hashed (see ``fetch_version``)."""
        if self._corral is not None:
            self._corral.registry.check_signature(version, folder)
        else:
            self._backend.verify_version(version.model, version.number)
