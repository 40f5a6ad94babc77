"""A ``ColumnSource`` over values already in memory (an example, a JSON body)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from corral.errors import InvalidArgument


class ArrayColumns:
    """Columns given as lists or arrays, typed the way a log or file would be."""

    def __init__(self, values: Mapping[str, Sequence[Any] | npt.NDArray[Any]]) -> None:
        self._columns: dict[str, npt.NDArray[Any]] = {}
        self._kinds: dict[str, str] = {}
        self._errors: dict[str, int] = {}
        lengths = {len(v) for v in values.values()}
        if len(lengths) > 1:
            raise InvalidArgument(f"columns have different lengths: {sorted(lengths)}")
        self._rows = lengths.pop() if lengths else 0
        for name, column in values.items():
            self._add(str(name), column)

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]]) -> ArrayColumns:
        names: list[str] = []
        for record in records:
            names.extend(k for k in record if k not in names)
        return cls({n: [r.get(n) for r in records] for n in names})

    def _add(self, name: str, column: Sequence[Any] | npt.NDArray[Any]) -> None:
        array = np.asarray(column, dtype=object) if not isinstance(column, np.ndarray) else column
        if array.dtype.kind in "biuf":
            self._columns[name] = array.astype(np.float64)
            self._kinds[name] = "categorical" if array.dtype.kind == "b" else "numeric"
            self._errors[name] = 0
            return
        present = [v for v in array.tolist() if v is not None]
        if any(isinstance(v, list | tuple | dict) for v in present):
            self._columns[name] = array
            self._kinds[name] = "other"
            self._errors[name] = 0
            return
        numbers = [v for v in present if isinstance(v, int | float) and not isinstance(v, bool)]
        if present and len(numbers) * 2 >= len(present):
            values = np.array(
                [
                    float(v) if isinstance(v, int | float) and not isinstance(v, bool) else np.nan
                    for v in array.tolist()
                ],
                dtype=np.float64,
            )
            self._columns[name] = values
            self._kinds[name] = "numeric"
            self._errors[name] = len(present) - len(numbers)
            return
        self._columns[name] = np.array(
            [None if v is None else str(v) for v in array.tolist()], dtype=object
        )
        self._kinds[name] = "categorical"
        self._errors[name] = len(numbers)

    @property
    def rows(self) -> int:
        return self._rows

    def kinds(self) -> dict[str, str]:
        return dict(self._kinds)

    def column(self, name: str) -> npt.NDArray[Any]:
        try:
            return self._columns[name]
        except KeyError:
            raise InvalidArgument(f"there is no column '{name}'") from None

    def type_errors(self, name: str) -> int:
        return self._errors.get(name, 0)
