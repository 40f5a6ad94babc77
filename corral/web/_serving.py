"""What the serving pages show: how each alias and consumer is served, and this process's state.

The model page explains routes without touching the gateway's route cache (a route the
gateway caches is re-warmed on every registry change, so merely viewing a page would load
versions into memory): it resolves through the registry and reads the config with the
same ``parse_deployment`` the gateway uses.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from corral.errors import CorralError, InvalidArgument
from corral.registry.entities import ColumnSpec, ModelVersion, Resolution, VersionStatus
from corral.registry.errors import AliasNotFound
from corral.registry.service import RegistryService
from corral.registry.signature import EXAMPLE_FILE
from corral.serving.deployment import Deployment, parse_deployment
from corral.serving.gateway import DEFAULT_ALIAS, Gateway
from corral.serving.inputs import OIP_DTYPES
from corral.serving.traffic import Target

# An example larger than this is not read for a curl line of one row.
MAX_EXAMPLE_BYTES = 1 << 20
# Flavors whose predictors take one request per call (see docs/serving.md, batching).
UNBATCHED_FLAVORS = frozenset({"python"})
_OIP_BY_DTYPE = {
    "bool": "BOOL",
    **{name.lower().replace("fp", "float"): name for name in OIP_DTYPES if name.startswith("FP")},
    **{name.lower(): name for name in OIP_DTYPES if name.startswith(("INT", "UINT"))},
}
_PLACEHOLDER: dict[str, Any] = {"bool": False, "string": "text", "object": "text"}


@dataclass(frozen=True, slots=True)
class Examples:
    """Ready-to-run curl commands for one route."""

    predict: str
    infer: str
    source: str  # where the values come from, in words


@dataclass(frozen=True, slots=True)
class RouteView:
    """One way of reaching the model (an alias, a consumer, or the default) and its serving."""

    name: str
    version: int | None = None
    config: str | None = None
    config_revision: int | None = None
    sentences: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    error: str = ""
    loaded: bool = False
    examples: Examples | None = None
    note: str = ""  # why there are no examples


@dataclass(frozen=True, slots=True)
class ConsumerRoute:
    consumer: str
    binding: str
    route: RouteView


@dataclass(frozen=True, slots=True)
class ModelServing:
    """The model page's Serving section."""

    default: str  # which version answers a request naming nothing
    routes: tuple[RouteView, ...]
    consumers: tuple[ConsumerRoute, ...]
    featured: str  # the route whose examples show first: champion, else the default


# -- the model page -------------------------------------------------------------------


def model_serving(
    svc: RegistryService, gateway: Gateway, model: str, base_url: str
) -> ModelServing:
    """How every alias and consumer of ``model`` is served, with curl examples per alias."""
    loaded = set(gateway.runtime.stats().versions)
    versions: dict[int, ModelVersion | None] = {}

    def version_of(number: int) -> ModelVersion | None:
        if number not in versions:
            try:
                versions[number] = svc.get_version(model, number)
            except CorralError:
                versions[number] = None
        return versions[number]

    def view(name: str, resolve: Callable[[], Resolution], ref: str | None) -> RouteView:
        try:
            found = resolve()
        except CorralError as exc:
            return RouteView(name, error=exc.message)
        version = version_of(found.version)
        route = _route_view(svc, gateway, name, found, version, loaded)
        if route.error or ref is None or version is None:
            return route
        examples = _examples(svc, version, base_url, model, ref)
        note = "" if examples else _no_examples(found.version)
        return replace(route, examples=examples, note=note)

    routes = [
        view(alias.name, partial(svc.resolve, model, alias.name), alias.name)
        for alias in svc.list_aliases(model)
    ]
    default = _default_route(svc, model)
    if default and not any(r.name == DEFAULT_ALIAS for r in routes):
        routes.append(view("", partial(svc.resolve, model, "latest"), ""))
    consumers = [
        ConsumerRoute(
            consumer.name,
            f"pinned to version {consumer.version}"
            if consumer.version is not None
            else f"follows alias '{consumer.alias}'",
            view(consumer.name, partial(svc.resolve_consumer, consumer.name, model), None),
        )
        for consumer in svc.list_consumers(model)
    ]
    names = [r.name for r in routes]
    featured = next((n for n in (DEFAULT_ALIAS, "") if n in names), names[0] if names else "")
    return ModelServing(default, tuple(routes), tuple(consumers), featured)


