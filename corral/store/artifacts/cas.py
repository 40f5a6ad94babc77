"""``FsspecArtifactStore``: uploads staged, hashed and published by sha256 on an fsspec URL.

Layout under the root::

    staging/<upload_id>/created.json           marker (object stores have no folders)
    staging/<upload_id>/files/<random>.part    bytes being written
    staging/<upload_id>/entries/<key>.json     one finished FileEntry per path
    blobs/sha256/<first 2 hex>/<digest>        one object per distinct content
    manifests/sha256/<digest>.json             canonical JSON of a version's files
    signatures/<model>/<version>.sigstore.json a version's signature bundle (never collected)
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fsspec
import fsspec.utils
from fsspec.implementations.local import LocalFileSystem
from typing_extensions import override

from corral.errors import IntegrityError, InvalidArgument, NotFound
from corral.registry.entities import FileEntry, Manifest
from corral.registry.errors import UploadNotFound
from corral.registry.names import validate_artifact_path, validate_name
from corral.registry.ports import ArtifactStore, FileWriter, GcReport
from corral.store.artifacts._gc import collect_garbage

__all__ = ["FsspecArtifactStore", "manifest_digest"]

CHUNK_SIZE = 1024 * 1024
# Multipart part size on object stores: bounds memory per upload and allows 160 GB files
# (S3 allows at most 10,000 parts).
WRITE_BLOCK_SIZE = 16 * 1024 * 1024
# Read-ahead on object stores: one ranged GET per 4 MiB keeps reads of big blobs cheap in memory.
READ_BLOCK_SIZE = 4 * 1024 * 1024
DIGEST_RE = re.compile(r"[0-9a-f]{64}")
_UPLOAD_ID_RE = re.compile(r"[0-9a-f]{32}")


def _canonical_json(files: Iterable[FileEntry]) -> bytes:
    body = {
        "files": [
            {"path": f.path, "sha256": f.sha256, "size": f.size}
            for f in sorted(files, key=lambda f: f.path)
        ]
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def manifest_digest(files: Iterable[FileEntry]) -> str:
    """The sha256 of the canonical JSON of ``files``, whatever their order."""
    return hashlib.sha256(_canonical_json(files)).hexdigest()


def _parse_entries(data: bytes) -> list[FileEntry]:
    body = json.loads(data)
    return [
        FileEntry(path=f["path"], size=int(f["size"]), sha256=f["sha256"]) for f in body["files"]
    ]


def _check_digest(entry: FileEntry) -> None:
    # The digest becomes part of a storage path: never let it carry '/' or '..'.
    if not DIGEST_RE.fullmatch(entry.sha256):
        raise InvalidArgument(
            f"file '{entry.path}' has an invalid sha256 {entry.sha256!r}: "
            "expected 64 lowercase hex characters"
        )


@functools.cache
def _cleaner() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="corral-staging-cleaner")


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FsspecArtifactStore(ArtifactStore):
    """Content-addressed bytes on a local folder, ``file://…`` or ``s3://bucket/prefix``."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        options = dict(storage_options or {})
        if fsspec.utils.get_protocol(url) not in ("file", "local"):
            # Other processes write the same bucket: a cached listing would hide their objects.
            options.setdefault("use_listings_cache", False)
        fs, root = fsspec.core.url_to_fs(url, **options)
        self.url = url
        self._fs: Any = fs
        self._local = isinstance(fs, LocalFileSystem)
        self._root: str = root.rstrip("/")

    # -- layout ---------------------------------------------------------------------------

    def _path(self, *parts: str) -> str:
        return "/".join((self._root, *parts))

    def _blob_path(self, digest: str) -> str:
        return self._path("blobs", "sha256", digest[:2], digest)

    def _manifest_path(self, digest: str) -> str:
        return self._path("manifests", "sha256", f"{digest}.json")

    def _entry_path(self, upload_id: str, path: str) -> str:
        # Keyed by the file's path, so writing a path again replaces its entry (last one wins).
        key = hashlib.sha256(path.encode()).hexdigest()
        return self._path("staging", upload_id, "entries", f"{key}.json")

    # -- small helpers --------------------------------------------------------------------

    def _put_bytes(self, path: str, data: bytes, *, durable: bool = True) -> None:
        """Write a small object whole: readers see the old bytes or the new, never a part.

        Staging bookkeeping skips the fsyncs (``durable=False``): after a crash an upload is
        abandoned anyway, and ``gc`` removes what is left of it.
        """
        if not self._local:
            self._fs.pipe_file(path, data)
            return
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                if durable:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            raise
        if durable:
            _fsync_dir(folder)

    def _require_upload(self, upload_id: str) -> None:
        if not _UPLOAD_ID_RE.fullmatch(upload_id) or not self._fs.exists(
            self._path("staging", upload_id, "created.json")
        ):
            raise UploadNotFound(upload_id)

    def _open_blob(self, digest: str) -> Any:
        if self._local:
            return open(self._blob_path(digest), "rb")
        return self._fs.open(self._blob_path(digest), "rb", block_size=READ_BLOCK_SIZE)

    # -- uploads --------------------------------------------------------------------------

    @override
    def begin_upload(self) -> str:
        upload_id = uuid.uuid4().hex
        marker = json.dumps({"created_at": time.time()}).encode()
        self._put_bytes(self._path("staging", upload_id, "created.json"), marker, durable=False)
        return upload_id

    @override
    def open_writer(self, upload_id: str, path: str, max_bytes: int) -> _StagedWriter:
        validate_artifact_path(path)
        if max_bytes < 0:
            raise InvalidArgument(f"max_bytes for file '{path}' must be >= 0, got {max_bytes}")
        self._require_upload(upload_id)
        part = self._path("staging", upload_id, "files", f"{uuid.uuid4().hex}.part")
        handle: Any
        if self._local:
            os.makedirs(os.path.dirname(part), exist_ok=True)
            handle = open(part, "wb")  # noqa: SIM115 (the writer owns it)
        else:
            handle = self._fs.open(part, "wb", block_size=WRITE_BLOCK_SIZE)
        return _StagedWriter(self, upload_id, path, part, handle, max_bytes)

    def _finish_part(self, handle: Any) -> None:
        if self._local:
            handle.flush()
            os.fsync(handle.fileno())
        handle.close()  # on object stores this completes the multipart upload

    def _drop_part(self, handle: Any, part: str) -> None:
        if not self._local and not handle.closed:
            handle.discard()  # aborts the multipart upload
            handle.closed = True
        handle.close()
        with contextlib.suppress(FileNotFoundError):
            self._fs.rm_file(part)

    def _publish(self, upload_id: str, part: str, entry: FileEntry) -> None:
        blob = self._blob_path(entry.sha256)
        if self._local:
            if os.path.exists(blob):
                os.utime(blob)  # a fresh mtime keeps it inside gc's grace period
                os.remove(part)
            else:
                os.makedirs(os.path.dirname(blob), exist_ok=True)
                os.replace(part, blob)
                _fsync_dir(os.path.dirname(blob))
        elif self._fs.exists(blob):
            self._fs.rm_file(part)
        else:
            self._fs.mv(part, blob)  # server-side copy: the object appears whole
        body = {"path": entry.path, "sha256": entry.sha256, "size": entry.size}
        self._put_bytes(
            self._entry_path(upload_id, entry.path), json.dumps(body).encode(), durable=False
        )

    @override
    def upload_entries(self, upload_id: str) -> list[FileEntry]:
        self._require_upload(upload_id)
        folder = self._path("staging", upload_id, "entries")
        try:
            paths = [p for p in self._fs.find(folder) if p.endswith(".json")]
        except FileNotFoundError:
            paths = []
        if not paths:
            return []
        entries = []
        for data in self._fs.cat(paths).values():
            body = json.loads(data)
            entries.append(FileEntry(path=body["path"], size=body["size"], sha256=body["sha256"]))
        return sorted(entries, key=lambda e: e.path)

    @override
    def discard_upload(self, upload_id: str) -> None:
        if not _UPLOAD_ID_RE.fullmatch(upload_id):
            return
        folder = self._path("staging", upload_id)
        if not self._local:
            with contextlib.suppress(FileNotFoundError):
                self._fs.rm(folder, recursive=True)
            return
        # Removing the marker ends the upload at once; the folder's few leftovers go in the
        # background, off the registration's path (and `gc` takes them if the process dies).
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._path("staging", upload_id, "created.json"))
        _cleaner().submit(shutil.rmtree, folder, True)

    # -- manifests ------------------------------------------------------------------------

    @override
    def put_manifest(self, files: list[FileEntry]) -> Manifest:
        seen: set[str] = set()
        for entry in files:
            validate_artifact_path(entry.path)
            _check_digest(entry)
            if entry.path in seen:
                raise InvalidArgument(f"file '{entry.path}' appears twice in the manifest")
            seen.add(entry.path)
        for entry in files:
            try:
                size = self._fs.info(self._blob_path(entry.sha256))["size"]
            except FileNotFoundError:
                raise IntegrityError(
                    f"file '{entry.path}' is not in the store (sha256 {entry.sha256}): "
                    "upload it before writing the manifest"
                ) from None
            if size != entry.size:
                raise IntegrityError(
                    f"file '{entry.path}' is stored with {size} bytes, not {entry.size} "
                    f"(sha256 {entry.sha256})"
                )
        data = _canonical_json(files)
        digest = hashlib.sha256(data).hexdigest()
        # Rewritten even when present: the fresh mtime keeps gc from collecting it before the
        # version that needs it is committed.
        self._put_bytes(self._manifest_path(digest), data)
        return Manifest(files=sorted(files, key=lambda f: f.path), digest=digest)

    @override
    def get_manifest(self, digest: str) -> Manifest:
        if not DIGEST_RE.fullmatch(digest):
            raise InvalidArgument(
                f"manifest digest {digest!r} is invalid: expected 64 lowercase hex characters"
            )
        try:
            data = self._fs.cat_file(self._manifest_path(digest))
        except FileNotFoundError:
            raise NotFound(f"manifest {digest} does not exist") from None
        found = hashlib.sha256(data).hexdigest()
        if found != digest:
            raise IntegrityError(f"manifest {digest} is corrupted: stored bytes hash to {found}")
        return Manifest(files=_parse_entries(data), digest=digest)

    # -- signatures -----------------------------------------------------------------------

    def _signature_path(self, model: str, version: int) -> str:
        validate_name("model", model)  # it becomes part of a storage path
        return self._path("signatures", model, f"{int(version)}.sigstore.json")

    @override
    def put_signature(self, model: str, version: int, data: bytes) -> None:
        self._put_bytes(self._signature_path(model, version), data)

    @override
    def find_signature(self, model: str, version: int) -> bytes | None:
        try:
            data: bytes = self._fs.cat_file(self._signature_path(model, version))
        except FileNotFoundError:
            return None
        return data

    # -- reading and checking -------------------------------------------------------------

    @override
    def read_file(self, entry: FileEntry) -> Iterator[bytes]:
        _check_digest(entry)
        return self._read_blob(entry)

    def _read_blob(self, entry: FileEntry) -> Iterator[bytes]:
        try:
            handle = self._open_blob(entry.sha256)
        except FileNotFoundError:
            raise IntegrityError(
                f"file '{entry.path}' is missing: no blob with sha256 {entry.sha256} in the store"
            ) from None
        hasher = hashlib.sha256()
        size = 0
        with handle:
            while chunk := handle.read(CHUNK_SIZE):
                hasher.update(chunk)
                size += len(chunk)
                yield chunk
        found = hasher.hexdigest()
        if found != entry.sha256 or size != entry.size:
            raise IntegrityError(
                f"file '{entry.path}' is corrupted: expected sha256 {entry.sha256} "
                f"({entry.size} bytes), found {found} ({size} bytes)"
            )

    @override
    def verify(self, manifest: Manifest) -> list[str]:
        problems = []
        for entry in manifest.files:
            try:
                _check_digest(entry)
                size = self._fs.info(self._blob_path(entry.sha256))["size"]
                if size != entry.size:
                    raise IntegrityError(
                        f"file '{entry.path}' is corrupted: expected sha256 {entry.sha256} "
                        f"({entry.size} bytes), found {size} bytes"
                    )
                for _ in self._read_blob(entry):
                    pass
            except FileNotFoundError:
                problems.append(
                    f"file '{entry.path}' is missing: no blob with sha256 {entry.sha256} "
                    "in the store"
                )
            except (IntegrityError, InvalidArgument) as exc:
                problems.append(exc.message)
        return problems

    def local_path(self, entry: FileEntry) -> str | None:
        """The blob's path on the local filesystem (unverified); None on object stores."""
        _check_digest(entry)
        return self._blob_path(entry.sha256) if self._local else None

    # -- garbage collection ---------------------------------------------------------------

    @override
    def gc(self, referenced_manifests: Iterable[str], grace_seconds: float) -> GcReport:
        if self._local:
            _cleaner().submit(lambda: None).result()  # let discarded uploads finish going
        return collect_garbage(
            self._fs, self._root, set(referenced_manifests), grace_seconds, now=time.time()
        )


