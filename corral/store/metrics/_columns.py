"""A window of prediction logs as a ``ColumnSource``: inputs without ``in_``, and ``prediction``."""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
from typing_extensions import override

from corral.errors import NotFound
from corral.monitoring.ports import ColumnSource
from corral.store.metrics._layout import LogFiles
from corral.store.metrics._queries import Window, detect_task, one, open_window

_INPUT = "in_"
_PREDICTION = "prediction"
_NUMERIC_TYPES = {"DOUBLE", "FLOAT", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "NULL"}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class LogColumns(ColumnSource):
    """Reads one column of the window at a time with DuckDB (successful rows only)."""

    def __init__(
        self, files: LogFiles, model: str, start: datetime, end: datetime, *, version: int | None
    ) -> None:
        self._files = files
        self._model = model
        self._start = start
        self._end = end
        self._version = version

    @cached_property
    def _window(self) -> Window:
        return open_window(self._files, self._model, self._start, self._end, version=self._version)

    @cached_property
    def _double_files(self) -> dict[str, list[str]]:
        """For each input column, the files that stored it as numbers."""
        urls = self._files.list("predictions", self._model, self._start, self._end)
        if not urls:
            return {}
        listed = ", ".join("'" + url.replace("'", "''") + "'" for url in urls)
        found: dict[str, list[str]] = {}
        for file_name, name in self._window.con.sql(
            f"SELECT file_name, name FROM parquet_schema([{listed}]) "
            f"WHERE type = 'DOUBLE' AND starts_with(name, '{_INPUT}')"
        ).fetchall():
            found.setdefault(str(name), []).append(str(file_name))
        return found

    @cached_property
    def _kinds(self) -> dict[str, tuple[str, str]]:
        """Each column's kind and the SQL that reads it."""
        kinds: dict[str, tuple[str, str]] = {}
        for stored, duck_type in self._window.types.items():
            if not stored.startswith(_INPUT):
                continue
            column = _quoted(stored)
            if duck_type in _NUMERIC_TYPES or duck_type.startswith("DECIMAL("):
                kinds[stored[len(_INPUT) :]] = ("numeric", f"{column}::DOUBLE")
            elif duck_type in ("VARCHAR", "BOOLEAN"):
                kinds[stored[len(_INPUT) :]] = self._text_kind(stored, column)
            else:
                kinds[stored[len(_INPUT) :]] = ("other", column)
        task = detect_task(self._window) if not self._window.empty else None
        if task is not None and task.name == "regression":
            kinds[_PREDICTION] = ("numeric", "prediction_value")
        elif task is not None and task.name == "classification":
            kinds[_PREDICTION] = ("categorical", "prediction_label")
        return kinds

    def _text_kind(self, stored: str, column: str) -> tuple[str, str]:
        # Text in some files and numbers in others (the type changed mid-stream): numeric when
        # most values read as numbers; the others are counted as type errors.
        if stored not in self._double_files:
            return "categorical", f"{column}::VARCHAR"
        present, numbers = one(
            self._window.con,
            f"SELECT count({column}), count(TRY_CAST({column} AS DOUBLE)) "
            "FROM preds WHERE error IS NULL",
        )
        if numbers * 2 >= present:
            return "numeric", f"TRY_CAST({column} AS DOUBLE)"
        return "categorical", f"{column}::VARCHAR"

    @property
    @override
    def rows(self) -> int:
        if self._window.empty:
            return 0
        found = one(self._window.con, "SELECT count(*) FROM preds WHERE error IS NULL")
        return int(found[0])

    @override
    def kinds(self) -> dict[str, str]:
        return {name: kind for name, (kind, _) in self._kinds.items()}

    def _get(self, name: str) -> tuple[str, str]:
        try:
            return self._kinds[name]
        except KeyError:
            raise NotFound(
                f"the prediction log of model {self._model!r} has no column {name!r} in this "
                f"window; columns: {', '.join(self._kinds) or 'none'}"
            ) from None

    @override
    def column(self, name: str) -> npt.NDArray[Any]:
        kind, sql = self._get(name)
        found = self._window.con.sql(f"SELECT {sql} AS v FROM preds WHERE error IS NULL")
        values = found.fetchnumpy()["v"]
        if kind == "numeric":
            return np.ma.filled(np.ma.asarray(values, dtype=np.float64), np.nan)
        data = np.ma.getdata(values).astype(object)
        mask = np.ma.getmaskarray(values)
        data[mask] = None
        return data

    @override
    def type_errors(self, name: str) -> int:
        kind, _ = self._get(name)
        stored = _quoted(_INPUT + name)
        if name == _PREDICTION or self._window.types.get(_INPUT + name) != "VARCHAR":
            return 0
        if _INPUT + name not in self._double_files:
            return 0
        if kind == "numeric":
            query = (
                f"SELECT count({stored}) - count(TRY_CAST({stored} AS DOUBLE)) FROM preds "
                "WHERE error IS NULL"
            )
        else:
            files = ", ".join(
                "'" + url.replace("'", "''") + "'" for url in self._double_files[_INPUT + name]
            )
            query = (
                f"SELECT count({stored}) FROM preds WHERE error IS NULL AND filename IN ({files})"
            )
        found = one(self._window.con, query)
        return int(found[0])
