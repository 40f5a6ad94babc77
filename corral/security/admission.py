"""Who gets served when: request rates, row quotas, priority tiers and JSON nesting.

The policy lives here; the counters behind it (``Counters``) are in ``corral.store.ratelimits``
(the ``limits`` library, in process memory or Redis). Every refusal is a ``RateLimited``
(HTTP 429) carrying the whole seconds to wait (``Retry-After``) and a message naming the
limit that was hit:

- **rate** — each token (anonymous callers: each client address) makes at most its
  ``rate_limit`` requests (else the server's ``default_rate_limit``; empty: no limit), and a
  deployment config's ``limits.requests_per_second`` bounds the requests of its alias;
- **quota** — a token's ``rows_per_day`` and a config's ``limits.rows_per_day`` bound the rows
  predicted per day; a request that would go over is refused whole and counts nothing;
- **overload** — at most ``max_inflight_predictions`` predictions run at once in a process;
  a ``bronze`` token's request is admitted only while fewer than half of them are running,
  ``silver`` three quarters, ``gold`` all, so under a flood the higher tiers still get in.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from corral.access import Principal
from corral.errors import InvalidArgument, Unavailable

__all__ = [
    "TIERS",
    "TIER_SHARES",
    "Admission",
    "Counters",
    "Gatekeeper",
    "JsonDepth",
    "RateLimited",
    "check_json_depth",
]

TIERS = ("bronze", "silver", "gold")
# The share of max_inflight_predictions below which a tier's prediction is still admitted.
TIER_SHARES = {"bronze": 0.5, "silver": 0.75, "gold": 1.0}
REASONS = ("rate", "quota", "overload")


class RateLimited(Unavailable):
    """A request over a rate, a quota or its tier's share of the server (HTTP 429)."""

    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, message: str, *, retry_after: int, reason: str, tier: str) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
        self.reason = reason
        self.tier = tier


def tier_of(principal: Principal) -> str:
    """The principal's tier (``bronze`` for anything unknown, anonymous callers included)."""
    return principal.tier if principal.tier in TIER_SHARES else "bronze"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class Admission:
    """How many predictions run now in this process, and whether a tier may start one."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise InvalidArgument(f"max_inflight_predictions must be at least 1, not {capacity}")
        self.capacity = capacity
        self.in_flight = 0
        self.by_tier = dict.fromkeys(TIERS, 0)
        self._below = {tier: capacity * share for tier, share in TIER_SHARES.items()}

    def share(self, tier: str) -> float:
        """The in-flight count below which ``tier`` is still admitted."""
        return self._below.get(tier, self._below["bronze"])

    def admit(self, tier: str) -> None:
        """Count one more prediction of ``tier`` in flight, or raise ``RateLimited``."""
        if self.in_flight >= self.share(tier):
            allowed = math.ceil(self.share(tier))
            better = {"bronze": " (silver and gold tokens get a larger share)", "silver": ""}
            raise RateLimited(
                f"the server is busy: {tier}-tier predictions start only while fewer than "
                f"{allowed} of its {self.capacity} prediction slots are taken, and "
                f"{self.in_flight} are; retry in 1 s{better.get(tier, '')}",
                retry_after=1,
                reason="overload",
                tier=tier,
            )
        self.in_flight += 1
        self.by_tier[tier] += 1

    def release(self, tier: str) -> None:
        """A prediction of ``tier`` that ``admit`` counted has finished."""
        self.in_flight -= 1
        self.by_tier[tier] -= 1


class Counters(Protocol):
    """Windowed counters shared by every process on the same storage (``corral.store``)."""

    def validate(self, limit: str) -> None:
        """Raise ``InvalidArgument`` unless ``limit`` reads like ``50/second`` or ``1000/day``."""
        ...

    async def hit(
        self, limit: str, key: Sequence[str], cost: int = 1, *, all_or_nothing: bool = False
    ) -> int | None:
        """Count ``cost`` against ``limit`` for ``key``: None if it fits, else seconds to wait.

        ``all_or_nothing`` counts nothing when the cost does not fit whole (row quotas).
        """
        ...

    async def aclose(self) -> None:
        """Release the storage's connections (from the event loop that used them)."""
        ...


