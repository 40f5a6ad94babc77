"""Compaction of the log's day partitions: many small files become one, readers see no change."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from corral.store.metrics import ParquetLogStore
from corral.store.metrics import _compaction as compaction
from corral.store.metrics._layout import REPLACES_KEY, LogFiles
from tests.fixtures.s3 import S3Location

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=3)  # ``older_than``: T0's day is a past day
NO_GRACE = timedelta(0)


@pytest.fixture
def store(tmp_path: Path) -> ParquetLogStore:
    return ParquetLogStore(str(tmp_path / "artifacts"))


def _prediction(index: int, **inputs: Any) -> dict[str, Any]:
    score = (index * 37 % 100) / 100
    return {
        "request_id": f"r{index}",
        "row": 0,
        "ts": T0 + timedelta(seconds=index * 7),
        "model": "churn",
        "version": 1,
        "alias": "prod",
        "consumer": None,
        "latency_ms": 1.0 + index % 13,
        "error": "timeout" if index % 17 == 0 else None,
        "prediction_label": str(int(score > 0.5)),
        "prediction_value": float(score > 0.5),
        "score": score,
        "proba": [1 - score, score],
        **{f"in_{name}": value for name, value in inputs.items()},
    }


def _fill(store: ParquetLogStore, files: int, per_file: int = 20, start: int = 0) -> int:
    """Write ``files`` prediction files and as many feedback files; return the next index."""
    index = start
    for _ in range(files):
        rows = [_prediction(i, age=float(i % 50)) for i in range(index, index + per_file)]
        store.write_predictions("churn", rows)
        store.write_feedback(
            "churn",
            [
                {
                    "request_id": f"r{i}",
                    "row": 0,
                    "label_text": str(i % 2),
                    "label_value": float(i % 2),
                    "received_at": T0 + timedelta(hours=5),
                }
                for i in range(index, index + per_file, 2)
            ],
        )
        index += per_file
    return index


def _files(store: ParquetLogStore) -> LogFiles:
    return store._files


def _folder(store: ParquetLogStore, kind: str = "predictions") -> str:
    return _files(store).folder(kind, "churn", T0.date())


def _names(store: ParquetLogStore, kind: str = "predictions") -> list[str]:
    return [path.rsplit("/", 1)[-1] for path in _files(store).parquet_files(_folder(store, kind))]


def _buckets(store: ParquetLogStore) -> list[dict[str, Any]]:
    return store.buckets("churn", T0, T0 + timedelta(hours=12), 3600)


def _same_figures(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> None:
    assert len(before) == len(after)
    for old, new in zip(before, after, strict=True):
        assert old.keys() == new.keys()
        for key, value in old.items():
            if isinstance(value, float):
                assert math.isclose(value, new[key], rel_tol=1e-9, abs_tol=1e-12), key
            else:
                assert value == new[key], key


def _read_rows(store: ParquetLogStore) -> list[tuple[str, int]]:
    """The (request_id, row) pairs a reader sees now, duplicates included."""
    urls = _files(store).list("predictions", "churn")
    listed = ", ".join(f"'{url}'" for url in urls)
    with duckdb.connect() as con:
        found = con.sql(
            f"SELECT request_id, row FROM read_parquet([{listed}], union_by_name = true)"
        ).fetchall()
    return [(str(request_id), int(row)) for request_id, row in found]


def test_compaction_merges_a_days_files_into_one_with_the_same_figures(
    store: ParquetLogStore,
) -> None:
    _fill(store, 30)
    before = _buckets(store)
    scores_before = store.scores("churn", T0, T0 + timedelta(days=1))
    assert len(_names(store)) == 30

    counts = store.compact(older_than=LATER, grace=NO_GRACE)

    assert counts == {"partitions": 2, "files": 60, "written": 2, "deleted": 60}
    for kind in ("predictions", "feedback"):
        (name,) = _names(store, kind)
        assert name.startswith("compact-")
    after = _buckets(store)
    _same_figures(before, after)
    assert sum(bucket["requests"] for bucket in after) == 600
    assert sum(bucket["labelled"] for bucket in after) > 0
    scores_after = store.scores("churn", T0, T0 + timedelta(days=1))
    for old, new in zip(scores_before, scores_after, strict=True):
        assert sorted(map(str, old)) == sorted(map(str, new))
    assert store.known_request_ids("churn", ["r0", "r599", "r600"]) == {"r0", "r599"}


def test_compact_file_lists_the_names_it_replaces(store: ParquetLogStore) -> None:
    _fill(store, 3)
    originals = set(_names(store))

    store.compact("churn", older_than=LATER, grace=timedelta(hours=1))

    compacts = [name for name in _names(store) if name.startswith("compact-")]
    (compact,) = compacts
    path = f"{_folder(store)}/{compact}"
    metadata = pq.read_metadata(path).metadata
    assert set(json.loads(metadata[REPLACES_KEY])) == originals
    assert pq.read_metadata(path).num_rows == 60


def test_reader_sees_every_row_once_at_each_step_of_a_compaction(
    store: ParquetLogStore,
) -> None:
    _fill(store, 10)
    files, folder = _files(store), _folder(store)
    expected = sorted(_read_rows(store))
    assert len(expected) == 200

    merge = compaction.plan(files, folder)  # step 1: nothing changes on disk
    assert sorted(_read_rows(store)) == expected
    (group,) = merge.groups
    compaction.write_merged(files, folder, group)  # step 2: old and new files side by side
    assert len(_names(store)) == 11
    assert sorted(_read_rows(store)) == expected
    # A process stopped here leaves a correct store; the replaced files wait for the grace.
    assert compaction.delete_replaced(files, folder, grace=timedelta(minutes=10)) == 0
    assert sorted(_read_rows(store)) == expected
    # The next run deletes the leftovers (step 3) and has nothing to merge.
    counts = store.compact("churn", older_than=LATER, grace=NO_GRACE)
    assert counts["deleted"] == 10 + 10  # predictions' leftovers, feedback merged now
    assert counts["partitions"] == 1  # feedback only
    assert len(_names(store)) == 1
    assert sorted(_read_rows(store)) == expected


def test_replaced_files_are_deleted_once_the_compact_file_is_older_than_the_grace(
    store: ParquetLogStore,
) -> None:
    _fill(store, 4)
    files, folder = _files(store), _folder(store)
    (group,) = compaction.plan(files, folder).groups
    written = compaction.write_merged(files, folder, group, now=T0)

    soon = T0 + timedelta(minutes=5)
    assert compaction.delete_replaced(files, folder, grace=timedelta(minutes=10), now=soon) == 0
    late = T0 + timedelta(minutes=11)
    assert compaction.delete_replaced(files, folder, grace=timedelta(minutes=10), now=late) == 4
    assert files.parquet_files(folder) == [written]
    assert len(_read_rows(store)) == 80


def test_file_written_during_compaction_is_kept_and_read(store: ParquetLogStore) -> None:
    index = _fill(store, 5)
    files, folder = _files(store), _folder(store)
    (group,) = compaction.plan(files, folder).groups
    _fill(store, 1, start=index)  # a server flushes after the list was taken
    compaction.write_merged(files, folder, group)
    compaction.delete_replaced(files, folder, grace=NO_GRACE)

    names = _names(store)
    assert len(names) == 2
    assert sum(name.startswith("compact-") for name in names) == 1
    rows = _read_rows(store)
    assert len(rows) == len(set(rows)) == 120


def test_compacting_again_merges_the_compact_file_with_new_files(
    store: ParquetLogStore,
) -> None:
    index = _fill(store, 3)
    store.compact("churn", older_than=LATER, grace=timedelta(hours=1))  # leftovers stay
    _fill(store, 2, start=index)
    expected = sorted(_read_rows(store))
    assert len(expected) == 100

    counts = store.compact("churn", older_than=LATER, grace=timedelta(hours=1))

    assert counts["files"] == 3 * 2  # one compact file and two new files, of each kind
    # The newest compact file replaces the older one and, through it, the first files:
    # whichever is deleted first, no row shows twice.
    assert sorted(_read_rows(store)) == expected
    files, folder = _files(store), _folder(store)
    for path in [p for p in files.parquet_files(folder) if "compact-" not in p][:2]:
        files.fs.rm_file(path)
    assert sorted(_read_rows(store)) == expected
    assert compaction.delete_replaced(files, folder, grace=NO_GRACE) > 0
    assert len(_names(store)) == 1
    assert sorted(_read_rows(store)) == expected


def test_second_compaction_changes_nothing(store: ParquetLogStore) -> None:
    _fill(store, 6)
    store.compact(older_than=LATER, grace=NO_GRACE)
    names = _names(store)

    counts = store.compact(older_than=LATER, grace=NO_GRACE)

    assert counts == {"partitions": 0, "files": 0, "written": 0, "deleted": 0}
    assert _names(store) == names


def test_files_of_different_versions_merge_by_column_name(store: ParquetLogStore) -> None:
    store.write_predictions("churn", [_prediction(i, age=float(i)) for i in range(10)])
    store.write_predictions(
        "churn", [_prediction(i, age=float(i), plan="gold") for i in range(10, 20)]
    )
    store.write_predictions("churn", [_prediction(i, plan="basic") for i in range(20, 30)])
    end = T0 + timedelta(days=1)
    source = store.columns("churn", T0, end)
    before = {name: source.column(name).tolist() for name in ("age", "plan")}
    kinds_before = source.kinds()

    counts = store.compact(older_than=LATER, grace=NO_GRACE)

    assert counts["written"] == 1
    (name,) = _names(store)
    schema = pq.read_schema(f"{_folder(store)}/{name}")
    assert {"in_age", "in_plan"} <= set(schema.names)
    source = store.columns("churn", T0, end)
    assert source.kinds() == kinds_before
    after = {name: source.column(name).tolist() for name in ("age", "plan")}
    for column in ("age", "plan"):
        assert sorted(map(str, after[column])) == sorted(map(str, before[column]))


def test_column_whose_type_changed_stays_in_separate_files(store: ParquetLogStore) -> None:
    for start in (0, 10):
        store.write_predictions(
            "churn", [_prediction(i, zip=float(i)) for i in range(start, start + 10)]
        )
    for start in (20, 30):
        store.write_predictions(
            "churn", [_prediction(i, zip=f"z{i}") for i in range(start, start + 10)]
        )
    end = T0 + timedelta(days=1)
    source = store.columns("churn", T0, end)
    kinds, type_errors = source.kinds(), source.type_errors("zip")

    counts = store.compact(older_than=LATER, grace=NO_GRACE)

    assert counts == {"partitions": 1, "files": 4, "written": 2, "deleted": 4}
    assert all(name.startswith("compact-") for name in _names(store))
    source = store.columns("churn", T0, end)
    assert source.kinds() == kinds
    assert source.type_errors("zip") == type_errors
    assert len(_read_rows(store)) == 40


def test_todays_partition_is_merged_only_when_it_is_busy(store: ParquetLogStore) -> None:
    now = datetime.now(UTC)
    rows = [{**_prediction(0), "ts": now}]
    for _ in range(3):
        store.write_predictions("churn", rows)

    assert store.compact("churn", grace=NO_GRACE)["partitions"] == 0
    assert store.compact("churn", older_than=now + timedelta(days=1), grace=NO_GRACE) == {
        "partitions": 1,
        "files": 3,
        "written": 1,
        "deleted": 3,
    }


def test_compaction_of_a_model_without_logs_does_nothing(store: ParquetLogStore) -> None:
    assert store.compact("nobody") == {"partitions": 0, "files": 0, "written": 0, "deleted": 0}
    assert store.compact() == {"partitions": 0, "files": 0, "written": 0, "deleted": 0}


def test_compaction_on_s3_keeps_the_figures(s3_artifact_url: S3Location) -> None:
    url, options = s3_artifact_url
    store = ParquetLogStore(url, options)
    _fill(store, 8)
    before = _buckets(store)
    files, folder = _files(store), _folder(store)
    (group,) = compaction.plan(files, folder).groups
    compaction.write_merged(files, folder, group)
    _same_figures(before, _buckets(store))  # compact and replaced files side by side

    counts = store.compact(older_than=LATER, grace=NO_GRACE)

    assert counts["deleted"] == 8 + 8
    assert len(_names(store)) == 1
    assert len(_names(store, "feedback")) == 1
    _same_figures(before, _buckets(store))
    assert store.compact(older_than=LATER, grace=NO_GRACE)["written"] == 0
    assert sum(bucket["requests"] for bucket in before) == 160


def test_server_schedule_compacts_past_days(tmp_path: Path) -> None:
    from corral.api.schedule import compact_forever
    from corral.config import Settings
    from corral.wiring import open_corral

    wired = open_corral(Settings(home=tmp_path / "home"))
    try:
        logs = wired.monitoring.logs
        assert isinstance(logs, ParquetLogStore)
        _fill(logs, 3)

        async def run_once() -> None:
            task = asyncio.create_task(compact_forever(wired, 3600, first=0))
            for _ in range(200):
                await asyncio.sleep(0.05)
                if any(name.startswith("compact-") for name in _names(logs)):
                    break
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        asyncio.run(run_once())
        assert len(_names(logs)) == 1 + 3  # merged; replaced files wait for the grace period
        assert len(_files(logs).live(_folder(logs))) == 1
    finally:
        wired.close()


def test_monitor_compact_command_merges_the_homes_log(tmp_path: Path) -> None:
    from corral.config import Settings

    home = tmp_path / "home"
    logs = ParquetLogStore(Settings(home=home).resolved_artifact_url)
    _fill(logs, 3)
    env = {key: value for key, value in os.environ.items() if not key.startswith("CORRAL_")}

    done = subprocess.run(
        [sys.executable, "-m", "corral", "--home", str(home), "monitor", "compact", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"partitions": 2, "files": 6, "written": 2, "deleted": 0}
    assert len(_files(logs).live(_folder(logs))) == 1


def test_compaction_stopped_while_writing_leaves_no_file_behind(store: ParquetLogStore) -> None:
    _fill(store, 4)
    files, folder = _files(store), _folder(store)
    names = _names(store)
    (group,) = compaction.plan(files, folder).groups
    files.fs.rm_file(group.paths[-1])  # the last input vanishes half-way through the merge
    expected = sorted(_read_rows(store))

    with pytest.raises(FileNotFoundError):
        compaction.write_merged(files, folder, group)

    assert _names(store) == names[:-1]
    assert sorted(Path(folder).iterdir()) == sorted(Path(folder) / name for name in names[:-1])
    assert sorted(_read_rows(store)) == expected


def test_half_written_compact_file_is_removed_a_day_later(store: ParquetLogStore) -> None:
    _fill(store, 2)
    files, folder = _files(store), _folder(store)
    leftover = Path(folder) / f".compact-{T0:%Y%m%dT%H%M%S}-0123abcd.parquet.tmp"
    leftover.write_bytes(b"PAR1")

    assert (
        compaction.delete_replaced(files, folder, grace=NO_GRACE, now=T0 + timedelta(hours=1)) == 0
    )
    assert leftover.exists()
    assert (
        compaction.delete_replaced(files, folder, grace=NO_GRACE, now=T0 + timedelta(days=2)) == 1
    )
    assert not leftover.exists()
    assert len(_read_rows(store)) == 40
