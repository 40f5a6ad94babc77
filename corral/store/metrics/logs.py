"""``ParquetLogStore``: the prediction log and feedback as Parquet files under the artifact root."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from fsspec.core import url_to_fs
from typing_extensions import override

from corral.monitoring.ports import Bucket, ColumnSource, LogStore
from corral.store.metrics import _compaction, _queries
from corral.store.metrics._columns import LogColumns
from corral.store.metrics._layout import DATE_PREFIX, LogFiles
from corral.store.metrics._parquet import (
    FEEDBACK_COLUMNS,
    PREDICTION_COLUMNS,
    by_date,
    to_datetime,
    to_table,
    write_table,
)

_KINDS = ("predictions", "feedback")
# Today's partition is still being written to; it is merged only once it holds this many files.
BUSY_PARTITION_FILES = 500
# Replaced files stay this long after their compact file appears, for readers that listed
# the partition just before.
REPLACED_GRACE = timedelta(minutes=10)


class ParquetLogStore(LogStore):
    """Writes whole Parquet files per model and day; reads them with DuckDB (``LogStore``)."""

    def __init__(self, root_url: str, options: dict[str, Any] | None = None) -> None:
        self._fs, root = url_to_fs(root_url, **(options or {}))
        self._root = root.rstrip("/")
        self._files = LogFiles(self._fs, f"{self._root}/monitoring")

    @override
    def write_predictions(self, model: str, rows: Sequence[Mapping[str, Any]]) -> None:
        # One file per UTC day the rows span, so that day partitions stay exact.
        self._write("predictions", model, rows, "ts", PREDICTION_COLUMNS)

    @override
    def write_feedback(self, model: str, rows: Sequence[Mapping[str, Any]]) -> None:
        self._write("feedback", model, rows, "received_at", FEEDBACK_COLUMNS)

    def _write(
        self,
        kind: str,
        model: str,
        rows: Sequence[Mapping[str, Any]],
        time_column: str,
        columns: Mapping[str, Any],
    ) -> None:
        for day, group in sorted(by_date(rows, time_column).items()):
            folder = self._files.folder(kind, model, day)
            write_table(self._fs, folder, to_table(group, columns), local=self._files.is_local)

    @override
    def known_request_ids(self, model: str, request_ids: Sequence[str]) -> set[str]:
        return _queries.known_request_ids(self._files, model, request_ids)

    @override
    def buckets(
        self,
        model: str,
        start: datetime,
        end: datetime,
        bucket_seconds: int,
        *,
        version: int | None = None,
    ) -> list[Bucket]:
        start, end = _utc(start), _utc(end)
        return _queries.buckets(self._files, model, start, end, bucket_seconds, version=version)

    @override
    def scores(
        self, model: str, start: datetime, end: datetime, *, version: int | None = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[Any]]:
        start, end = _utc(start), _utc(end)
        return _queries.scores(self._files, model, start, end, version=version)

    @override
    def columns(
        self, model: str, start: datetime, end: datetime, *, version: int | None = None
    ) -> ColumnSource:
        start, end = _utc(start), _utc(end)
        return LogColumns(self._files, model, start, end, version=version)

    def compact(
        self,
        model: str | None = None,
        *,
        older_than: datetime | None = None,
        min_files: int = 2,
        grace: timedelta = REPLACED_GRACE,
    ) -> dict[str, int]:
        """Merge the files of each day partition into one, and delete replaced files.

        Partitions of days before ``older_than`` (default: today, UTC) are merged when they
        hold at least ``min_files`` files, later ones only past ``BUSY_PARTITION_FILES``.
        Files replaced by a compact file are deleted once it is older than ``grace`` (by a
        later run with the default). Returns counts: ``partitions`` and ``files`` merged,
        ``written`` compact files, ``deleted`` files.
        """
        cutoff = _utc(older_than).date() if older_than else datetime.now(UTC).date()
        counts = {"partitions": 0, "files": 0, "written": 0, "deleted": 0}
        for kind in _KINDS:
            for name in [model] if model is not None else self._models(kind):
                for day, folder in self._days(kind, name):
                    counts["deleted"] += _compaction.delete_replaced(
                        self._files, folder, grace=grace
                    )
                    needed = min_files if day < cutoff else BUSY_PARTITION_FILES + 1
                    merge = _compaction.plan(self._files, folder, min_files=needed)
                    if not merge.groups:
                        continue
                    counts["partitions"] += 1
                    counts["files"] += merge.files
                    for group in merge.groups:
                        _compaction.write_merged(self._files, folder, group)
                        counts["written"] += 1
                    if grace <= timedelta(0):
                        counts["deleted"] += _compaction.delete_replaced(
                            self._files, folder, grace=grace
                        )
        return counts

    def _models(self, kind: str) -> list[str]:
        folder = f"{self._files.base}/{kind}"
        self._fs.invalidate_cache(folder)
        try:
            found = self._fs.ls(folder, detail=False)
        except FileNotFoundError:
            return []
        names = (path.rstrip("/").rsplit("/", 1)[-1] for path in found)
        return sorted(name[len("model=") :] for name in names if name.startswith("model="))

    def _days(self, kind: str, model: str) -> list[tuple[date, str]]:
        folder = f"{self._files.base}/{kind}/model={model}"
        self._fs.invalidate_cache(folder)
        try:
            found = self._fs.ls(folder, detail=False)
        except FileNotFoundError:
            return []
        days: list[tuple[date, str]] = []
        for path in sorted(found):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if not name.startswith(DATE_PREFIX):
                continue
            try:
                days.append((date.fromisoformat(name[len(DATE_PREFIX) :]), path.rstrip("/")))
            except ValueError:
                continue
        return days


def _utc(moment: datetime) -> datetime:
    """The same instant in UTC (a naive datetime is taken as UTC)."""
    return to_datetime(moment).astimezone(UTC)
