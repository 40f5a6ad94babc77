"""Batcher: concurrent requests share one model call, each caller gets its own rows back."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from corral.errors import InvalidArgument, Unavailable
from corral.serving import Batcher, BatchPolicy

pytestmark = pytest.mark.anyio

POISON = -1.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Model:
    """A fake model: records each call's rows and thread; can hold its first call."""

    def __init__(
        self,
        outputs: Callable[[np.ndarray], Any] | None = None,
        *,
        hold_first: bool = False,
        delay: float = 0.0,
    ) -> None:
        self.outputs = outputs or (lambda x: x[:, 0] * 1000 + x[:, 1])
        self.rows: list[int] = []
        self.threads: list[int] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        if not hold_first:
            self.gate.set()
        self.delay = delay
        self._active = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> Any:
        with self._lock:
            self._active += 1
            self.most_at_once = max(self.most_at_once, self._active)
        try:
            self.rows.append(x.shape[0])
            self.threads.append(threading.get_ident())
            self.entered.set()
            self.gate.wait()
            if self.delay:
                time.sleep(self.delay)
            if (x == POISON).any():
                raise ValueError("poisoned row")
            return self.outputs(x)
        finally:
            with self._lock:
                self._active -= 1


def rows(first: float, count: int = 1, width: int = 2) -> np.ndarray:
    """``count`` distinct rows whose first column starts at ``first``."""
    matrix = np.zeros((count, width))
    matrix[:, 0] = np.arange(first, first + count)
    matrix[:, 1] = 7
    return matrix


async def _queued(batcher: Batcher, count: int) -> None:
    while batcher.queued < count:
        await asyncio.sleep(0)


async def _hold(model: Model, batcher: Batcher) -> asyncio.Task[Any]:
    """Start a first call that holds the model until ``model.gate`` is set."""
    first = asyncio.ensure_future(batcher.submit(rows(10_000)))
    await asyncio.to_thread(model.entered.wait)
    return first


async def _submit_all(batcher: Batcher, matrices: list[np.ndarray]) -> list[asyncio.Task[Any]]:
    tasks = [asyncio.ensure_future(batcher.submit(m)) for m in matrices]
    await _queued(batcher, len(matrices))
    return tasks


async def test_sequential_requests_each_run_alone() -> None:
    model = Model()
    batcher = Batcher(model, BatchPolicy())
    for i in range(5):
        out = await batcher.submit(rows(i))
        assert isinstance(out, np.ndarray)
        assert out.tolist() == [i * 1000 + 7]
    assert model.rows == [1] * 5
    await batcher.aclose()


async def test_a_fast_model_runs_at_once_on_the_loop_without_suspending() -> None:
    model = Model()
    batcher = Batcher(model, BatchPolicy(max_wait_ms=1000))
    await batcher.submit(rows(0))  # the first call's duration is unknown: it runs off the loop
    coroutine = batcher.submit(rows(3))
    with pytest.raises(StopIteration) as finished:
        coroutine.send(None)  # completes in one step: no await, no wait for companions
    assert finished.value.value.tolist() == [3007]
    assert model.threads[-1] == threading.get_ident()
    await batcher.aclose()


async def test_a_model_that_becomes_slow_moves_off_the_loop() -> None:
    model = Model()
    batcher = Batcher(model, BatchPolicy())
    await batcher.submit(rows(0))
    await batcher.submit(rows(1))
    assert model.threads[-1] == threading.get_ident()
    model.delay = 0.01
    await batcher.submit(rows(2))
    model.delay = 0.0
    await batcher.submit(rows(3))
    assert model.threads[-1] != threading.get_ident()
    await batcher.aclose()


async def test_requests_arriving_during_a_slow_call_share_the_next_call() -> None:
    model = Model(hold_first=True)
    batches: list[tuple[int, int]] = []
    batcher = Batcher(model, BatchPolicy(), on_batch=lambda n, r: batches.append((n, r)))
    first = await _hold(model, batcher)
    tasks = await _submit_all(batcher, [rows(i) for i in range(64)])
    model.gate.set()
    results = await asyncio.gather(first, *tasks)
    assert model.rows == [1, 64]
    assert batches == [(1, 1), (64, 64)]
    assert [r.tolist() for r in results[1:]] == [[i * 1000 + 7] for i in range(64)]
    assert model.most_at_once == 1
    await batcher.aclose()


