"""The serving gateway: which version answers a request, and the call that answers it.

A request names a model and optionally a version, an alias or a consumer; the gateway
resolves that to a ``Route`` (version, deployment config, canary and shadow versions)
and keeps routes cached. Every ``poll_seconds`` it reads the registry's generation; when
anything changed it re-resolves the cached routes, loads their versions, and only then
swaps the new routes in: a request is always served by a fully loaded version, before or
after an alias move, never in between.

With a ``PredictionRecorder`` every request answered (or failed after its route was
resolved) is queued for the prediction log; ``None`` turns logging off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from corral.access import Action, require
from corral.errors import Conflict, CorralError, InvalidArgument, Unavailable
from corral.registry.entities import (
    ColumnSpec,
    Deprecation,
    ModelVersion,
    Resolution,
    VersionStatus,
)
from corral.registry.errors import AliasNotFound
from corral.registry.fetching import fetch_version
from corral.registry.service import RegistryService
from corral.serving.batching import Batcher, BatchPolicy
from corral.serving.deployment import Deployment, parse_deployment
from corral.serving.inputs import check_rows, request_matrix
from corral.serving.metrics import ServingMetrics
from corral.serving.predictor import Array, ArrayPredictor, Outputs, Prediction, Predictor
from corral.serving.ranges import (
    Feature,
    OutOfRange,
    OutOfRangeRefused,
    RangeCheck,
    build_check,
    read_reference,
)
from corral.serving.recorder import PredictionRecorder
from corral.serving.runtime import ModelRuntime, VersionFiles
from corral.serving.traffic import route as canary_route

log = logging.getLogger("corral.serving")

DEFAULT_ALIAS = "champion"
RouteKey = tuple[str, int | None, str | None, str | None]  # model, version, alias, consumer


@dataclass(frozen=True, slots=True)
class Route:
    """Where requests for one (model, version/alias/consumer) go right now."""

    model: str
    version: int
    alias: str | None
    consumer: str | None
    pinned: bool
    deployment: Deployment
    columns: tuple[ColumnSpec, ...]
    deprecation: Deprecation | None = None
    canary: int | None = None
    shadow: int | None = None
    flavor: str = ""
    ranges: RangeCheck | None = None  # the version's reference ranges under this deployment

    @property
    def allow_missing(self) -> bool:
        return self.deployment.allow_missing


class Gateway:
    """Routes requests to loaded versions, with batching, canary and shadow traffic."""

    def __init__(
        self,
        registry: RegistryService,
        cache_dir: Path,
        *,
        memory_budget_bytes: int = 2 << 30,
        max_rows: int = 10_000,
        poll_seconds: float = 0.1,
        default_alias: str = DEFAULT_ALIAS,
        recorder: PredictionRecorder | None = None,
    ) -> None:
        self.registry = registry
        self.cache_dir = cache_dir
        self.max_rows = max_rows
        self.poll_seconds = poll_seconds
        self.default_alias = default_alias
        self.metrics = ServingMetrics()
        self.recorder = recorder
        if recorder is not None:
            recorder.metrics = self.metrics
        self.runtime = ModelRuntime(self._files, memory_budget_bytes, on_load=self._loaded)
        self._routes: dict[RouteKey, Route] = {}
        # Each version's example reference, read once (versions never change).
        self._references: dict[tuple[str, int], list[Feature] | None] = {}
        self._batchers: dict[tuple[str, int, BatchPolicy], Batcher] = {}
        self._generation = registry.generation()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()  # binds to a loop only when first awaited
        # Prediction requests being handled now; the HTTP layer counts them, and batchers
        # wait a loop turn for companions only when there is more than one.
        self.in_flight = 0

    # -- loading ----------------------------------------------------------------------

    def _files(self, model: str, number: int) -> VersionFiles:
        version = self.registry.get_version(model, number)
        self.registry.check_servable(version)  # a cached copy must not serve either
        folder = fetch_version(
            version,
            self.cache_dir,
            lambda entry: self.registry.stream_file(model, number, entry.path),
            lambda found: self.registry.check_signature(version, found),
        )
        return VersionFiles(
            folder=folder,
            flavor=version.flavor,
            signature=version.signature,
            trusted=version.trusted,
        )

    def _loaded(self, model: str, version: int, seconds: float) -> None:
        self.metrics.load_seconds.labels(model, str(version)).observe(seconds)
        log.info("loaded model '%s' version %d in %.3f s", model, version, seconds)

    def _warm(self, route: Route) -> None:
        for number in {route.version, route.canary, route.shadow} - {None}:
            assert number is not None
            try:
                self.runtime.get(route.model, number)
            except CorralError as exc:  # the request that needs it gets the error
                log.warning("could not warm '%s' version %d: %s", route.model, number, exc)
        self.metrics.record_cache(self.runtime.stats())

    def warm(self, model: str, ref: int | str) -> None:
        """Load what ``model``/``ref`` routes to (e.g. just after an alias moved to it)."""
        if isinstance(ref, int):
            self._warm(self.resolve(model, version=ref))
        else:
            self._warm(self.resolve(model, alias=ref))

    # -- routing ----------------------------------------------------------------------

    def _resolution(self, key: RouteKey) -> Resolution:
        model, version, alias, consumer = key
        if consumer is not None:
            found = self.registry.resolve_consumer(consumer, model)
            asked = version if version is not None else alias
            if asked is not None and asked not in (found.version, found.alias):
                bound = (
                    f"pinned to version {found.version}"
                    if found.pinned
                    else f"bound to alias '{found.alias}'"
                )
                raise Conflict(
                    f"consumer '{consumer}' of model '{model}' is {bound}; it cannot ask for "
                    f"{'version' if version is not None else 'alias'} {asked!r} (drop the "
                    "version or alias from the request, or change the consumer's binding)"
                )
            return found
        if version is not None:
            return self.registry.resolve(model, version)
        if alias is not None:
            return self.registry.resolve(model, alias)
        try:
            return self.registry.resolve(model, self.default_alias)
        except AliasNotFound:
            return self.registry.resolve(model, "latest")

    def _target(self, model: str, ref: int | str, what: str) -> int | None:
        try:
            return self.registry.resolve(model, ref).version
        except CorralError as exc:
            log.warning("%s target %r of model '%s' is unusable: %s", what, ref, model, exc)
            return None

    def _resolve(self, key: RouteKey) -> Route:
        found = self._resolution(key)
        if found.status is not VersionStatus.READY:
            raise Conflict(
                f"version {found.version} of '{found.model}' is {found.status.value}; "
                "only a ready version serves"
            )
        try:
            deployment = parse_deployment(found.config_values, default_max_rows=self.max_rows)
        except InvalidArgument as exc:
            raise Unavailable(
                f"deployment config '{found.config}' revision {found.config_revision} of model "
                f"'{found.model}' is invalid ({exc.message}); fix it with a new revision"
            ) from exc
        version = self.registry.get_version(found.model, found.version)
        self.registry.check_servable(version)
        traffic = deployment.traffic
        canary = (
            self._target(found.model, traffic.canary.ref, "canary")
            if traffic.canary is not None and traffic.canary_percent > 0
            else None
        )
        shadow = (
            self._target(found.model, traffic.shadow.ref, "shadow")
            if traffic.shadow is not None
            else None
        )
        return Route(
            model=found.model,
            version=found.version,
            alias=found.alias,
            consumer=found.consumer,
            pinned=found.pinned,
            deployment=deployment,
            columns=tuple(version.signature.inputs if version.signature else ()),
            deprecation=found.deprecation,
            canary=canary if canary != found.version else None,
            shadow=shadow if shadow != found.version else None,
            flavor=version.flavor,
            ranges=self._ranges(version, deployment, found.config, found.config_revision),
        )

    def _ranges(
        self,
        version: ModelVersion,
        deployment: Deployment,
        config: str | None,
        revision: int | None,
    ) -> RangeCheck:
        key = (version.model, version.number)
        checks = deployment.input_checks
        if checks.out_of_range != "off" and key not in self._references:
            try:
                self._references[key] = read_reference(version, self.registry.stream_file)
            except Exception as exc:  # unchecked until it reads; the next refresh retries
                log.warning(
                    "no reference ranges for '%s' version %d: its example is unusable (%s)",
                    *key,
                    getattr(exc, "message", exc),
                )
        columns = version.signature.inputs if version.signature else []
        try:
            return build_check(
                self._references.get(key), checks, columns, model=key[0], version=key[1]
            )
        except InvalidArgument as exc:
            raise Unavailable(
                f"deployment config '{config}' revision {revision} of model '{key[0]}' is "
                f"invalid ({exc.message}); fix it with a new revision"
            ) from exc

    def resolve(
        self,
        model: str,
        *,
        version: int | None = None,
        alias: str | None = None,
        consumer: str | None = None,
    ) -> Route:
        """The route for a request (cached; refreshed when the registry changes)."""
        require(Action.READ, model)  # a cached route skips the registry's own checks
        key = (model, version, alias, consumer)
        route = self._routes.get(key)
        if route is None:
            generation = self._generation
            route = self._resolve(key)
            if generation == self._generation:  # no refresh swapped routes meanwhile
                self._routes[key] = route
        return route

    async def aresolve(
        self,
        model: str,
        *,
        version: int | None = None,
        alias: str | None = None,
        consumer: str | None = None,
    ) -> Route:
        """``resolve`` without blocking the event loop on a cache miss."""
        require(Action.READ, model)
        route = self._routes.get((model, version, alias, consumer))
        if route is not None:
            return route
        return await asyncio.to_thread(
            self.resolve, model, version=version, alias=alias, consumer=consumer
        )

    def refresh(self) -> bool:
        """Re-resolve and warm every cached route if the registry changed; whether it did."""
        generation = self.registry.generation()
        if generation == self._generation:
            return False
        routes: dict[RouteKey, Route] = {}
        for key in list(self._routes):
            try:
                route = self._resolve(key)
            except CorralError:
                continue  # gone or broken: the next request for it gets the error
            self._warm(route)
            routes[key] = route
        self._generation = generation
        self._routes = routes
        served = {(r.model, r.version) for r in routes.values()}
        self._references = {k: v for k, v in self._references.items() if k in served}
        return True

    async def watch(self) -> None:
        """Refresh routes every ``poll_seconds`` until ``stop_watching``.

        Stopping waits for a refresh in progress: its thread holds a database connection,
        which must be back in the pool before the engine is disposed.
        """
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.poll_seconds)
            if self._stop.is_set():
                return
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:  # a database hiccup must not stop the watcher
                log.exception("refreshing serving routes failed; retrying")

    def stop_watching(self) -> None:
        self._stop.set()

    # -- predicting -------------------------------------------------------------------

    async def load(self, route: Route) -> Predictor:
        """The route's version, loaded (OIP readiness loads what it reports on)."""
        require(Action.READ, route.model)
        return await self._predictor(route.model, route.version)

    async def _predictor(self, model: str, version: int) -> Predictor:
        predictor = self.runtime.peek(model, version)
        if predictor is None:
            predictor = await asyncio.to_thread(self.runtime.get, model, version)
            self.metrics.record_cache(self.runtime.stats())
        return predictor

    def _batcher(
        self, model: str, version: int, predictor: Predictor, policy: BatchPolicy
    ) -> Batcher:
        key = (model, version, policy)
        batcher = self._batchers.get(key)
        if batcher is None:
            if not isinstance(predictor, ArrayPredictor):
                policy = BatchPolicy(enabled=False)  # not vectorised: one request per call
            labels = (model, str(version))
            rows_hist = self.metrics.batch_rows.labels(*labels)
            requests_hist = self.metrics.batch_requests.labels(*labels)

            def on_batch(requests: int, rows: int) -> None:
                requests_hist.observe(requests)
                rows_hist.observe(rows)

            batcher = Batcher(
                predictor.predict,
                policy,
                on_batch=on_batch,
                name=f"model '{model}' version {version}",
                pending=lambda: self.in_flight,
            )
            self._batchers[key] = batcher
        return batcher

    def _choose(
        self, route: Route, matrix: Array, key: str | None
    ) -> tuple[int, bool, OutOfRange | None]:
        """The version that answers (the route's, or its canary's), whether it is the canary,
        and the rows out of the reference ranges (refused here in ``refuse`` mode)."""
        check_rows(matrix, route.deployment.max_rows)
        found = self._check_ranges(route, matrix)
        if route.canary is not None and canary_route(route.deployment.traffic, key):
            self.metrics.canary.labels(route.model, str(route.canary)).inc()
            return route.canary, True, found
        return route.version, False, found

    def _check_ranges(self, route: Route, matrix: Array) -> OutOfRange | None:
        check = route.ranges
        found = check.check(matrix) if check is not None else None
        if check is None or found is None or not found.count:
            return found
        version = str(route.version)  # whose reference it is, even when a canary answers
        for column, rows in found.columns.items():
            self.metrics.out_of_range.labels(route.model, version, column).inc(len(rows))
        log.info(
            "out-of-range inputs (%s): model=%s version=%s rows=%d/%d columns=%s",
            check.mode,
            route.model,
            version,
            found.count,
            found.rows,
            ",".join(found.columns),
        )
        if check.refuses:
            self.metrics.out_of_range_refused.labels(route.model, version).inc()
            raise check.refusal(matrix, found)
        return found

    async def predict(self, route: Route, matrix: Array, *, key: str | None = None) -> Prediction:
        """Run checked inputs through the route's version (or its canary); shadow a copy."""
        require(Action.PREDICT, route.model)
        version, canary, flagged = self._choose(route, matrix, key)
        predictor = await self._predictor(route.model, version)
        batcher = self._batcher(route.model, version, predictor, route.deployment.batching)
        if batcher.policy.enabled:
            # One turn of the loop lets the requests already received (their tasks are
            # queued behind this one) count themselves in flight and join the batch.
            await asyncio.sleep(0)
        outputs = await batcher.submit(matrix)
        if route.shadow is not None and route.shadow != version:
            task = asyncio.create_task(self._shadow(route, route.shadow, matrix, outputs))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return self._answer(route, version, canary, matrix, outputs, out_of_range=flagged)

    def _answer(
        self,
        route: Route,
        version: int,
        canary: bool,
        matrix: Array,
        outputs: Outputs,
        request_id: str = "",
        *,
        out_of_range: OutOfRange | None = None,
    ) -> Prediction:
        self.metrics.rows.labels(route.model, str(version)).inc(matrix.shape[0])
        return Prediction(
            model=route.model,
            version=version,
            alias=route.alias,
            consumer=route.consumer,
            outputs=outputs,
            rows=int(matrix.shape[0]),
            canary=canary,
            deprecation=route.deprecation,
            request_id=request_id,
            out_of_range=out_of_range,
        )

    async def _shadow(self, route: Route, version: int, matrix: Array, served: Outputs) -> None:
        """The shadow's answer is logged and counted; the caller already has the champion's."""
        started = time.perf_counter()
        try:
            predictor = await self._predictor(route.model, version)
            batcher = self._batcher(route.model, version, predictor, route.deployment.batching)
            outputs = await batcher.submit(matrix)
        except Exception as exc:
            self.metrics.shadow.labels(route.model, str(version), "error").inc()
            log.warning("shadow version %d of '%s' failed: %s", version, route.model, exc)
            return
        agree = _agreement(served, outputs)
        self.metrics.shadow.labels(
            route.model, str(version), "agree" if agree == 1.0 else "differ"
        ).inc()
        log.info(
            "shadow model=%s champion=%d shadow=%d rows=%d agreement=%.3f seconds=%.4f",
            route.model,
            route.version,
            version,
            matrix.shape[0],
            agree,
            time.perf_counter() - started,
        )

    def log_request(
        self,
        route: Route,
        request_id: str,
        seconds: float,
        *,
        matrix: Array | None = None,
        prediction: Prediction | None = None,
        error: CorralError | None = None,
    ) -> None:
        """Queue a request for the prediction log (nothing when logging is off)."""
        recorder = self.recorder
        if recorder is None:
            return
        if prediction is None or error is not None:
            refused = _REFUSED if isinstance(error, OutOfRangeRefused) else None
            recorder.record(
                route,
                request_id,
                seconds,
                error=error.code if error else None,
                out_of_range=refused,
            )
            return
        flagged = prediction.out_of_range
        recorder.record(
            route,
            request_id,
            seconds,
            version=prediction.version,
            matrix=matrix,
            outputs=prediction.outputs,
            predictor=self.runtime.peek(prediction.model, prediction.version),
            out_of_range=flagged.mask if flagged is not None else None,
        )

    def predict_sync(
        self,
        model: str,
        inputs: Any,
        *,
        version: int | None = None,
        alias: str | None = None,
        consumer: str | None = None,
        key: str | None = None,
    ) -> Prediction:
        """Check and predict plain inputs without an event loop (the SDK's local mode)."""
        require(Action.PREDICT, model)
        started = time.perf_counter()
        route = self.resolve(model, version=version, alias=alias, consumer=consumer)
        request_id = uuid.uuid4().hex
        try:
            matrix = request_matrix(inputs, route.columns, allow_missing=route.allow_missing)
            number, canary, flagged = self._choose(route, matrix, key)
            outputs = self.runtime.get(route.model, number).predict(matrix)
        except CorralError as exc:
            self.log_request(route, request_id, time.perf_counter() - started, error=exc)
            raise
        prediction = self._answer(
            route, number, canary, matrix, outputs, request_id, out_of_range=flagged
        )
        self.log_request(
            route, request_id, time.perf_counter() - started, matrix=matrix, prediction=prediction
        )
        return prediction

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for batcher in self._batchers.values():
            await batcher.aclose()
        self._batchers.clear()


_REFUSED = np.ones(1, dtype=bool)  # the log row of a request refused for its ranges


def _agreement(a: Outputs, b: Outputs) -> float:
    """The share of rows on which two outputs agree (1.0 = identical answers)."""
    if isinstance(a, dict) or isinstance(b, dict):
        return 1.0 if _same(a, b) else 0.0
    left, right = np.asarray(a), np.asarray(b)
    if left.shape != right.shape or left.size == 0:
        return 0.0
    equal = np.isclose(left, right) if left.dtype.kind in "fc" else left == right
    rows = equal.reshape(len(left), -1).all(axis=1)
    return float(rows.mean())


def _same(a: Outputs, b: Outputs) -> bool:
    if not (isinstance(a, dict) and isinstance(b, dict)) or a.keys() != b.keys():
        return False
    return all(_agreement(a[k], b[k]) == 1.0 for k in a)
