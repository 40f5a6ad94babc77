"""Prediction logs and feedback as Parquet files, queried with DuckDB.

Owns the layout under ``<artifact root>/monitoring/`` (``predictions/`` and ``feedback/``,
partitioned ``model=<name>/date=YYYY-MM-DD/``), writing whole files atomically, the SQL that
turns them into per-bucket traffic, latency and realised performance, and the parsing of
feedback uploads (CSV, JSON lines, Parquet).
"""

from __future__ import annotations

from corral.store.metrics.logs import ParquetLogStore

__all__ = ["ParquetLogStore"]