async def test_each_caller_gets_exactly_its_own_rows() -> None:
    model = Model(hold_first=True)
    batcher = Batcher(model, BatchPolicy())
    first = await _hold(model, batcher)
    sizes = [3, 1, 2, 5, 1]
    starts = [100 * i for i in range(len(sizes))]
    tasks = await _submit_all(batcher, [rows(s, n) for s, n in zip(starts, sizes, strict=True)])
    model.gate.set()
    await first
    for task, start, size in zip(tasks, starts, sizes, strict=True):
        expected = [(start + k) * 1000 + 7 for k in range(size)]
        assert (await task).tolist() == expected
    assert model.rows == [1, sum(sizes)]
    await batcher.aclose()


async def test_dict_outputs_are_split_per_caller() -> None:
    model = Model(lambda x: {"label": x[:, 0].astype(int), "score": x[:, :2] / 10}, hold_first=True)
    batcher = Batcher(model, BatchPolicy())
    first = await _hold(model, batcher)
    tasks = await _submit_all(batcher, [rows(1, 2), rows(50, 1), rows(90, 3)])
    model.gate.set()
    await first
    outs = [await t for t in tasks]
    assert [o["label"].tolist() for o in outs] == [[1, 2], [50], [90, 91, 92]]
    assert outs[1]["score"].tolist() == [[5.0, 0.7]]
    assert model.rows == [1, 6]
    await batcher.aclose()


async def test_object_matrices_are_combined() -> None:
    model = Model(lambda x: np.array([f"{a}-{b}" for a, b in x]), hold_first=True)
    batcher = Batcher(model, BatchPolicy())
    first = await _hold(model, batcher)
    inputs = [np.array([["a", 1]], dtype=object), np.array([["b", 2], ["c", 3]], dtype=object)]
    tasks = await _submit_all(batcher, inputs)
    model.gate.set()
    await first
    assert [(await t).tolist() for t in tasks] == [["a-1"], ["b-2", "c-3"]]
    assert model.rows == [1, 3]
    await batcher.aclose()


async def test_a_batch_keeps_gathering_while_companions_keep_arriving() -> None:
    model = Model(hold_first=True)
    batcher = Batcher(model, BatchPolicy(max_batch_rows=8, max_wait_ms=1000))
    first = await _hold(model, batcher)
    tasks: list[asyncio.Task[Any]] = []
    for i in range(16):  # one new request every turn of the loop
        tasks.append(asyncio.ensure_future(batcher.submit(rows(i))))
        if i == 0:
            model.gate.set()
        await asyncio.sleep(0)
    await asyncio.gather(first, *tasks)
    # However early the held call ended, the next batch waited for companions until full.
    assert model.rows[:2] == [1, 8]
    assert sum(model.rows) == 17
    await batcher.aclose()


async def test_batches_hold_at_most_max_batch_rows() -> None:
    model = Model(hold_first=True)
    batcher = Batcher(model, BatchPolicy(max_batch_rows=4))
    first = await _hold(model, batcher)
    tasks = await _submit_all(batcher, [rows(i) for i in range(10)])
    model.gate.set()
    await asyncio.gather(first, *tasks)
    assert model.rows == [1, 4, 4, 2]
    await batcher.aclose()


async def test_a_request_bigger_than_a_batch_runs_alone_and_whole() -> None:
    model = Model(hold_first=True)
    batcher = Batcher(model, BatchPolicy(max_batch_rows=4))
    first = await _hold(model, batcher)
    tasks = await _submit_all(batcher, [rows(0, 2), rows(10, 10), rows(30), rows(40)])
    model.gate.set()
    await first
    results = [await t for t in tasks]
    assert model.rows == [1, 2, 10, 2]
    assert results[1].tolist() == [(10 + k) * 1000 + 7 for k in range(10)]
    await batcher.aclose()


async def test_matrices_of_different_widths_are_not_combined() -> None:
    model = Model(lambda x: x.sum(axis=1), hold_first=True)
    batcher = Batcher(model, BatchPolicy())
    first = await _hold(model, batcher)
    tasks = await _submit_all(batcher, [rows(1), rows(2, width=3), rows(3, width=3), rows(4)])
    model.gate.set()
    await first
    assert [(await t).tolist() for t in tasks] == [[8.0], [9.0], [10.0], [11.0]]
    assert model.rows == [1, 1, 2, 1]
    await batcher.aclose()


async def test_a_failing_request_fails_alone_and_the_others_get_results() -> None:
    model = Model(hold_first=True)
    batcher = Batcher(model, BatchPolicy())
    first = await _hold(model, batcher)
    tasks = await _submit_all(batcher, [rows(1), rows(POISON), rows(3, 2)])
    model.gate.set()
    await first
    assert (await tasks[0]).tolist() == [1007]
    with pytest.raises(ValueError, match="poisoned row"):
        await tasks[1]
    assert (await tasks[2]).tolist() == [3007, 4007]
    assert model.rows == [1, 4, 1, 1, 2]  # the combined call, then each request alone
    await batcher.aclose()