def _counter_key(principal: Principal, client: str | None) -> str:
    """Whose rate a request counts against: its token, its user, or its client address."""
    if principal.token_id:
        return f"token:{principal.token_id}"
    if principal.authenticated:
        return f"user:{principal.name}"
    return f"address:{client or 'unknown'}"


def _who(principal: Principal, client: str | None) -> str:
    """How a refusal names the caller (made only when a request is refused)."""
    kind, _, value = _counter_key(principal, client).partition(":")
    if kind == "token":
        return f"token '{principal.name}' ({value})"
    if kind == "user":
        return f"user '{value}'"
    return f"the anonymous client at {value}"


OnRefuse = Callable[[str, str], None]  # (reason, tier): count a refusal


class Gatekeeper:
    """Applies the rates, quotas and tiers of the module docstring to each request."""

    def __init__(
        self,
        counters: Counters,
        *,
        default_rate: str = "",
        max_inflight: int = 64,
        on_refuse: OnRefuse | None = None,
    ) -> None:
        self.counters = counters
        self.default_rate = default_rate.strip()
        if self.default_rate:
            counters.validate(self.default_rate)
        self.admission = Admission(max_inflight)
        self.on_refuse = on_refuse

    def _refuse(self, exc: RateLimited) -> RateLimited:
        if self.on_refuse is not None:
            self.on_refuse(exc.reason, exc.tier)
        return exc

    async def check_request(self, principal: Principal, client: str | None = None) -> None:
        """Count one request of ``principal`` against its rate; ``RateLimited`` when over."""
        limit = principal.rate_limit or self.default_rate
        if not limit:
            return
        wait = await self.counters.hit(limit, ("rate", _counter_key(principal, client)))
        if wait is not None:
            raise self._refuse(
                RateLimited(
                    f"{_who(principal, client)} is limited to {limit}; retry in {wait} s",
                    retry_after=wait,
                    reason="rate",
                    tier=tier_of(principal),
                )
            )

    async def charge(
        self,
        principal: Principal,
        model: str,
        alias: str | None,
        rows: int,
        *,
        requests_per_second: int | None = None,
        rows_per_day: int | None = None,
    ) -> None:
        """Count a prediction of ``rows`` rows against the model's and the token's limits."""
        if requests_per_second is None and rows_per_day is None and principal.rows_per_day is None:
            return
        tier = tier_of(principal)
        target = f"model '{model}'" + (f" (alias '{alias}')" if alias else "")
        deployment = (model, alias or "")
        if requests_per_second is not None:
            limit = f"{requests_per_second}/second"
            wait = await self.counters.hit(limit, ("model-rate", *deployment))
            if wait is not None:
                raise self._refuse(
                    RateLimited(
                        f"{target} accepts at most {_plural(requests_per_second, 'request')} "
                        f"per second (its deployment config's limits.requests_per_second); "
                        f"retry in {wait} s",
                        retry_after=wait,
                        reason="rate",
                        tier=tier,
                    )
                )
        if rows_per_day is not None:
            where = f"{target} predicts at most {_plural(rows_per_day, 'row')} per day"
            where = f"{where} (its deployment config's limits.rows_per_day)"
            await self._quota(rows_per_day, ("model-rows", *deployment), rows, tier, where)
        if principal.rows_per_day is not None:
            who = _who(principal, None)
            where = f"{who} may predict {_plural(principal.rows_per_day, 'row')} per day"
            key = ("token-rows", principal.token_id or principal.name)
            await self._quota(principal.rows_per_day, key, rows, tier, where)

    async def _quota(
        self, per_day: int, key: tuple[str, ...], rows: int, tier: str, where: str
    ) -> None:
        wait = await self.counters.hit(f"{per_day}/day", key, rows, all_or_nothing=True)
        if wait is None:
            return
        if rows > per_day:
            message = f"{where}, and this request alone has {_plural(rows, 'row')}"
        else:
            message = (
                f"{where}; this request's {_plural(rows, 'row')} would go over: retry in {wait} s"
            )
        raise self._refuse(RateLimited(message, retry_after=wait, reason="quota", tier=tier))

    def slot(self, principal: Principal) -> contextlib.AbstractContextManager[None]:
        """A prediction slot for ``principal``'s tier (``RateLimited`` under overload)."""
        tier = tier_of(principal)
        try:
            self.admission.admit(tier)
        except RateLimited as exc:
            raise self._refuse(exc) from None
        return _Held(self.admission, tier)

    async def aclose(self) -> None:
        await self.counters.aclose()


