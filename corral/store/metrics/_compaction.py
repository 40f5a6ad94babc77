"""Compaction: the many small files of a day partition merged into one ``compact-`` file.

Three steps, each leaving a correct store if the process stops after it:

1. ``plan``: list the partition and pick the files to merge (those no compact file replaces).
2. ``write_merged``: stream them, row group by row group, into a new ``compact-`` file whose
   Parquet key-value metadata lists the names of every file it replaces. From the moment it
   is visible, readers (``LogFiles.live``) skip those files; before, they read the old ones.
3. ``delete_replaced``: delete the replaced files once the compact file is older than a grace
   period, so that a reader that listed the partition just before keeps its files.

A file written during compaction is not in the list and stays. One compaction at a time per
artifact root (the server that runs the schedule): two at once could write two compact files
with the same rows.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from corral.store.metrics._layout import COMPACT_PREFIX, REPLACES_KEY, LogFiles, is_compact

_STAMP = "%Y%m%dT%H%M%S"
_ROW_GROUP_ROWS = 128 * 1024
_STALE_TEMPORARY = timedelta(days=1)  # small input files are gathered into row groups this big


@dataclass
class Group:
    """Files of one partition whose schemas unify, to become one compact file."""

    schema: pa.Schema
    paths: list[str]


@dataclass
class Plan:
    """What compacting one partition merges."""

    folder: str
    groups: list[Group]  # only groups of at least ``min_files`` files

    @property
    def files(self) -> int:
        return sum(len(group.paths) for group in self.groups)


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def plan(files: LogFiles, folder: str, *, min_files: int = 2) -> Plan:
    """The live files of ``folder``, grouped by compatible schemas (usually one group).

    Columns whose type changed between files (numbers in some, text in others) stay in
    separate files so that readers see exactly the types they saw before.
    """
    groups: list[Group] = []
    for path in files.live(folder):
        with files.fs.open(path, "rb") as handle:
            schema = pq.read_schema(handle).remove_metadata()
        for group in groups:
            try:
                group.schema = pa.unify_schemas([group.schema, schema], promote_options="default")
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                continue
            group.paths.append(path)
            break
        else:
            groups.append(Group(schema, [path]))
    return Plan(folder, [group for group in groups if len(group.paths) >= max(min_files, 2)])


def _aligned(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with the columns of ``schema``, in its order (absent ones as nulls)."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            column = table.column(field.name)
            columns.append(column if column.type == field.type else column.cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _row_groups(files: LogFiles, group: Group) -> Iterator[pa.Table]:
    """The rows of the group's files, one input row group at a time."""
    for path in group.paths:
        with files.fs.open(path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            for index in range(parquet.num_row_groups):
                yield _aligned(parquet.read_row_group(index), group.schema)


def write_merged(files: LogFiles, folder: str, group: Group, *, now: datetime | None = None) -> str:
    """Write one compact file of the group's rows; return its path.

    Its metadata lists the group's files and every file they replace themselves, so that
    leftovers of an earlier, interrupted compaction stay hidden whatever is deleted first.
    """
    replaces = {_name(path) for path in group.paths}
    for path in group.paths:
        if is_compact(path):
            replaces |= files.replaced_by(path)
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    name = f"{COMPACT_PREFIX}{moment:{_STAMP}}-{uuid.uuid4().hex[:8]}.parquet"
    path = f"{folder}/{name}"
    schema = group.schema.with_metadata({REPLACES_KEY: json.dumps(sorted(replaces)).encode()})
    # A dot-name the listing skips, moved in one step once whole (a server-side copy on an
    # object store): a compaction stopped half-way never shows a partial file with a full list.
    temporary = f"{folder}/.{name}.tmp"
    try:
        with (
            files.fs.open(temporary, "wb") as sink,
            pq.ParquetWriter(sink, schema, compression="zstd") as writer,
        ):
            pending: list[pa.Table] = []
            rows = 0
            for table in _row_groups(files, group):
                pending.append(table)
                rows += table.num_rows
                if rows >= _ROW_GROUP_ROWS:
                    writer.write_table(pa.concat_tables(pending), row_group_size=rows)
                    pending, rows = [], 0
            if pending:
                writer.write_table(pa.concat_tables(pending), row_group_size=rows)
        files.fs.mv(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            files.fs.rm_file(temporary)
        raise
    return path


def compacted_at(path: str) -> datetime | None:
    """When a compact file was written (from its name), or None for other files."""
    name = _name(path)
    if not name.startswith(COMPACT_PREFIX):
        return None
    try:
        return datetime.strptime(name[len(COMPACT_PREFIX) :][:15], _STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def delete_replaced(
    files: LogFiles, folder: str, *, grace: timedelta, now: datetime | None = None
) -> int:
    """Delete the files replaced by compact files older than ``grace``; return how many."""
    moment = now or datetime.now(UTC)
    paths = files.parquet_files(folder)
    replaced: set[str] = set()
    for path in paths:
        written = compacted_at(path)
        if written is not None and moment - written >= grace:
            replaced |= files.replaced_by(path)
    doomed = [path for path in paths if _name(path) in replaced]
    doomed += _stale_temporaries(files, folder, moment)
    # Plain files first, compact ones last: a compact file's list must outlive its files.
    doomed.sort(key=is_compact)
    for path in doomed:
        try:
            files.fs.rm_file(path)
        except FileNotFoundError:
            continue
    if doomed:
        files.fs.invalidate_cache(folder)
    return len(doomed)


def _stale_temporaries(files: LogFiles, folder: str, moment: datetime) -> list[str]:
    """Half-written compact files of a compaction that stopped over a day ago."""
    try:
        paths = files.fs.ls(folder, detail=False)
    except FileNotFoundError:
        return []
    stale = []
    for path in paths:
        name = _name(path)
        if name.startswith("." + COMPACT_PREFIX) and name.endswith(".tmp"):
            written = compacted_at(name[1:])
            if written is not None and moment - written >= _STALE_TEMPORARY:
                stale.append(path)
    return stale