async def test_a_lone_request_s_exception_propagates_unchanged() -> None:
    error = KeyError("no such feature")

    def broken(x: np.ndarray) -> np.ndarray:
        raise error

    batcher = Batcher(broken, BatchPolicy())
    for _ in range(3):  # off the loop, then inline
        with pytest.raises(KeyError) as raised:
            await batcher.submit(rows(1))
        assert raised.value is error
    await batcher.aclose()


async def test_outputs_with_the_wrong_number_of_rows_are_refused() -> None:
    model = Model(lambda x: np.zeros(1), hold_first=True)
    batcher = Batcher(model, BatchPolicy(), name="model 'churn' version 3")
    first = await _hold(model, batcher)
    tasks = await _submit_all(batcher, [rows(1), rows(2, 2)])
    model.gate.set()
    assert (await first).tolist() == [0.0]
    for task in tasks:
        with pytest.raises(Unavailable, match=r"model 'churn' version 3 returned 1 row.* 3 rows"):
            await task
    with pytest.raises(Unavailable, match="returned 1 row for 2 rows"):
        await batcher.submit(rows(5, 2))
    await batcher.aclose()


async def test_outputs_without_rows_are_refused() -> None:
    batcher = Batcher(Model(lambda x: {"label": np.float64(1.0)}), BatchPolicy())
    with pytest.raises(Unavailable, match="output 'label' has no rows"):
        await batcher.submit(rows(1))
    await batcher.aclose()


async def test_disabled_batching_runs_every_request_alone_one_at_a_time() -> None:
    model = Model(hold_first=True)
    batches: list[tuple[int, int]] = []
    policy = BatchPolicy(enabled=False)
    batcher = Batcher(model, policy, on_batch=lambda n, r: batches.append((n, r)))
    first = await _hold(model, batcher)
    tasks = await _submit_all(batcher, [rows(i, 2) for i in range(5)])
    model.gate.set()
    await asyncio.gather(first, *tasks)
    assert model.rows == [1, 2, 2, 2, 2, 2]
    assert batches == [(1, 1)] + [(1, 2)] * 5
    assert model.most_at_once == 1
    await batcher.aclose()


async def test_a_cancelled_waiting_caller_leaves_the_others_served() -> None:
    model = Model(hold_first=True)
    batcher = Batcher(model, BatchPolicy())
    first = await _hold(model, batcher)
    tasks = await _submit_all(batcher, [rows(1), rows(2, 5), rows(3)])
    tasks[1].cancel()
    model.gate.set()
    await first
    assert (await tasks[0]).tolist() == [1007]
    assert (await tasks[2]).tolist() == [3007]
    assert tasks[1].cancelled()
    assert model.rows == [1, 2]
    await batcher.aclose()


async def test_cancelling_a_caller_whose_call_runs_leaves_the_others_served() -> None:
    model = Model(hold_first=True)
    batcher = Batcher(model, BatchPolicy())
    first = await _hold(model, batcher)
    tasks = await _submit_all(batcher, [rows(1), rows(2)])
    first.cancel()
    model.gate.set()
    assert [(await t).tolist() for t in tasks] == [[1007], [2007]]
    assert first.cancelled()
    assert model.rows == [1, 2]
    await batcher.aclose()


async def test_aclose_finishes_pending_work_then_refuses_new_requests() -> None:
    model = Model(hold_first=True)
    batcher = Batcher(model, BatchPolicy(), name="model 'churn' version 3")
    first = await _hold(model, batcher)
    tasks = await _submit_all(batcher, [rows(1), rows(2)])
    closing = asyncio.ensure_future(batcher.aclose())
    await asyncio.sleep(0)
    assert not closing.done()
    with pytest.raises(Unavailable, match="model 'churn' version 3 is being unloaded"):
        await batcher.submit(rows(3))
    model.gate.set()
    await closing
    assert (await first).tolist() == [10_000_007]
    assert [(await t).tolist() for t in tasks] == [[1007], [2007]]
    assert model.rows == [1, 2]


async def test_submit_refuses_a_matrix_that_is_not_two_dimensional() -> None:
    batcher = Batcher(Model(), BatchPolicy())
    with pytest.raises(InvalidArgument, match=r"2-D array .* got shape \[3\]"):
        await batcher.submit(np.zeros(3))
    await batcher.aclose()
