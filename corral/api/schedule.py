"""The server's schedule: objectives are evaluated every ``monitor_evaluate_seconds``, and the
prediction log's day partitions are compacted every hour."""

from __future__ import annotations

import asyncio
import logging

from corral.store.metrics import ParquetLogStore
from corral.wiring import Corral

log = logging.getLogger("corral.monitoring")


async def evaluate_forever(wired: Corral, seconds: float) -> None:
    """Evaluate every objective every ``seconds`` until cancelled.

    The first evaluation waits one period: starting a server stays as fast as it was.
    """
    while True:
        await asyncio.sleep(seconds)
        try:
            evaluations = await asyncio.to_thread(wired.monitoring.evaluate)
            if evaluations:
                log.info("evaluated %d objectives", len(evaluations))
        except asyncio.CancelledError:
            raise
        except Exception:  # the schedule must outlive one bad evaluation
            log.exception("evaluating objectives failed; trying again in %.0f s", seconds)


async def compact_forever(wired: Corral, seconds: float = 3600, *, first: float = 300) -> None:
    """Merge the small files of the log's day partitions every ``seconds`` until cancelled.

    The first run waits ``first`` seconds, so that servers restarted often still compact.
    """
    logs = wired.monitoring.logs
    if not isinstance(logs, ParquetLogStore):
        return
    delay = first
    while True:
        await asyncio.sleep(delay)
        delay = seconds
        try:
            counts = await asyncio.to_thread(logs.compact)
            if counts["files"] or counts["deleted"]:
                log.info(
                    "compacted %d log files of %d partitions, deleted %d replaced files",
                    counts["files"],
                    counts["partitions"],
                    counts["deleted"],
                )
        except asyncio.CancelledError:
            raise
        except Exception:  # the schedule must outlive one failed compaction
            log.exception("compacting the prediction log failed; trying again in %.0f s", seconds)
