"""Prediction logging off the request path: a bounded queue, flushed in batches by a thread.

``PredictionRecorder.record`` is called once per served request (success, or failure after a
route was resolved). It only decides sampling and appends a reference to the request's
input matrix and outputs to a queue: no conversion, no I/O, no waiting, no exception. A
background thread wakes every ``flush_seconds`` (sooner when a large batch is waiting),
turns the queued requests into columns (one row per input row, see ``PredictionBatch``),
computes class probabilities for the versions that have them, and hands one batch per
model and UTC day to the ``sink`` (``LogStore.write_predictions``).

Guarantees and policies:

- The queue holds at most ``max_rows`` rows, counting rows kept after a failed write. When
  it is full, new requests are not logged (the newest rows are dropped) and counted: the
  rows already queued are older and complete, and refusing costs the request path nothing.
- A sink failure (artifact store unavailable) keeps the batch and retries it on the next
  flush; serving is unaffected.
- ``close`` writes everything still queued (graceful shutdown loses nothing); after a hard
  crash at most the rows of the last flush interval are lost.
- Sampling is per request and deterministic: a request is logged when the CRC-32 of its id
  falls below ``sample_rate`` of the range, so every process agrees on the same request.
- Sensitive columns (``ColumnSpec.sensitive``) become ``sha256:<16 hex>`` of a salted
  SHA-256 of their text, or are left out, per the deployment's ``monitoring.sensitive``.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import math
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, NamedTuple, overload

import numpy as np

from corral.monitoring.labels import label_text, label_value
from corral.registry.entities import ColumnSpec
from corral.serving.inputs import is_numeric
from corral.serving.predictor import Array, Outputs, Predictor

if TYPE_CHECKING:
    from corral.serving.gateway import Route
    from corral.serving.metrics import ServingMetrics

log = logging.getLogger("corral.serving.recorder")

Sink = Callable[[str, Sequence[Mapping[str, Any]]], None]
OUTCOMES = ("written", "dropped", "sampled_out", "failed_flush")
_SCALE = float(2**32)
_DAY_SECONDS = 86_400


class _Entry(NamedTuple):
    """One request waiting to be logged (references only: converted in the flush thread)."""

    ts: float  # seconds since the epoch
    request_id: str
    route: Route
    version: int
    latency_ms: float
    error: str | None
    matrix: Array | None
    outputs: Outputs | None
    predictor: Predictor | None
    rows: int
    flags: Array | None = None  # per row: outside the reference ranges


def is_sampled(request_id: str, rate: float) -> bool:
    """Whether a request is logged at ``rate`` (the same answer in every process)."""
    if rate >= 1.0:
        return True
    return zlib.crc32(request_id.encode("utf-8", "surrogatepass")) < rate * _SCALE


def hash_value(value: Any, salt: bytes) -> str | None:
    """The log form of a sensitive value: ``sha256:`` and 16 hex digits (None stays None)."""
    text = _text(value)
    if text is None:
        return None
    return "sha256:" + hashlib.sha256(salt + text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class PredictionBatch(Sequence[dict[str, Any]]):
    """The log rows of one model and UTC day, held as columns.

    ``columns`` maps each column of the contract's prediction-log row to a NumPy array with
    one item per row: float64 (NaN = null), int32, datetime64[us] (UTC), object (``str``
    or ``None``), and for ``proba`` and vector inputs a 2-D float64 array (a row of NaN =
    null; object lists of floats when widths differ). Indexing or iterating gives the same
    rows as dicts (built once, on first use).
    """

    def __init__(self, model: str, day: date, columns: dict[str, Array]) -> None:
        self.model = model
        self.day = day
        self.columns = columns
        self._length = len(next(iter(columns.values()))) if columns else 0
        self._rows: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        return self.rows()[index]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows())

    def rows(self) -> list[dict[str, Any]]:
        """The batch as one dict per row (Python values, None for nulls)."""
        if self._rows is None:
            names = list(self.columns)
            lists = [_python_values(self.columns[name]) for name in names]
            self._rows = [
                dict(zip(names, values, strict=True)) for values in zip(*lists, strict=True)
            ]
        return self._rows


def _python_values(array: Array) -> list[Any]:
    if array.dtype.kind == "f" and array.ndim == 2:  # list cells; a row of NaN is null
        return [None if math.isnan(v[0]) else v for v in array.tolist()] if array.shape[1] else []
    if array.dtype.kind == "f":
        return [None if math.isnan(v) else v for v in array.tolist()]
    if array.dtype.kind == "M":
        return [v.replace(tzinfo=UTC) for v in array.astype("datetime64[us]").tolist()]
    return list(array.tolist())


class PredictionRecorder:
    """Logs served predictions through ``sink`` from a background thread (see the module)."""

    def __init__(
        self,
        sink: Sink,
        *,
        flush_seconds: float = 2.0,
        max_rows: int = 100_000,
        batch_rows: int | None = None,
        salt: bytes = b"",
        metrics: ServingMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Args:
        sink: writes one batch of one model (``LogStore.write_predictions``).
        batch_rows: wake the flush thread early once this many rows wait (default a
            quarter of ``max_rows``).
        salt: prefixed to sensitive values before hashing.
        """
        if flush_seconds <= 0 or max_rows < 1:
            raise ValueError("flush_seconds must be positive and max_rows at least 1")
        self._sink = sink
        self.flush_seconds = flush_seconds
        self.max_rows = max_rows
        self._batch_rows = batch_rows or max(1, max_rows // 4)
        self._salt = salt
        self._clock = clock
        self.metrics = metrics
        self._lock = threading.Lock()  # the queue and the counters
        self._flush_lock = threading.Lock()  # one flush at a time; owns _pending
        self._wake = threading.Event()
        self._queue: list[_Entry] = []
        self._pending: list[PredictionBatch] = []  # written once, failed: retried
        self._rows = 0  # queued + pending
        self._counts = dict.fromkeys(OUTCOMES, 0)
        self._reported = dict.fromkeys(OUTCOMES, 0)
        self._thread: threading.Thread | None = None
        self._closed = False
        self._stopping = False
        self._complained = False

    # -- the request path ---------------------------------------------------------------

    def record(
        self,
        route: Route,
        request_id: str,
        seconds: float,
        *,
        version: int | None = None,
        matrix: Array | None = None,
        outputs: Outputs | None = None,
        predictor: Predictor | None = None,
        error: str | None = None,
        out_of_range: Array | None = None,
    ) -> None:
        """Queue one request (never blocks on I/O, never raises).

        ``out_of_range``: a bool per row, true when the row was outside the version's
        reference ranges (one value for a failed request: refused for its ranges).
        """
        try:
            policy = route.deployment.monitoring
            if not policy.log:
                return
            if error is not None or matrix is None or outputs is None:
                rows, matrix, outputs, predictor = 1, None, None, None
                error = error or "unknown"
            else:
                rows = int(matrix.shape[0])
            flags = out_of_range if out_of_range is not None and len(out_of_range) == rows else None
            with self._lock:
                if not is_sampled(request_id, policy.sample_rate):
                    self._counts["sampled_out"] += rows
                    return
                if self._closed or self._rows + rows > self.max_rows:
                    self._counts["dropped"] += rows
                    return
                self._queue.append(
                    _Entry(
                        self._clock(),
                        request_id,
                        route,
                        route.version if version is None else version,
                        seconds * 1000.0,
                        error,
                        matrix,
                        outputs,
                        predictor,
                        rows,
                        flags,
                    )
                )
                self._rows += rows
                wake = self._rows >= self._batch_rows
            if self._thread is None:
                self.start()
            if wake:
                self._wake.set()
        except Exception:  # logging must never fail a prediction
            if not self._complained:
                self._complained = True
                log.exception("could not queue a prediction for the log; later ones may fail too")

    # -- the flush thread ---------------------------------------------------------------

    def start(self) -> None:
        """Start the flush thread (``record`` starts it on first use)."""
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(
                target=self._run, name="corral-prediction-log", daemon=True
            )
            self._thread.start()
        atexit.register(self.close)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            stopping = self._stopping
            try:
                self.flush()
            except Exception:  # a bug in conversion must not end logging for good
                log.exception("flushing the prediction log failed")
            if stopping:
                return

    def flush(self) -> int:
        """Write what is queued (and retry what failed before); how many rows were written."""
        with self._flush_lock:
            with self._lock:
                entries, self._queue = self._queue, []
            batches = self._pending
            self._pending = []
            batches.extend(self._convert(entries))
            written = 0
            for batch in batches:
                try:
                    self._sink(batch.model, batch)
                except Exception as exc:
                    self._pending.append(batch)
                    with self._lock:
                        self._counts["failed_flush"] += len(batch)
                    log.warning(
                        "could not write %d prediction log rows of model '%s' (%s); "
                        "keeping them to retry (%d rows held, limit %d)",
                        len(batch),
                        batch.model,
                        exc,
                        self._rows,
                        self.max_rows,
                    )
                else:
                    written += len(batch)
                    with self._lock:
                        self._counts["written"] += len(batch)
                        self._rows -= len(batch)
            self._report()
            return written

    def close(self) -> None:
        """Stop the thread after writing everything queued (a failed write is logged)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        atexit.unregister(self.close)
        self._stopping = True
        self._wake.set()
        if thread is not None:
            thread.join()
        self.flush()  # what the thread's last flush could not write gets one more try
        if self._pending:
            lost = sum(len(b) for b in self._pending)
            with self._lock:
                self._counts["dropped"] += lost
                self._rows -= lost
            self._pending = []
            self._report()
            log.error("lost %d prediction log rows: the log store stayed unavailable", lost)

    # -- figures ------------------------------------------------------------------------

    @property
    def queued_rows(self) -> int:
        """Rows in memory: queued, or kept after a failed write."""
        return self._rows

    def counts(self) -> dict[str, int]:
        """Rows by outcome so far: written, dropped, sampled_out, failed_flush."""
        with self._lock:
            return dict(self._counts)

    def _report(self) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        counts = self.counts()
        for outcome, total in counts.items():
            delta = total - self._reported[outcome]
            if delta > 0:
                metrics.log_rows.labels(outcome).inc(delta)
                self._reported[outcome] = total
        metrics.log_queue_rows.set(self._rows)

    # -- turning requests into rows ------------------------------------------------------

    def _convert(self, entries: list[_Entry]) -> list[PredictionBatch]:
        groups: dict[tuple[str, int], list[_Entry]] = {}
        for entry in entries:
            key = (entry.route.model, int(entry.ts // _DAY_SECONDS))
            groups.setdefault(key, []).append(entry)
        batches = []
        for (model, day), group in groups.items():
            try:
                columns = self._columns(group)
            except Exception:
                lost = sum(e.rows for e in group)
                with self._lock:
                    self._counts["dropped"] += lost
                    self._rows -= lost
                log.exception(
                    "could not turn %d prediction rows of '%s' into log rows", lost, model
                )
                continue
            when = datetime.fromtimestamp(day * _DAY_SECONDS, UTC).date()
            batches.append(PredictionBatch(model, when, columns))
        return batches

    def _columns(self, entries: list[_Entry]) -> dict[str, Array]:
        counts = np.fromiter((e.rows for e in entries), np.int64, len(entries))
        total = int(counts.sum())
        starts = np.cumsum(counts) - counts

        def repeat(values: list[Any], dtype: Any) -> Array:
            return np.repeat(np.array(values, dtype=dtype), counts)

        micros = np.array([round(e.ts * 1e6) for e in entries], dtype=np.int64)
        columns: dict[str, Array] = {
            "request_id": repeat([e.request_id for e in entries], object),
            "row": (np.arange(total) - np.repeat(starts, counts)).astype(np.int32),
            "ts": np.repeat(micros, counts).astype("datetime64[us]"),
            "model": repeat([e.route.model for e in entries], object),
            "version": repeat([e.version for e in entries], np.int32),
            "alias": repeat([e.route.alias for e in entries], object),
            "consumer": repeat([e.route.consumer for e in entries], object),
            "latency_ms": repeat([e.latency_ms for e in entries], np.float64),
            "error": repeat([e.error for e in entries], object),
            "out_of_range": _flags(entries, starts, total),
        }
        served = [i for i, e in enumerate(entries) if e.error is None]
        label = _nulls(total, object)
        value = _nulls(total, np.float64)
        score = _nulls(total, np.float64)
        proba = _nulls(total, object)  # all null unless a version gives probabilities
        inputs: dict[str, Array] = {}
        if served:
            positions = [np.arange(starts[i], starts[i] + counts[i]) for i in served]
            self._outputs(entries, served, positions, label, value)
            proba = self._proba(entries, served, positions, score, total)
            self._inputs(entries, served, positions, total, inputs)
        columns.update(
            prediction_label=label, prediction_value=value, score=score, proba=proba, **inputs
        )
        return columns

    @staticmethod
    def _outputs(
        entries: list[_Entry],
        served: list[int],
        positions: list[Array],
        label: Array,
        value: Array,
    ) -> None:
        parts = [_main_output(entries[i].outputs, entries[i].rows) for i in served]
        usable = [(p, pos) for p, pos in zip(parts, positions, strict=True) if p is not None]
        if not usable:
            return
        where = np.concatenate([pos for _, pos in usable])
        chunks = [p for p, _ in usable]
        kinds = {c.dtype.kind for c in chunks}
        outputs = np.concatenate(chunks if len(kinds) == 1 else [c.astype(object) for c in chunks])
        try:
            # Few distinct answers (classes): convert each once.
            unique, inverse = np.unique(outputs, return_inverse=True)
        except TypeError:  # mixed types that do not sort
            unique, inverse = outputs, np.arange(len(outputs))
        texts = _objects([label_text(v) for v in unique.tolist()])
        numbers = np.array([_number(label_value(v)) for v in unique.tolist()], dtype=np.float64)
        label[where] = texts[inverse.ravel()]
        value[where] = numbers[inverse.ravel()]

    @staticmethod
    def _proba(
        entries: list[_Entry],
        served: list[int],
        positions: list[Array],
        score: Array,
        total: int,
    ) -> Array:
        found: list[tuple[Array, Array]] = []
        by_predictor: dict[int, tuple[Predictor, list[int]]] = {}
        for k, i in enumerate(served):
            predictor = entries[i].predictor
            if predictor is not None and predictor.supports_proba:
                by_predictor.setdefault(id(predictor), (predictor, []))[1].append(k)
        for predictor, picked in by_predictor.values():
            matrices = [entries[served[k]].matrix for k in picked]
            try:
                result = predictor.predict_proba(np.concatenate(matrices))  # type: ignore[arg-type]
            except Exception as exc:
                log.warning("predict_proba failed while logging (%s); no probabilities logged", exc)
                continue
            if isinstance(result, dict):
                continue
            table = np.asarray(result, dtype=np.float64)
            if table.ndim != 2 or table.shape[1] < 1:
                continue
            where = np.concatenate([positions[k] for k in picked])
            score[where] = table[:, 1] if table.shape[1] == 2 else table.max(axis=1)
            found.append((where, table))
        widths = {table.shape[1] for _, table in found}
        if len(widths) == 1:  # one 2-D array: no Python object per row
            proba = np.full((total, widths.pop()), np.nan)
            for where, table in found:
                proba[where] = table
            return proba
        proba = _nulls(total, object)
        for where, table in found:
            for row, values in zip(where.tolist(), table.tolist(), strict=True):
                proba[row] = values
        return proba

    def _inputs(
        self,
        entries: list[_Entry],
        served: list[int],
        positions: list[Array],
        total: int,
        inputs: dict[str, Array],
    ) -> None:
        # Requests laid out alike (same signature, policy and width) are converted together.
        segments: dict[tuple[int, str, int], tuple[tuple[ColumnSpec, ...], list[int]]] = {}
        for k, i in enumerate(served):
            entry = entries[i]
            matrix = entry.matrix
            assert matrix is not None
            width = matrix.shape[1] if matrix.ndim == 2 else 1
            policy = entry.route.deployment.monitoring.sensitive
            key = (id(entry.route.columns), policy, width)
            segments.setdefault(key, (entry.route.columns, []))[1].append(k)
        for (_, policy, width), (specs, picked) in segments.items():
            block = np.concatenate([_two_d(entries[served[k]].matrix) for k in picked])
            where = np.concatenate([positions[k] for k in picked])
            for spec, values in _split(block, specs, width):
                if spec.sensitive and policy == "drop":
                    continue
                name = f"in_{spec.name}"
                if spec.sensitive:
                    cells: Array = _objects([hash_value(v, self._salt) for v in values[:, 0]])
                elif values.shape[1] > 1 or len(spec.shape) > 1:
                    cells = _floats(values)
                elif is_numeric(spec) and values.dtype.kind in "biuf":
                    cells = values[:, 0].astype(np.float64)
                elif is_numeric(spec):
                    cells = _numbers_or_text(values[:, 0])
                else:
                    cells = _objects([_text(v) for v in values[:, 0]])
                _place(inputs, name, cells, where, total)


def _flags(entries: list[_Entry], starts: Array, total: int) -> Array:
    """The ``out_of_range`` column: false for rows not flagged (or not checked)."""
    flags = np.zeros(total, dtype=bool)
    for entry, start in zip(entries, starts.tolist(), strict=True):
        if entry.flags is not None:
            flags[start : start + entry.rows] = entry.flags
    return flags


def _nulls(total: int, dtype: Any) -> Array:
    if dtype is object:
        return np.full(total, None, dtype=object)
    return np.full(total, np.nan, dtype=dtype)


def _objects(values: list[Any]) -> Array:
    """A 1-D object array of ``values`` (lists stay whole cells)."""
    array = np.empty(len(values), dtype=object)
    for index, item in enumerate(values):
        array[index] = item
    return array


def _place(inputs: dict[str, Array], name: str, cells: Array, where: Array, total: int) -> None:
    """Put one segment's cells of a column at their rows (a column's type may widen to objects)."""
    column = inputs.get(name)
    if column is None and len(where) == total and cells.dtype.kind == "f":
        inputs[name] = np.ascontiguousarray(cells)  # the whole batch: already in row order
        return
    if column is None:
        shape = (total, *cells.shape[1:])
        column = np.full(shape, np.nan) if cells.dtype.kind == "f" else _nulls(total, object)
    elif column.dtype.kind == "f" and (
        cells.dtype.kind != "f" or column.shape[1:] != cells.shape[1:]
    ):
        column = _objects(_python_values(column))
    if column.dtype.kind != "f" and cells.dtype.kind == "f":
        cells = _objects(_python_values(cells))
    column[where] = cells
    inputs[name] = column


def _two_d(matrix: Array | None) -> Array:
    assert matrix is not None
    return matrix if matrix.ndim == 2 else matrix.reshape(len(matrix), -1)


def _split(
    block: Array, specs: tuple[ColumnSpec, ...], width: int
) -> Iterator[tuple[ColumnSpec, Array]]:
    """Each signature column and its slice of the input matrix (features by index if none)."""
    widths = [_width(spec) for spec in specs]
    if not specs or None in widths or sum(w or 0 for w in widths) != width:
        for index in range(width):
            yield ColumnSpec(str(index), str(block.dtype)), block[:, index : index + 1]
        return
    offset = 0
    for spec, size in zip(specs, widths, strict=True):
        assert size is not None
        yield spec, block[:, offset : offset + size]
        offset += size


def _width(spec: ColumnSpec) -> int | None:
    if len(spec.shape) <= 1:
        return 1
    if len(spec.shape) == 2 and spec.shape[1] > 0:
        return spec.shape[1]
    return None


def _floats(values: Array) -> Array:
    try:
        return values.astype(np.float64)
    except (TypeError, ValueError):
        return np.array([[_number(label_value(v)) for v in row] for row in values.tolist()])


def _numbers_or_text(values: Array) -> Array:
    """A numeric column sent as objects: float64 if every value is a number, else text."""
    try:
        return values.astype(np.float64)
    except (TypeError, ValueError):
        return _objects([_text(v) for v in values])


def _number(value: float | None) -> float:
    return math.nan if value is None else value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return None
    return label_text(value)


def _main_output(outputs: Outputs | None, rows: int) -> Array | None:
    """The output that is the prediction: ``predict`` (or the first) of several; 1-D."""
    if outputs is None:
        return None
    if isinstance(outputs, dict):
        if not outputs:
            return None
        outputs = outputs.get("predict", next(iter(outputs.values())))
    array = np.asarray(outputs)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or len(array) != rows:
        return None  # several values per row: no single label to log
    return array
