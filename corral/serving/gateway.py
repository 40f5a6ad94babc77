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

from corral.errors import Conflict, CorralError, InvalidArgument, Unavailable
from corral.registry.entities import ColumnSpec, Deprecation, Resolution, VersionStatus
from corral.registry.errors import AliasNotFound
from corral.registry.fetching import fetch_version
from corral.registry.service import RegistryService
from corral.serving.batching import Batcher, BatchPolicy
from corral.serving.deployment import Deployment, parse_deployment
from corral.serving.inputs import check_rows, request_matrix
from corral.serving.metrics import ServingMetrics
from corral.serving.predictor import Array, ArrayPredictor, Outputs, Prediction, Predictor
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
        )

    def resolve(
        self,
        model: str,
        *,
        version: int | None = None,
        alias: str | None = None,
        consumer: str | None = None,
    ) -> Route:
        """The route for a request (cached; refreshed when the registry changes)."""
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

    def _choose(self, route: Route, matrix: Array, key: str | None) -> tuple[int, bool]:
        """The version that answers (the route's, or its canary's) and whether it is the canary."""
        check_rows(matrix, route.deployment.max_rows)
        if route.canary is not None and canary_route(route.deployment.traffic, key):
            self.metrics.canary.labels(route.model, str(route.canary)).inc()
            return route.canary, True
        return route.version, False

    async def predict(self, route: Route, matrix: Array, *, key: str | None = None) -> Prediction:
        """Run checked inputs through the route's version (or its canary); shadow a copy."""
        version, canary = self._choose(route, matrix, key)
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
        return self._answer(route, version, canary, matrix, outputs)

    def _answer(
        self,
        route: Route,
        version: int,
        canary: bool,
        matrix: Array,
        outputs: Outputs,
        request_id: str = "",
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
            recorder.record(route, request_id, seconds, error=error.code if error else None)
            return
        recorder.record(
            route,
            request_id,
            seconds,
            version=prediction.version,
            matrix=matrix,
            outputs=prediction.outputs,
            predictor=self.runtime.peek(prediction.model, prediction.version),
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
        started = time.perf_counter()
        route = self.resolve(model, version=version, alias=alias, consumer=consumer)
        request_id = uuid.uuid4().hex
        try:
            matrix = request_matrix(inputs, route.columns, allow_missing=route.allow_missing)
            number, canary = self._choose(route, matrix, key)
            outputs = self.runtime.get(route.model, number).predict(matrix)
        except CorralError as exc:
            self.log_request(route, request_id, time.perf_counter() - started, error=exc)
            raise
        prediction = self._answer(route, number, canary, matrix, outputs, request_id)
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