class _StagedWriter(FileWriter):
    """Streams one file to a staging part, hashing as it goes; ``close`` publishes it."""

    def __init__(
        self,
        store: FsspecArtifactStore,
        upload_id: str,
        path: str,
        part: str,
        handle: Any,
        max_bytes: int,
    ) -> None:
        self._store = store
        self._upload_id = upload_id
        self._path = path
        self._part = part
        self._handle = handle
        self._max_bytes = max_bytes
        self._hasher = hashlib.sha256()
        self._size = 0
        self._done = False

    def _check_open(self) -> None:
        if self._done:
            raise ValueError(f"the writer of file '{self._path}' is closed")

    @override
    def write(self, chunk: bytes) -> None:
        self._check_open()
        if self._size + len(chunk) > self._max_bytes:
            self.abort()
            raise InvalidArgument(
                f"file '{self._path}' is larger than the limit of {self._max_bytes} bytes"
            )
        try:
            self._handle.write(chunk)
        except BaseException:
            self.abort()
            raise
        self._hasher.update(chunk)
        self._size += len(chunk)

    @override
    def close(self) -> FileEntry:
        self._check_open()
        self._done = True
        entry = FileEntry(path=self._path, size=self._size, sha256=self._hasher.hexdigest())
        try:
            self._store._finish_part(self._handle)
            self._store._publish(self._upload_id, self._part, entry)
        except BaseException:
            self._store._drop_part(self._handle, self._part)
            raise
        return entry

    @override
    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._store._drop_part(self._handle, self._part)