def _no_examples(version: int) -> str:
    return (
        f"version {version} declares no input columns (it was registered without an example): "
        "send rows as a 2-D array in the order the model expects"
    )


def _default_route(svc: RegistryService, model: str) -> str:
    """Which version a request that names no version, alias or consumer gets."""
    try:
        found = svc.resolve(model, DEFAULT_ALIAS)
        return f"the {DEFAULT_ALIAS} alias, version {found.version}"
    except AliasNotFound:
        pass
    except CorralError as exc:
        return f"nothing: {exc.message}"
    try:
        found = svc.resolve(model, "latest")
    except CorralError:
        return ""
    return f"the latest version, {found.version} (there is no {DEFAULT_ALIAS} alias)"


def _route_view(
    svc: RegistryService,
    gateway: Gateway,
    name: str,
    found: Resolution,
    version: ModelVersion | None,
    loaded: set[tuple[str, int]],
) -> RouteView:
    here = (found.model, found.version) in loaded
    base = RouteView(name, found.version, found.config, found.config_revision, loaded=here)
    if found.status is not VersionStatus.READY:
        return replace(
            base,
            error=f"version {found.version} of '{found.model}' is {found.status.value}; "
            "only a ready version serves",
        )
    try:
        deployment = parse_deployment(found.config_values, default_max_rows=gateway.max_rows)
    except InvalidArgument as exc:
        return replace(
            base,
            error=f"deployment config '{found.config}' revision {found.config_revision} of model "
            f"'{found.model}' is invalid ({exc.message}); fix it with a new revision",
        )
    sentences, warnings = describe(svc, found, deployment, version.flavor if version else "")
    return replace(base, sentences=tuple(sentences), warnings=tuple(warnings))


def _percent(value: float) -> str:
    return f"{value:g}"


def _target(svc: RegistryService, model: str, target: Target) -> tuple[int | None, str]:
    """The version a canary or shadow target names now, or why it names none."""
    try:
        number = svc.resolve(model, target.ref).version
    except CorralError as exc:
        return None, exc.message
    return number, ""


def _named(target: Target, number: int) -> str:
    return f"version {number}" + (f" (alias '{target.alias}')" if target.alias else "")


def describe(
    svc: RegistryService, found: Resolution, deployment: Deployment, flavor: str
) -> tuple[list[str], list[str]]:
    """A deployment in words (batching, canary, shadow, limits), and what is wrong with it."""
    sentences: list[str] = []
    warnings: list[str] = []
    batching = deployment.batching
    if flavor in UNBATCHED_FLAVORS:
        sentences.append(f"Batching off: {flavor} models take one request per call")
    elif batching.enabled:
        sentences.append(
            f"Batching on: concurrent requests share a model call of up to "
            f"{batching.max_batch_rows:,} rows, waiting at most {batching.max_wait_ms:g} ms"
        )
    else:
        sentences.append("Batching off: each request is its own model call")
    traffic = deployment.traffic
    if traffic.canary is not None:
        number, problem = _target(svc, found.model, traffic.canary)
        percent = _percent(traffic.canary_percent)
        if number is None:
            warnings.append(f"canary target {traffic.canary.ref!r} does not resolve: {problem}")
        elif number == found.version:
            sentences.append(f"Canary: {percent} % to {_named(traffic.canary, number)}")
            warnings.append("the canary is the version served itself, so nothing is split")
        elif traffic.canary_percent > 0:
            sentences.append(
                f"Canary: {percent} % to {_named(traffic.canary, number)}, "
                f"{_percent(100 - traffic.canary_percent)} % to version {found.version} "
                "(sticky when requests carry a key)"
            )
        else:
            sentences.append(f"Canary: 0 % to {_named(traffic.canary, number)} (no traffic)")
    if traffic.shadow is not None:
        number, problem = _target(svc, found.model, traffic.shadow)
        if number is None:
            warnings.append(f"shadow target {traffic.shadow.ref!r} does not resolve: {problem}")
        elif number == found.version:
            warnings.append("the shadow is the version served itself, so nothing is copied")
        else:
            sentences.append(
                f"Shadow: copy to {_named(traffic.shadow, number)}, compared and never returned"
            )
    sentences.append(f"Max rows: {deployment.max_rows:,} per request")
    sentences.append(
        "Missing values: null is served as NaN"
        if deployment.allow_missing
        else "Missing values: refused (a null is a 422)"
    )
    return sentences, warnings


