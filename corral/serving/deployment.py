"""A deployment's serving settings, read from the config revision bound to its alias.

A config (a registry ``ConfigRevision.values``) may hold, besides anything else::

    {"traffic": {"canary": {"version": 4, "percent": 10}, "shadow": {"alias": "challenger"}},
     "batching": {"enabled": true, "max_batch_rows": 64, "max_wait_ms": 2},
     "limits": {"max_rows": 10000, "requests_per_second": 200, "rows_per_day": 10000000},
     "inputs": {"allow_missing": false},
     "input_checks": {"out_of_range": "flag", "margin": 0.0, "ranges": {"age": [0, 120]}},
     "monitoring": {"log": true, "sample_rate": 0.25, "sensitive": "hash"}}

``monitoring`` says whether the alias's predictions are logged (``log``), which share of
requests (``sample_rate``, 0 to 1, chosen per request id) and whether the signature's
sensitive columns are hashed or dropped from the log (``sensitive``: ``hash`` or ``drop``).
``input_checks`` sets the reference-range check (see ``corral.serving.ranges``).

Other top-level keys are left alone; inside these sections every key and value is
checked, and a mistake is refused naming the exact field and what it must be.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from corral.errors import InvalidArgument
from corral.registry.names import NAME_RE
from corral.serving.batching import BatchPolicy
from corral.serving.ranges import InputChecks, parse_input_checks
from corral.serving.traffic import Target, TrafficPolicy

DEFAULT_MAX_ROWS = 10_000
MAX_WAIT_MS = 1000.0

_TRAFFIC_KEYS = ("canary", "shadow")
_CANARY_KEYS = ("version", "alias", "percent")
_SHADOW_KEYS = ("version", "alias")
_BATCHING_KEYS = ("enabled", "max_batch_rows", "max_wait_ms")
_LIMITS_KEYS = ("max_rows", "requests_per_second", "rows_per_day")
_INPUTS_KEYS = ("allow_missing",)
_MONITORING_KEYS = ("log", "sample_rate", "sensitive")
SENSITIVE_POLICIES = ("hash", "drop")


@dataclass(frozen=True, slots=True)
class LogPolicy:
    """Whether and how an alias's predictions are logged (see ``corral.serving.recorder``)."""

    log: bool = True
    sample_rate: float = 1.0
    sensitive: str = "hash"


@dataclass(frozen=True, slots=True)
class Deployment:
    """How an alias is served: batching, canary and shadow, and what requests may hold.

    ``max_rows`` bounds the rows of one request; ``requests_per_second`` and
    ``rows_per_day`` (None: unlimited) the requests and rows of the alias, all callers
    together (``corral.security.admission``); ``allow_missing`` lets numeric inputs
    hold nulls (served as NaN) instead of refusing them; ``monitoring`` is its prediction
    logging.
    """

    batching: BatchPolicy = field(default_factory=BatchPolicy)
    traffic: TrafficPolicy = field(default_factory=TrafficPolicy)
    max_rows: int = DEFAULT_MAX_ROWS
    allow_missing: bool = False
    monitoring: LogPolicy = field(default_factory=LogPolicy)
    requests_per_second: int | None = None
    rows_per_day: int | None = None
    input_checks: InputChecks = field(default_factory=InputChecks)


def parse_deployment(
    values: Mapping[str, Any] | None, *, default_max_rows: int = DEFAULT_MAX_ROWS
) -> Deployment:
    """The deployment a config describes (defaults for what it leaves out)."""
    if default_max_rows < 1:
        raise InvalidArgument(f"the default max_rows must be at least 1, not {default_max_rows}")
    if values is None:
        return Deployment(max_rows=default_max_rows)
    if not isinstance(values, Mapping):
        raise InvalidArgument(f"a deployment config must be an object, not {_show(values)}")
    batching = _section(values, "batching", _BATCHING_KEYS) or {}
    limits = _section(values, "limits", _LIMITS_KEYS) or {}
    inputs = _section(values, "inputs", _INPUTS_KEYS) or {}
    monitoring = _section(values, "monitoring", _MONITORING_KEYS) or {}
    defaults = BatchPolicy()
    return Deployment(
        batching=BatchPolicy(
            enabled=_flag(batching, "batching.enabled", defaults.enabled),
            max_batch_rows=_count(batching, "batching.max_batch_rows", defaults.max_batch_rows),
            max_wait_ms=_number(batching, "batching.max_wait_ms", defaults.max_wait_ms),
        ),
        traffic=_traffic(_section(values, "traffic", _TRAFFIC_KEYS) or {}),
        max_rows=_count(limits, "limits.max_rows", default_max_rows),
        requests_per_second=_optional_count(limits, "limits.requests_per_second"),
        rows_per_day=_optional_count(limits, "limits.rows_per_day"),
        allow_missing=_flag(inputs, "inputs.allow_missing", False),
        monitoring=_log_policy(monitoring),
        input_checks=parse_input_checks(values.get("input_checks")),
    )


