"""Where log files live, and which of them a time window needs."""

from __future__ import annotations

import builtins
import json
from datetime import UTC, date, datetime, timedelta

import pyarrow.parquet as pq
from fsspec import AbstractFileSystem

DATE_PREFIX = "date="
COMPACT_PREFIX = "compact-"
# Parquet key-value metadata of a compact file: the JSON list of file names it replaces.
REPLACES_KEY = b"corral.replaces"


class LogFiles:
    """The ``predictions/`` and ``feedback/`` trees under ``<root>/monitoring``."""

    def __init__(self, fs: AbstractFileSystem, base: str) -> None:
        self.fs = fs
        self.base = base
        self._replaced: dict[str, frozenset[str]] = {}  # compact files never change

    def folder(self, kind: str, model: str, day: date) -> str:
        return f"{self.base}/{kind}/model={model}/{DATE_PREFIX}{day.isoformat()}"

    def list(
        self, kind: str, model: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[str]:
        """The Parquet files of the day partitions that overlap ``[start, end)``, as URLs."""
        model_folder = f"{self.base}/{kind}/model={model}"
        self.fs.invalidate_cache(model_folder)  # other processes add files
        try:
            days = self.fs.ls(model_folder, detail=False)
        except FileNotFoundError:
            return []
        first = start.astimezone(UTC).date() if start else date.min
        last = (end - timedelta(microseconds=1)).astimezone(UTC).date() if end else date.max
        files: list[str] = []
        for folder in sorted(days):
            name = folder.rstrip("/").rsplit("/", 1)[-1]
            if not name.startswith(DATE_PREFIX):
                continue
            try:
                day = date.fromisoformat(name[len(DATE_PREFIX) :])
            except ValueError:
                continue
            if first <= day <= last:
                files.extend(self.live(folder))
        return [self.url(path) for path in files]

    def parquet_files(self, folder: str) -> builtins.list[str]:
        """Every finished Parquet file of one partition (temporary dot-files left out)."""
        self.fs.invalidate_cache(folder)
        try:
            paths = self.fs.ls(folder, detail=False)
        except FileNotFoundError:
            return []
        return sorted(
            path
            for path in paths
            if path.endswith(".parquet") and not path.rsplit("/", 1)[-1].startswith(".")
        )

    def live(self, folder: str, paths: builtins.list[str] | None = None) -> builtins.list[str]:
        """The files of a partition to read: those that no compact file there replaces."""
        paths = self.parquet_files(folder) if paths is None else paths
        replaced: set[str] = set()
        for path in paths:
            if is_compact(path):
                replaced |= self.replaced_by(path)
        return [path for path in paths if path.rsplit("/", 1)[-1] not in replaced]

    def replaced_by(self, path: str) -> frozenset[str]:
        """The names of the files a compact file replaces (read from its footer once)."""
        found = self._replaced.get(path)
        if found is None:
            try:
                with self.fs.open(path, "rb") as handle:
                    metadata = pq.read_metadata(handle).metadata or {}
            except FileNotFoundError:
                # Deleted since the listing: a newer compact file replaces it and its files.
                return frozenset()
            found = frozenset(json.loads(metadata.get(REPLACES_KEY, b"[]")))
            self._replaced[path] = found
        return found

    def url(self, path: str) -> str:
        """A path DuckDB can open: plain for local files, ``proto://`` for registered ones."""
        if self.is_local:
            return path
        return str(self.fs.unstrip_protocol(path))

    @property
    def is_local(self) -> bool:
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        return "file" in protocols or "local" in protocols


def is_compact(path: str) -> bool:
    """Whether a path names a file written by compaction."""
    return path.rsplit("/", 1)[-1].startswith(COMPACT_PREFIX)