# -- curl examples --------------------------------------------------------------------


def _examples(
    svc: RegistryService, version: ModelVersion, base_url: str, model: str, ref: str
) -> Examples | None:
    columns = version.signature.inputs if version.signature else []
    if not columns:
        return None
    row, read = _example_row(svc, version)
    values = {column.name: _value(column, row) for column in columns}
    source = (
        f"values from the first row of version {version.number}'s {EXAMPLE_FILE}"
        if read
        else f"placeholder values of version {version.number}'s column types"
    )
    return Examples(
        predict=_predict_curl(base_url, model, ref, values),
        infer=_infer_curl(base_url, model, ref, columns, values),
        source=source,
    )


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _predict_curl(base_url: str, model: str, ref: str, values: Mapping[str, Any]) -> str:
    head = f'"alias": {_json(ref)}, ' if ref else ""
    fields = ",\n".join(f"    {_json(name)}: {_json(value)}" for name, value in values.items())
    body = f'{{{head}"inputs": [{{\n{fields}\n}}]}}'
    return (
        f"curl -s {base_url}/api/v1/models/{model}/predict \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        f"  -d {_shell_quote(body)}"
    )


def _infer_curl(
    base_url: str,
    model: str,
    ref: str,
    columns: Sequence[ColumnSpec],
    values: Mapping[str, Any],
) -> str:
    tensors = []
    for column in columns:
        value = values[column.name]
        datatype = _OIP_BY_DTYPE.get(column.dtype, "BYTES")
        data = value if isinstance(value, list) else [value]
        if datatype == "BYTES":
            data = [v if isinstance(v, str) else _json(v) for v in data]
        shape = [1, len(data)] if isinstance(value, list) else [1]
        tensor = {"name": column.name, "shape": shape, "datatype": datatype, "data": data}
        tensors.append("    " + _json(tensor))
    path = f"/v2/models/{model}" + (f"/versions/{ref}" if ref else "") + "/infer"
    body = '{"inputs": [\n' + ",\n".join(tensors) + "\n]}"
    return (
        f"curl -s {base_url}{path} \\\n"
        "  -H 'Content-Type: application/json' \\\n"
        f"  -d {_shell_quote(body)}"
    )


def _example_row(svc: RegistryService, version: ModelVersion) -> tuple[dict[str, Any], bool]:
    """The first row of the version's stored input example, by column (empty if none)."""
    entry = next((f for f in version.files if f.path == EXAMPLE_FILE), None)
    if entry is None or entry.size > MAX_EXAMPLE_BYTES:
        return {}, False
    try:
        example = json.loads(b"".join(svc.read_file(entry, verify_first=False)))
    except (CorralError, OSError, ValueError):
        return {}, False
    names = [c.name for c in version.signature.inputs] if version.signature else []
    row = _first_row(example, names)
    return row, bool(row)


def _first_row(example: Any, names: Sequence[str]) -> dict[str, Any]:
    if isinstance(example, Mapping):  # columns
        return {
            str(k): v[0] if isinstance(v, list) and v else v
            for k, v in example.items()
            if not isinstance(v, list) or v
        }
    if not isinstance(example, list) or not example:
        return {}
    first = example[0]
    if isinstance(first, Mapping):  # records
        return {str(k): v for k, v in first.items()}
    if len(names) == 1:  # a 2-D array or a list of scalars: one column named "input"
        return {names[0]: first}
    return {}


def _fits(column: ColumnSpec, value: Any) -> bool:
    """Whether an example value is one the column takes in a request."""
    width = column.shape[1] if len(column.shape) == 2 else None
    if width is not None:
        return (
            isinstance(value, list)
            and (width < 0 or len(value) == width)
            and all(_fits(ColumnSpec(column.name, column.dtype), v) for v in value)
        )
    if column.dtype == "string":
        return isinstance(value, str)
    if column.dtype == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int | str) if column.dtype == "object" else isinstance(value, int)


