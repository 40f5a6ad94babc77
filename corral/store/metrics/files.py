"""A standalone Parquet or CSV file as a ``ColumnSource`` for drift reports.

Parquet is read one column at a time (string columns straight into dictionary codes);
a CSV file is parsed once by pyarrow and kept as an Arrow table.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from corral.errors import InvalidArgument, NotFound

__all__ = ["FileColumns"]

# A string column whose present values are mostly numbers is a numeric column whose type
# changed mid-stream; the rest are counted as type errors.
MOSTLY = 0.5
_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$|^\s*[-+]?(inf|infinity|nan)\s*$"
_MAGIC = b"PAR1"


def _kind_of(data_type: pa.DataType) -> str:
    if pa.types.is_dictionary(data_type):
        return _kind_of(data_type.value_type)
    if (
        pa.types.is_integer(data_type)
        or pa.types.is_floating(data_type)
        or pa.types.is_decimal(data_type)
        or pa.types.is_null(data_type)
    ):
        return "numeric"
    if (
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_boolean(data_type)
    ):
        return "categorical"
    return "other"


def _is_text(data_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(data_type):
        return _is_text(data_type.value_type)
    return bool(pa.types.is_string(data_type) or pa.types.is_large_string(data_type))


class FileColumns:
    """A Parquet (detected by its ``PAR1`` magic) or CSV file, local or at an fsspec URL."""

    def __init__(self, path_or_url: str, options: dict[str, Any] | None = None) -> None:
        self.location = str(path_or_url)
        self._options = options or {}
        self._parquet: pq.ParquetFile | None = None
        self._table: pa.Table | None = None
        self._handle: Any = None
        # Text columns judged numeric: name -> how many present values were not numbers.
        self._numeric_text: dict[str, int] = {}
        self._open()
        self._schema = self._parquet.schema_arrow if self._parquet else self._table_schema()
        self._judged: dict[str, str] | None = None
        # Text columns read while judging, kept (compact, dictionary-encoded) until used.
        self._read_ahead: dict[str, pa.DictionaryArray] = {}

    # -- opening ---------------------------------------------------------------------

    def _open(self) -> None:
        scheme = urlparse(self.location).scheme
        try:
            if len(scheme) > 1 and scheme != "file":
                import fsspec

                fs, path = fsspec.core.url_to_fs(self.location, **self._options)
                self._handle = fs.open(path, "rb")
                source: Any = self._handle
            else:
                # pyarrow reads a local path natively, faster than through a Python file.
                source = self.location.removeprefix("file://")
                with open(source, "rb") as head:
                    magic = head.read(4)
            if self._handle is not None:
                magic = self._handle.read(4)
                self._handle.seek(0)
        except FileNotFoundError as exc:
            raise NotFound(f"data file '{self.location}' does not exist") from exc
        except OSError as exc:
            raise InvalidArgument(f"cannot read data file '{self.location}': {exc}") from exc
        self._source = source
        try:
            if magic == _MAGIC:
                self._parquet = pq.ParquetFile(source)
            elif self._handle is not None:
                self._table = self._read_csv(self._handle.read())
            else:
                with open(source, "rb") as whole:
                    self._table = self._read_csv(whole.read())
        except (pa.ArrowException, OSError, ValueError) as exc:
            self.close()
            kind = "Parquet" if magic == _MAGIC else "CSV"
            raise InvalidArgument(
                f"cannot read '{self.location}' as {kind}: {exc}; give a Parquet file or a CSV "
                "file with a header row"
            ) from exc

    def _read_csv(self, data: bytes) -> pa.Table:
        if not data.strip():
            raise ValueError("the file is empty")
        # A column that holds numbers first and text later fails the typed read: read the
        # offending columns as text and judge them like any text column.
        as_text: dict[str, pa.DataType] = {}
        for _ in range(10_000):
            try:
                return pcsv.read_csv(
                    pa.py_buffer(data), convert_options=pcsv.ConvertOptions(column_types=as_text)
                )
            except pa.ArrowInvalid as exc:
                name = self._failing_column(data, str(exc))
                if name is None or name in as_text:
                    raise
                as_text[name] = pa.string()
        raise ValueError("too many columns change type")

    @staticmethod
    def _failing_column(data: bytes, message: str) -> str | None:
        marker = "In CSV column #"
        if marker not in message:
            return None
        index = int(message.split(marker, 1)[1].split(":", 1)[0])
        names = pcsv.open_csv(pa.py_buffer(data)).schema.names
        return names[index] if index < len(names) else None

    def _table_schema(self) -> pa.Schema:
        assert self._table is not None
        return self._table.schema

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> FileColumns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ColumnSource -----------------------------------------------------------------

    @property
    def rows(self) -> int:
        if self._parquet is not None:
            return int(self._parquet.metadata.num_rows)
        assert self._table is not None
        return int(self._table.num_rows)

    def kinds(self) -> dict[str, str]:
        return dict(self._kinds)

    @property
    def _kinds(self) -> dict[str, str]:
        # Judged on first use: text columns are read once to tell numbers from text.
        if self._judged is None:
            self._judged = {f.name: self._judge(f) for f in self._schema}
        return self._judged

    def type_errors(self, name: str) -> int:
        return self._numeric_text.get(name, 0)

    def column(self, name: str) -> npt.NDArray[Any]:
        array = self._arrow(name)
        if self._kinds[name] == "numeric":
            if _is_text(array.type):
                return _text_numbers(array)
            if pa.types.is_null(array.type):
                return np.full(len(array), np.nan)
            floats = pc.cast(array, pa.float64())
            return np.asarray(floats.to_numpy(zero_copy_only=False), dtype=np.float64)
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        if pa.types.is_boolean(array.type):
            array = pc.cast(array, pa.string())
        return np.asarray(array.to_numpy(zero_copy_only=False), dtype=object)

    def encoded(self, name: str) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """A categorical column as ``(categories, codes)``, codes -1 for missing."""
        array = self._read_ahead.pop(name, None)
        if array is None:
            array = self._arrow(name)
        if pa.types.is_boolean(array.type) or pa.types.is_null(array.type):
            array = pc.cast(array, pa.string())
        if not pa.types.is_dictionary(array.type):
            array = pc.dictionary_encode(array)
        categories = np.asarray(array.dictionary.to_pylist(), dtype=object)
        codes = pc.fill_null(array.indices, -1).to_numpy(zero_copy_only=False)
        return categories, codes.astype(np.int64, copy=False)

    # -- reading ----------------------------------------------------------------------

    def _arrow(self, name: str) -> pa.Array:
        if name not in self._schema.names:
            raise NotFound(f"'{self.location}' has no column '{name}'")
        if self._parquet is not None:
            field = self._schema.field(name)
            text = [name] if _is_text(field.type) else None
            reader = pq.ParquetFile(
                self._source, metadata=self._parquet.metadata, read_dictionary=text
            )
            table = reader.read(columns=[name])
            chunked = table.column(0)
        else:
            assert self._table is not None
            chunked = self._table.column(name)
        if chunked.num_chunks == 0:
            return pa.array([], type=chunked.type)
        return chunked.combine_chunks()

    def _judge(self, field: pa.Field) -> str:
        kind = _kind_of(field.type)
        if not _is_text(field.type):
            return kind
        array = self._arrow(field.name)
        if not pa.types.is_dictionary(array.type):
            array = pc.dictionary_encode(array)
        looks_numeric = pc.match_substring_regex(array.dictionary, _NUMBER, ignore_case=True)
        looks = np.asarray(pc.fill_null(looks_numeric, False).to_numpy(zero_copy_only=False))
        indices = array.indices.to_numpy(zero_copy_only=False)
        present = indices[array.indices.is_valid().to_numpy(zero_copy_only=False)]
        if len(present) == 0:
            return kind
        numeric = int(looks[present.astype(np.int64)].sum())
        if numeric / len(present) <= MOSTLY:
            if len(array.dictionary) * 10 <= len(array):
                self._read_ahead[field.name] = array
            return kind
        self._numeric_text[field.name] = len(present) - numeric
        return "numeric"


def _text_numbers(array: pa.Array) -> npt.NDArray[np.float64]:
    """Text to float64: numbers parse, anything else (and null) is NaN."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    looks = pc.match_substring_regex(array, _NUMBER, ignore_case=True)
    numbers = pc.if_else(pc.fill_null(looks, False), pc.utf8_trim_whitespace(array), None)
    floats = pc.cast(numbers, pa.float64())
    return np.asarray(floats.to_numpy(zero_copy_only=False), dtype=np.float64)
