"""Rate-limit and quota counters on the ``limits`` library: in memory or in Redis.

``rate_limit_storage`` picks the storage: ``memory://`` counts in each process alone,
``redis://host:port`` (or ``rediss://``) shares the counters between every process and
replica using the same Redis. Counters are fixed windows that start at a key's first hit
(``50/second``, ``1000/day``), using ``limits``' asyncio API, so a Redis round trip never
blocks the event loop.

When the storage fails (Redis down or slow), requests are let through rather than refused:
the limits protect the service, they must not become the reason it is down. The failure is
logged, and the storage is left alone for a second before it is tried again.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Sequence

from limits import RateLimitItem, parse
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import ConfigurationError, StorageError
from limits.storage import storage_from_string

from corral.errors import InvalidArgument

__all__ = ["LimitsCounters", "validate_limit"]

log = logging.getLogger("corral.api")

SCHEMES = ("memory", "redis", "rediss")
KEY_PREFIX = "corral"
# Redis must answer within this, or the request goes on unlimited (see the module docstring).
TIMEOUT_SECONDS = 0.25
RETRY_SECONDS = 1.0


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


class LimitsCounters:
    """Fixed-window counters in the storage ``url`` names (implements ``Counters``)."""

    def __init__(self, url: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
        scheme = url.partition("://")[0]
        if scheme not in SCHEMES:
            raise InvalidArgument(
                f"rate_limit_storage {url!r} is not supported: use memory:// (each process "
                "counts alone) or redis://host:port (replicas share their counters)"
            )
        options: dict[str, float | str | bool] = {}
        if scheme != "memory":
            options = {
                "implementation": "redispy",
                "key_prefix": KEY_PREFIX,
                "socket_timeout": timeout,
                "socket_connect_timeout": timeout,
            }
        try:
            self._storage = storage_from_string(f"async+{url}", wrap_exceptions=True, **options)
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
