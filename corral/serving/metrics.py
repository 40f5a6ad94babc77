"""Serving's Prometheus metrics: requests, errors, latency, batches, loads, the cache, the log.

Each gateway owns its registry (several apps can live in one process, as in tests). With
``PROMETHEUS_MULTIPROC_DIR`` set (``corral server --workers N`` sets it), every worker
writes its samples there and ``/metrics`` on any worker reports the sum of all of them.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from corral.serving.runtime import RuntimeStats

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384)
LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServingMetrics:
    """The serving metrics of one gateway."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("model", "version", "consumer")
        self.requests = Counter(
            "corral_predict_requests", "Prediction requests", labels, registry=self.registry
        )
        self.errors = Counter(
            "corral_predict_errors",
            "Prediction requests that failed, by error code",
            (*labels, "code"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "corral_predict_latency_seconds",
            "Time from request to response, decoding and encoding included",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rows = Counter(
            "corral_predict_rows", "Rows predicted", ("model", "version"), registry=self.registry
        )
        self.batch_rows = Histogram(
            "corral_batch_rows",
            "Rows per model call (adaptive batching coalesces requests)",
            ("model", "version"),
            buckets=ROW_BUCKETS,
            registry=self.registry,
        )
        self.batch_requests = Histogram(
            "corral_batch_requests",
            "Requests per model call",
            ("model", "version"),
            buckets=ROW_BUCKETS,
            registry=self.registry,
        )
        self.load_seconds = Histogram(
            "corral_model_load_seconds",
            "Time to load a version into memory",
            ("model", "version"),
            buckets=LOAD_BUCKETS,
            registry=self.registry,
        )
        self.shadow = Counter(
            "corral_shadow_predictions",
            "Shadow predictions, by whether they agreed with the answer served",
            ("model", "version", "outcome"),
            registry=self.registry,
        )
        self.canary = Counter(
            "corral_canary_requests",
            "Requests routed to a canary version",
            ("model", "version"),
            registry=self.registry,
        )
        self.out_of_range = Counter(
            "corral_out_of_range_rows",
            "Request rows outside the version's reference ranges, by column (a row out on "
            "two columns counts in both), whether flagged or refused",
            ("model", "version", "column"),
            registry=self.registry,
        )
        self.out_of_range_refused = Counter(
            "corral_out_of_range_refused_requests",
            "Requests refused for rows outside the reference ranges (input_checks: refuse)",
            ("model", "version"),
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "corral_rate_limited",
            "Requests refused with 429, by reason (rate, quota, overload) and token tier",
            ("reason", "tier"),
            registry=self.registry,
        )
        # Each worker's cache is its own: under several workers they are reported per process.
        self.cache_bytes = Gauge(
            "corral_model_cache_bytes",
            "Bytes of loaded versions held in memory",
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self.cache_entries = Gauge(
            "corral_model_cache_entries",
            "Versions loaded in memory",
            registry=self.registry,
            multiprocess_mode="liveall",
        )

        self.log_rows = Counter(
            "corral_prediction_log_rows",
            "Prediction log rows by outcome: written, dropped (queue full or store down at "
            "shutdown), sampled_out, failed_flush (a write failed; the rows are retried)",
            ("outcome",),
            registry=self.registry,
        )
        self.log_queue_rows = Gauge(
            "corral_prediction_log_queue_rows",
            "Prediction log rows held in memory, waiting to be written",
            registry=self.registry,
            multiprocess_mode="livesum",
        )

    def record_cache(self, stats: RuntimeStats) -> None:
        self.cache_bytes.set(stats.size_bytes)
        self.cache_entries.set(stats.entries)

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric (all workers' under multiprocess)."""
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
