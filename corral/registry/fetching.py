"""Verified local copies of a version's files, shared by the SDK and the serving gateway.

A version is fetched into ``<cache>/versions/<manifest digest>``: each file is written to a
temporary name, hashed on the way, and renamed only when its digest and size match; the
folder appears whole (an ``os.replace`` of a staging folder) or not at all.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

from corral.errors import IntegrityError
from corral.registry.entities import FileEntry, ModelVersion

Progress = Callable[[int], None]
Chunks = Callable[[FileEntry], Iterable[bytes]]


def write_verified(
    entry: FileEntry, dest: Path, chunks: Iterable[bytes], tick: Progress | None
) -> None:
    """Write one file under ``dest``; ``IntegrityError`` (and nothing left) if its bytes differ."""
    final = dest.joinpath(*entry.path.split("/"))
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.part")
    digest = hashlib.sha256()
    size = 0
    try:
        with part.open("wb") as fh:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                fh.write(chunk)
                if tick:
                    tick(len(chunk))
        if digest.hexdigest() != entry.sha256 or size != entry.size:
            raise IntegrityError(
                f"file '{entry.path}' is corrupted: expected sha256 {entry.sha256} "
                f"({entry.size} bytes), received {digest.hexdigest()} ({size} bytes)"
            )
        os.replace(part, final)
    finally:
        part.unlink(missing_ok=True)


def cache_problems(folder: Path, files: list[FileEntry]) -> list[str]:
    """The files of ``folder`` that are missing or whose bytes differ from the manifest."""
    problems = []
    for entry in files:
        path = folder.joinpath(*entry.path.split("/"))
        try:
            with path.open("rb") as fh:
                digest = hashlib.file_digest(fh, "sha256").hexdigest()
        except OSError:
            problems.append(entry.path)
            continue
        if digest != entry.sha256:
            problems.append(entry.path)
    return problems


def _extra_files(folder: Path, files: list[FileEntry]) -> bool:
    """Whether ``folder`` holds anything (a file, a link) the manifest does not list."""
    listed = {entry.path for entry in files}
    return any(
        (p.is_symlink() or p.is_file()) and p.relative_to(folder).as_posix() not in listed
        for p in folder.rglob("*")
    )


def fetch_version(
    version: ModelVersion,
    cache_dir: Path,
    chunks: Chunks,
    verify: Callable[[Path], None] | None = None,
) -> Path:
    """A local folder with the version's verified files (cached by manifest digest).

    Cached files are re-hashed on every call: a changed byte or an extra file means a fresh
    download. ``verify`` (the signature check) then runs on the folder about to be returned.
    """
    folder = cache_dir / "versions" / version.manifest_digest
    if (
        folder.is_dir()
        and not cache_problems(folder, version.files)
        and not _extra_files(folder, version.files)
    ):
        if verify is not None:
            verify(folder)
        return folder
    staging = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}")
    try:
        for entry in version.files:
            write_verified(entry, staging, chunks(entry), None)
        shutil.rmtree(folder, ignore_errors=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if verify is not None:
        verify(folder)
    return folder