def _log_policy(section: Mapping[str, Any]) -> LogPolicy:
    sensitive = section.get("sensitive", "hash")
    if sensitive not in SENSITIVE_POLICIES:
        raise InvalidArgument(
            f'monitoring.sensitive must be "hash" or "drop", not {_show(sensitive)}'
        )
    return LogPolicy(
        log=_flag(section, "monitoring.log", True),
        sample_rate=_number(section, "monitoring.sample_rate", 1.0, high=1.0),
        sensitive=sensitive,
    )


def _traffic(section: Mapping[str, Any]) -> TrafficPolicy:
    canary = _section(section, "traffic.canary", _CANARY_KEYS)
    shadow = _section(section, "traffic.shadow", _SHADOW_KEYS)
    if canary is None:
        return TrafficPolicy(shadow=_target(shadow, "traffic.shadow"))
    target = _target(canary, "traffic.canary")
    if "percent" not in canary:
        raise InvalidArgument(
            "traffic.canary.percent is missing: give the share of requests the canary "
            "takes, a number between 0 and 100"
        )
    return TrafficPolicy(
        canary=target,
        canary_percent=_number(canary, "traffic.canary.percent", 0.0, high=100.0),
        shadow=_target(shadow, "traffic.shadow"),
    )


def _show(value: Any) -> str:
    """A value as it reads in the JSON config, cut short."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def _last(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def _section(
    parent: Mapping[str, Any], path: str, allowed: tuple[str, ...]
) -> Mapping[str, Any] | None:
    """A section's keys (None when it is absent or null), refusing unknown ones."""
    value = parent.get(_last(path))
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidArgument(
            f"{path} must be an object with the keys {', '.join(allowed)}, not {_show(value)}"
        )
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        keys = "key" if len(unknown) == 1 else "keys"
        raise InvalidArgument(
            f"{path} has unknown {keys} {', '.join(unknown)}; allowed: {', '.join(allowed)}"
        )
    return value


def _target(section: Mapping[str, Any] | None, path: str) -> Target | None:
    if section is None:
        return None
    version, alias = section.get("version"), section.get("alias")
    if version is not None and alias is not None:
        raise InvalidArgument(f"{path} names both a version and an alias; give exactly one")
    if version is None and alias is None:
        raise InvalidArgument(
            f'{path} must name a version or an alias: {{"version": 4}} or {{"alias": "challenger"}}'
        )
    if alias is not None:
        if not isinstance(alias, str) or not NAME_RE.fullmatch(alias):
            raise InvalidArgument(
                f"{path}.alias must be an alias name (1 to 128 characters of a-z, 0-9, '-', '_' "
                f"and '.', starting with a letter or digit), not {_show(alias)}"
            )
        return Target(alias=alias)
    if not _is_integer(version) or version < 1:
        raise InvalidArgument(
            f"{path}.version must be a version number from 1, not {_show(version)}"
        )
    return Target(version=version)


def _is_integer(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _flag(section: Mapping[str, Any], path: str, default: bool) -> bool:
    value = section.get(_last(path), default)
    if not isinstance(value, bool):
        raise InvalidArgument(f"{path} must be true or false, not {_show(value)}")
    return value


def _count(section: Mapping[str, Any], path: str, default: int) -> int:
    value = section.get(_last(path), default)
    if not _is_integer(value) or value < 1:
        raise InvalidArgument(f"{path} must be a whole number of at least 1, not {_show(value)}")
    return int(value)


def _optional_count(section: Mapping[str, Any], path: str) -> int | None:
    """A whole number of at least 1, or None when the key is absent or null (no limit)."""
    if section.get(_last(path)) is None:
        return None
    return _count(section, path, 1)


def _number(
    section: Mapping[str, Any], path: str, default: float, *, high: float = MAX_WAIT_MS
) -> float:
    value = section.get(_last(path), default)
    number_ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not number_ok or not math.isfinite(value) or not 0 <= value <= high:
        raise InvalidArgument(f"{path} must be a number between 0 and {high:g}, not {_show(value)}")
    return float(value)
