"""Adaptive batching: requests that meet at a busy model share its next call.

A ``Batcher`` serialises the calls to one model. When the model is idle a request runs
at once, so a lone caller never waits; requests that arrive while a call is running
queue up and are all taken together when it finishes (up to ``max_batch_rows``). Their
matrices are concatenated along the rows, the outputs are split back, and each caller
gets exactly its own rows. Once a call ends, the next batch waits for more companions
only while they keep arriving (a loop turn at a time), and never past ``max_wait_ms``.

Calls run on the event loop while they are fast (a thread hop would cost more than the
call) and in the batcher's own worker thread otherwise, so a big model never stalls the
loop and one model is never called from two threads at once. An inline call holds the
loop, so nothing could queue behind it; instead, when the caller says other requests are
in flight (``pending``), a fast model's request is queued and the batch is started a
loop turn later, after the requests already being parsed have joined it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future as ThreadFuture
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np

from corral.errors import InvalidArgument, Unavailable
from corral.serving.predictor import Array, Outputs

# Calls faster than this on average run on the event loop: a thread hop costs ~50-100 µs.
INLINE_SECONDS = 1e-3
# Weight of the latest call in the running mean of call durations.
_SMOOTHING = 0.3

_Result: TypeAlias = Outputs | BaseException


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """How requests to one model are combined."""

    enabled: bool = True
    max_batch_rows: int = 1024
    max_wait_ms: float = 2.0

    def __post_init__(self) -> None:
        if self.max_batch_rows < 1:
            raise InvalidArgument(f"max_batch_rows must be at least 1, not {self.max_batch_rows}")
        if not self.max_wait_ms >= 0:  # also refuses NaN
            raise InvalidArgument(f"max_wait_ms must be 0 or more, not {self.max_wait_ms}")


@dataclass(slots=True)
class _Request:
    matrix: Array
    future: asyncio.Future[Outputs]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _rows_of(value: Any) -> int | None:
    """The first dimension of an output (None when it has none)."""
    shape = getattr(value, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) >= 1 else None
    try:
        return len(value)
    except TypeError:
        return None


class Batcher:
    """Serialises calls to one model and combines the requests that meet while it is busy.

    Args:
        call: The model: a 2-D array in, its rows' outputs out (an array, or a dict of
            arrays, rows first). It must not be called from elsewhere meanwhile.
        policy: Whether and how much to combine.
        on_batch: Told ``(requests, rows)`` of each call, on the event loop.
        name: How error messages name the model (``model 'churn' version 3``).
        pending: How many requests are in flight right now (this one included); above one,
            an idle batcher waits a loop turn for companions instead of running at once.
    """

    def __init__(
        self,
        call: Callable[[Array], Outputs],
        policy: BatchPolicy,
        *,
        on_batch: Callable[[int, int], None] | None = None,
        name: str = "the model",
        pending: Callable[[], int] | None = None,
    ) -> None:
        self._call = call
        self._policy = policy
        self._limit = policy.max_batch_rows if policy.enabled else 0
        self._linger = policy.max_wait_ms / 1000 if policy.enabled else 0.0
        self._on_batch = on_batch
        self._name = name
        self._pending = pending
        self._queue: deque[_Request] = deque()
        self._queued_rows = 0
        # True while a call runs or the next batch is being gathered; the queue is empty
        # whenever it is False.
        self._busy = False
        self._closed = False
        self._mean: float | None = None  # running mean of call durations, in seconds
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle_waiters: list[asyncio.Future[None]] = []

    @property
    def policy(self) -> BatchPolicy:
        return self._policy

    @property
    def queued(self) -> int:
        """Requests waiting for the model (not counting the call running now)."""
        return len(self._queue)

    async def submit(self, matrix: Array) -> Outputs:
        """The outputs for the rows of ``matrix`` (2-D), computed alone or in a batch."""
        if self._closed:
            raise Unavailable(f"{self._name} is being unloaded; retry the request")
        if getattr(matrix, "ndim", None) != 2:
            shape = list(np.shape(matrix))
            raise InvalidArgument(
                f"inputs must be a 2-D array (rows × features); got shape {shape}"
            )
        if not self._busy and self._inline() and not self._companions_coming():
            # Idle and fast: run now, on the loop, with no future and no wait.
            if self._on_batch is not None:
                self._on_batch(1, matrix.shape[0])
            started = time.perf_counter()
            try:
                outputs = self._call(matrix)
            finally:
                self._observe(time.perf_counter() - started)
            self._check(outputs, matrix.shape[0])
            return outputs
        loop = asyncio.get_running_loop()
        request = _Request(matrix, loop.create_future())
        self._queue.append(request)
        self._queued_rows += matrix.shape[0]
        if not self._busy:
            self._busy = True
            self._loop = loop
            if self._linger > 0 and self._companions_coming():
                loop.call_soon(self._gather, loop.time() + self._linger, 0)
            else:
                self._dispatch()
        return await request.future

    def _companions_coming(self) -> bool:
        return self._linger > 0 and self._pending is not None and self._pending() > 1

    async def aclose(self) -> None:
        """Refuse new requests, finish the pending ones, then stop the worker thread."""
        self._closed = True
        if self._busy:
            idle = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(idle)
            await idle
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    # -- scheduling (all on the event loop) ------------------------------------------

    def _inline(self) -> bool:
        return self._mean is not None and self._mean < INLINE_SECONDS

    def _observe(self, seconds: float) -> None:
        mean = self._mean
        self._mean = seconds if mean is None else mean + _SMOOTHING * (seconds - mean)

    def _take(self) -> list[_Request]:
        """The next batch: queued requests in order, up to the row limit and of one width."""
        batch: list[_Request] = []
        rows = 0
        queue = self._queue
        while queue:
            request = queue[0]
            size = request.matrix.shape[0]
            if request.future.done():  # its caller was cancelled
                queue.popleft()
                self._queued_rows -= size
                continue
            if batch and (
                rows + size > self._limit or request.matrix.shape[1] != batch[0].matrix.shape[1]
            ):
                break
            queue.popleft()
            self._queued_rows -= size
            batch.append(request)
            rows += size
        return batch

    def _dispatch(self) -> None:
        """Start the next batch, or go idle when nothing is left."""
        loop = self._loop
        assert loop is not None
        while True:
            batch = self._take()
            if not batch:
                self._go_idle()
                return
            matrices = [r.matrix for r in batch]
            if self._on_batch is not None:
                # Soon, not now: a failing callback must not leave the batcher stuck.
                loop.call_soon(self._on_batch, len(batch), sum(m.shape[0] for m in matrices))
            if not self._inline():
                self._start_in_thread(batch, matrices)
                return
            results, seconds = self._run(matrices)
            self._observe(seconds)
            self._deliver(batch, results)
            # An inline call cannot overlap new arrivals: whatever is queued now was
            # queued before it, so go on without gathering companions.

    def _start_in_thread(self, batch: list[_Request], matrices: list[Array]) -> None:
        loop = self._loop
        assert loop is not None
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="corral-batcher")

        def done(future: ThreadFuture[tuple[list[_Result], float]]) -> None:
            # A closed loop raises RuntimeError: nobody is left to answer.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._finished, batch, future)

        self._executor.submit(self._run, matrices).add_done_callback(done)

    def _finished(
        self, batch: list[_Request], future: ThreadFuture[tuple[list[_Result], float]]
    ) -> None:
        results: list[_Result]
        try:
            results, seconds = future.result()
            self._observe(seconds)
        except BaseException as exc:  # e.g. SystemExit raised by the model
            results = [exc] * len(batch)
        self._deliver(batch, results)
        if (
            self._queue
            and self._linger > 0
            and self._queued_rows < self._limit
            and not self._closed
        ):
            loop = self._loop
            assert loop is not None
            loop.call_soon(self._gather, loop.time() + self._linger, len(self._queue))
        else:
            self._dispatch()

    def _gather(self, deadline: float, seen: int) -> None:
        """Wait a loop turn at a time while companions keep arriving, up to the deadline."""
        loop = self._loop
        assert loop is not None
        count = len(self._queue)
        if (
            count > seen
            and self._queued_rows < self._limit
            and not self._closed
            and loop.time() < deadline
        ):
            loop.call_soon(self._gather, deadline, count)
        else:
            self._dispatch()

    def _deliver(self, batch: Sequence[_Request], results: Sequence[_Result]) -> None:
        for request, result in zip(batch, results, strict=True):
            if request.future.done():
                continue
            if isinstance(result, BaseException):
                request.future.set_exception(result)
            else:
                request.future.set_result(result)

    def _go_idle(self) -> None:
        self._busy = False
        for waiter in self._idle_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._idle_waiters.clear()

    # -- calling the model (on the loop or in the worker thread) ----------------------

    def _run(self, matrices: list[Array]) -> tuple[list[_Result], float]:
        """Each matrix's outputs or exception, and how long the model took."""
        started = time.perf_counter()
        results: list[_Result]
        if len(matrices) == 1:
            results = [self._run_alone(matrices[0])]
        else:
            try:
                outputs = self._call(np.concatenate(matrices))
            except Exception:
                # Find who is to blame: each request alone, so only the bad ones fail.
                results = [self._run_alone(m) for m in matrices]
            else:
                try:
                    results = self._split(outputs, [m.shape[0] for m in matrices])
                except Unavailable as exc:
                    results = [Unavailable(exc.message) for _ in matrices]
        return results, time.perf_counter() - started

    def _run_alone(self, matrix: Array) -> _Result:
        try:
            outputs = self._call(matrix)
            self._check(outputs, matrix.shape[0])
        except Exception as exc:
            return exc
        return outputs

    def _check(self, outputs: Outputs, rows: int) -> None:
        """Refuse outputs that do not have one row per input row (a broken model)."""
        values = outputs.items() if isinstance(outputs, dict) else [(None, outputs)]
        for key, value in values:
            got = _rows_of(value)
            what = "the outputs" if key is None else f"output '{key}'"
            if got is None:
                raise Unavailable(
                    f"{self._name} is broken: {what} has no rows; a model must return one "
                    "output row per input row"
                )
            if got != rows:
                raise Unavailable(
                    f"{self._name} returned {_plural(got, 'row')} for {_plural(rows, 'row')} "
                    f"of inputs ({what}); a model must return one output row per input row"
                )

    def _split(self, outputs: Outputs, sizes: list[int]) -> list[_Result]:
        self._check(outputs, sum(sizes))
        spans = list(itertools.pairwise(itertools.accumulate(sizes, initial=0)))
        if isinstance(outputs, dict):
            return [{k: v[a:b] for k, v in outputs.items()} for a, b in spans]
        return [outputs[a:b] for a, b in spans]