class _Held(contextlib.AbstractContextManager[None]):
    """A prediction slot taken by ``Gatekeeper.slot``, given back on exit."""

    __slots__ = ("admission", "tier")

    def __init__(self, admission: Admission, tier: str) -> None:
        self.admission = admission
        self.tier = tier

    def __exit__(self, *exc: object) -> None:
        self.admission.release(self.tier)


# -- JSON nesting -------------------------------------------------------------------------

_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
_STEPS = np.zeros(256, dtype=np.int32)
_STEPS[[ord("["), ord("{")]] = 1
_STEPS[[ord("]"), ord("}")]] = -1
_QUOTE = ord('"')
_SLICE = 1 << 16


def _too_deep(limit: int) -> InvalidArgument:
    return InvalidArgument(
        f"the request body nests arrays and objects more than {limit} deep (the server's "
        f"max_json_depth); send a flatter document"
    )


class JsonDepth:
    """Follows the nesting of a JSON text fed in chunks; raises once it passes ``limit``.

    No recursion and no parsing: escapes are cut out and everything but brackets and quotes
    dropped with C-speed byte operations, then numpy sums the brackets outside strings, so a
    body of 100 000 ``[`` costs a few milliseconds and no stack. It does not validate the
    JSON; the parser does that afterwards.
    """

    __slots__ = ("depth", "escaped", "in_string", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.depth = 0
        self.in_string = False
        self.escaped = False  # the previous chunk ended with a backslash

    def feed(self, chunk: bytes, *, last: bool = False) -> None:
        """Account for the next chunk; ``InvalidArgument`` when the nesting is too deep."""
        if last and not (self.depth or self.in_string or self.escaped):
            check_json_depth(chunk, self.limit)  # the whole text at once: counting may do
            return
        if self.escaped and chunk:
            chunk, self.escaped = chunk[1:], False
        if b"\\" in chunk:
            chunk = _ESCAPE.sub(b"", chunk)
            if chunk.endswith(b"\\"):
                chunk, self.escaped = chunk[:-1], True
        marks = chunk.translate(None, _NOT_STRUCTURE)
        if not self.in_string and b'"' not in marks:
            opened = marks.count(b"[") + marks.count(b"{")
            if self.depth + opened <= self.limit:  # cannot pass the limit: no need to sum
                self.depth += 2 * opened - len(marks)
                return
        for start in range(0, len(marks), _SLICE):
            self._sum(np.frombuffer(marks[start : start + _SLICE], np.uint8))

    def _sum(self, marks: np.ndarray) -> None:
        quotes = np.cumsum(marks == _QUOTE, dtype=np.int32)  # quotes up to each mark
        outside = (quotes & 1) == int(self.in_string)  # an even count since the string state
        running = np.cumsum(_STEPS[marks] * outside, dtype=np.int64) + self.depth
        if int(running.max()) > self.limit:
            raise _too_deep(self.limit)
        self.depth = int(running[-1])
        self.in_string ^= bool(quotes[-1] & 1)


def check_json_depth(raw: bytes, limit: int) -> None:
    """Refuse (``InvalidArgument``) a JSON text nesting arrays and objects past ``limit``."""
    if raw.count(b"[") + raw.count(b"{") > limit:
        JsonDepth(limit).feed(raw)  # not last: the full sum
