"""Traffic policies of a deployment: a canary taking a share of requests, a shadow copy.

A canary serves ``canary_percent`` of the requests in place of the deployment's own
version; a shadow receives a copy of every request and its answers are only compared,
never returned. Both name a version (``{"version": 4}``) or an alias (``{"alias": ...}``).

With a routing key (a user or session id) the canary decision is sticky: the key is
hashed to a fixed point in [0, 100), and the key goes to the canary when that point is
below the percentage. The same key always lands on the same side, and raising the
percentage only moves more keys onto the canary, never back.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from corral.errors import InvalidArgument

# Any 53-bit integer times this is a float in [0, 100), never 100 itself.
_SCALE = 100 / float(1 << 53)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a canary or shadow sends requests: one version or one alias."""

    version: int | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        if (self.version is None) == (self.alias is None):
            raise InvalidArgument(
                "a traffic target names exactly one of a version or an alias, "
                f"not version={self.version!r} and alias={self.alias!r}"
            )

    @property
    def ref(self) -> int | str:
        """The version number or alias name, as the registry resolves references."""
        if self.version is not None:
            return self.version
        assert self.alias is not None
        return self.alias


@dataclass(frozen=True, slots=True)
class TrafficPolicy:
    """A deployment's canary (with its share of requests, 0 to 100) and shadow."""

    canary: Target | None = None
    canary_percent: float = 0.0
    shadow: Target | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.canary_percent <= 100:  # also refuses NaN
            raise InvalidArgument(
                f"the canary percent must be between 0 and 100, not {self.canary_percent!r}"
            )


def bucket(key: str) -> float:
    """The fixed point in [0, 100) a routing key hashes to."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) * _SCALE


def route(policy: TrafficPolicy, key: str | None, *, rng: random.Random | None = None) -> bool:
    """Whether a request goes to the canary: sticky per key, random without one."""
    percent = policy.canary_percent
    if policy.canary is None or not percent > 0:
        return False
    if percent >= 100:
        return True
    if key is not None:
        return bucket(key) < percent
    draw = rng.random() if rng is not None else random.random()
    return draw * 100 < percent