def _value(column: ColumnSpec, row: Mapping[str, Any]) -> Any:
    value = row.get(column.name)
    if column.name in row and _fits(column, value):
        return value
    scalar = _PLACEHOLDER.get(column.dtype, 0 if column.dtype.startswith(("int", "uint")) else 0.0)
    width = column.shape[1] if len(column.shape) == 2 else None
    if width is None:
        return scalar
    return [scalar] * max(width, 1)


# -- the /serving page ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadedVersion:
    model: str
    version: int
    size: int | None  # the version's files, which is what the cache counts
    recency: int  # 1 = most recently used


@dataclass(slots=True)
class TrafficRow:
    """One model version's request counts in this process, from the serving metrics."""

    model: str
    version: str
    requests: float = 0.0
    errors: float = 0.0
    rows: float = 0.0
    latency_sum: float = 0.0
    latency_count: float = 0.0
    canary: float = 0.0
    error_codes: dict[str, float] = field(default_factory=dict)
    shadow: dict[str, float] = field(default_factory=dict)

    @property
    def mean_latency_ms(self) -> float | None:
        if not self.latency_count:
            return None
        return 1000 * self.latency_sum / self.latency_count


@dataclass(frozen=True, slots=True)
class ServingStatus:
    pid: int
    loaded: tuple[LoadedVersion, ...]
    size_bytes: int
    budget_bytes: int
    hits: int
    misses: int
    evictions: int
    load_seconds: float
    traffic: tuple[TrafficRow, ...]

    @property
    def used_percent(self) -> float:
        return 100 * self.size_bytes / self.budget_bytes if self.budget_bytes else 0.0


def serving_status(svc: RegistryService, gateway: Gateway) -> ServingStatus:
    """What this process has loaded and has answered since it started."""
    stats = gateway.runtime.stats()
    newest_first = list(reversed(stats.versions))
    loaded = []
    for recency, (model, number) in enumerate(newest_first, start=1):
        try:
            size: int | None = svc.get_version(model, number).size
        except CorralError:
            size = None
        loaded.append(LoadedVersion(model, number, size, recency))
    return ServingStatus(
        pid=os.getpid(),
        loaded=tuple(loaded),
        size_bytes=stats.size_bytes,
        budget_bytes=stats.budget_bytes,
        hits=stats.hits,
        misses=stats.misses,
        evictions=stats.evictions,
        load_seconds=stats.load_seconds,
        traffic=tuple(traffic_rows(gateway.metrics.registry.collect())),
    )


def traffic_rows(metrics: Iterable[Any]) -> list[TrafficRow]:
    """Per (model, version) totals of the serving counters, summed over consumers."""
    rows: dict[tuple[str, str], TrafficRow] = {}

    def row(labels: Mapping[str, str]) -> TrafficRow:
        key = (labels.get("model", ""), labels.get("version", ""))
        if key not in rows:
            rows[key] = TrafficRow(*key)
        return rows[key]

    for metric in metrics:
        for sample in metric.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            if name == "corral_predict_requests_total":
                row(labels).requests += value
            elif name == "corral_predict_errors_total":
                target = row(labels)
                target.errors += value
                code = labels.get("code", "")
                target.error_codes[code] = target.error_codes.get(code, 0.0) + value
            elif name == "corral_predict_rows_total":
                row(labels).rows += value
            elif name == "corral_predict_latency_seconds_sum":
                row(labels).latency_sum += value
            elif name == "corral_predict_latency_seconds_count":
                row(labels).latency_count += value
            elif name == "corral_canary_requests_total":
                row(labels).canary += value
            elif name == "corral_shadow_predictions_total":
                target = row(labels)
                outcome = labels.get("outcome", "")
                target.shadow[outcome] = target.shadow.get(outcome, 0.0) + value

    def order(item: TrafficRow) -> tuple[str, int, str]:
        digits = item.version.isdigit()
        return item.model, int(item.version) if digits else -1, item.version

    return sorted(rows.values(), key=order)
