"""Rate-limit and quota counters on the ``limits`` library: in memory or in Redis.

``rate_limit_storage`` picks the storage: ``memory://`` counts in each process alone,
``redis://host:port`` (or ``rediss://``) shares the counters between every process and
replica using the same Redis. Counters are fixed windows that start at a key's first hit
(``50/second``, ``1000/day``). Redis is reached through ``limits``' asyncio API, so a round
trip never blocks the event loop; memory counters are ``MemoryWindows``, a dict with the
same fixed-window rules, which never waits.

When the storage fails (Redis down or slow), requests are let through rather than refused:
the limits protect the service, they must not become the reason it is down. The failure is
logged, and the storage is left alone for a second before it is tried again.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Sequence

from limits import RateLimitItem, parse
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import ConfigurationError, StorageError
from limits.storage import storage_from_string

from corral.errors import InvalidArgument

__all__ = ["LimitsCounters", "MemoryWindows", "validate_limit"]

log = logging.getLogger("corral.api")

SCHEMES = ("memory", "redis", "rediss")
KEY_PREFIX = "corral"
# Redis must answer within this, or the request goes on unlimited (see the module docstring).
TIMEOUT_SECONDS = 0.25
RETRY_SECONDS = 1.0
_FIRST_SWEEP = 4096


@functools.lru_cache(maxsize=1024)
def _item(limit: str) -> RateLimitItem:
    try:
        return parse(limit)
    except ValueError:
        raise InvalidArgument(
            f"rate limit {limit!r} is not understood: write it like '50/second', "
            "'1000/minute' or '10000/day'"
        ) from None


def validate_limit(limit: str) -> None:
    """Raise ``InvalidArgument`` unless ``limit`` reads like ``50/second`` or ``1000/day``."""
    _item(limit)


class MemoryWindows:
    """Fixed-window counters in one process's memory (the ``memory://`` storage).

    ``limits``' own memory storages clean up with an asyncio task started on every hit, or
    a thread started every 10 ms; either cost more than all the rest of a request's
    security checks. A fixed window needs no cleaner: a counter is a ``[reset_at, count]``
    pair, replaced when its key is hit at or after ``reset_at``, and the windows that ended
    are swept whenever the dict has doubled since the last sweep, so its size stays within
    twice the keys hit in the last window. Same rules as ``limits``' fixed window: a window
    starts at its key's first hit, and a refused hit still counts.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._windows: dict[tuple[str, ...], list[float]] = {}
        self._sweep_at = _FIRST_SWEEP

    def take(
        self, item: RateLimitItem, key: tuple[str, ...], cost: int, all_or_nothing: bool
    ) -> int | None:
        """Count ``cost`` for ``key`` under ``item``: None if it fits, else seconds to wait."""
        now = self._clock()
        window = self._windows.get(key)
        if window is None or window[0] <= now:
            if len(self._windows) >= self._sweep_at:
                self._sweep(now)
            window = self._windows[key] = [now + item.get_expiry(), 0]
        if not (all_or_nothing and window[1] + cost > item.amount):
            window[1] += cost
            if window[1] <= item.amount:
                return None
        return max(1, math.ceil(window[0] - now))

    def __len__(self) -> int:
        return len(self._windows)

    def _sweep(self, now: float) -> None:
        self._windows = {k: w for k, w in self._windows.items() if w[0] > now}
        self._sweep_at = max(_FIRST_SWEEP, 2 * len(self._windows))


class LimitsCounters:
    """Fixed-window counters in the storage ``url`` names (implements ``Counters``)."""

    def __init__(self, url: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
        scheme = url.partition("://")[0]
        if scheme not in SCHEMES:
            raise InvalidArgument(
                f"rate_limit_storage {url!r} is not supported: use memory:// (each process "
                "counts alone) or redis://host:port (replicas share their counters)"
            )
        self._storage = None
        self._memory: MemoryWindows | None = None
        if scheme == "memory":
            self._memory = MemoryWindows()
        else:
            try:
                self._storage = storage_from_string(
                    f"async+{url}",
                    wrap_exceptions=True,
                    implementation="redispy",
                    key_prefix=KEY_PREFIX,
                    socket_timeout=timeout,
                    socket_connect_timeout=timeout,
                )
            except ConfigurationError as exc:
                raise InvalidArgument(f"rate_limit_storage {url!r} cannot be used: {exc}") from exc
            self._limiter = FixedWindowRateLimiter(self._storage)
        self._url = url
        self._paused_until = 0.0

    def validate(self, limit: str) -> None:
        validate_limit(limit)

    async def hit(
        self, limit: str, key: Sequence[str], cost: int = 1, *, all_or_nothing: bool = False
    ) -> int | None:
        item = _item(limit)
        if self._memory is not None:
            return self._memory.take(item, (limit, *key), cost, all_or_nothing)
        if self._paused_until and time.monotonic() < self._paused_until:
            return None
        try:
            if all_or_nothing and not await self._limiter.test(item, *key, cost=cost):
                allowed = False
            else:
                allowed = await self._limiter.hit(item, *key, cost=cost)
            if allowed:
                return None
            reset, _ = await self._limiter.get_window_stats(item, *key)
        except StorageError as exc:
            self._paused_until = time.monotonic() + RETRY_SECONDS
            log.warning(
                "rate limits are not enforced for %.0f s: storage %s failed (%s)",
                RETRY_SECONDS,
                self._url,
                exc.storage_error,
            )
            return None
        return max(1, math.ceil(reset - time.time()))

    async def aclose(self) -> None:
        # limits has no close(); redis-py's asyncio client must be closed on its own loop.
        client = getattr(getattr(self._storage, "bridge", None), "storage", None)
        if client is not None and hasattr(client, "aclose"):
            await client.aclose()
