"""The monitoring verbs of ``Client``: the same plain JSON answers locally and over REST."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from corral.errors import InvalidArgument
from corral.monitoring.codec import plain

Records = dict[str, Any] | list[dict[str, Any]]

# File extension → (format the service parses, Content-Type of the upload).
UPLOAD_FORMATS = {
    ".csv": ("csv", "text/csv"),
    ".jsonl": ("jsonl", "application/x-ndjson"),
    ".ndjson": ("jsonl", "application/x-ndjson"),
    ".parquet": ("parquet", "application/vnd.apache.parquet"),
    ".pq": ("parquet", "application/vnd.apache.parquet"),
}


def _seg(value: str | int) -> str:
    return quote(str(value), safe="")


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _params(**values: Any) -> dict[str, Any]:
    return {
        k: v.isoformat() if isinstance(v, datetime) else v
        for k, v in values.items()
        if v is not None
    }


class MonitoringVerbs:
    """Mixed into ``Client``: it provides ``_corral`` (local), ``_http`` and ``_actor``."""

    _corral: Any
    _http: Any
    _actor: str

    # -- transport ------------------------------------------------------------------------

    @property
    def _service(self) -> Any:
        return self._corral.monitoring if self._corral is not None else None

    def _rest(self, method: str, url: str, **kwargs: Any) -> Any:
        from corral.client._remote import api_call

        return api_call(self._http, method, url, **kwargs)

    @staticmethod
    def _model_url(model: str) -> str:
        return f"/models/{_seg(model)}"

    # -- status, performance, drift -------------------------------------------------------

    def monitoring_status(self, model: str) -> dict[str, Any]:
        """Traffic, errors and latency of the last 24 h, objective states, open alerts."""
        if (svc := self._service) is not None:
            return plain(svc.status(model))  # type: ignore[no-any-return]
        return self._rest("GET", f"{self._model_url(model)}/monitoring/status")  # type: ignore[no-any-return]

    def performance(
        self,
        model: str,
        since: datetime | None = None,
        until: datetime | None = None,
        bucket: str = "1h",
        version: int | None = None,
    ) -> dict[str, Any]:
        """Traffic, latency and realised and estimated performance per time bucket.

        ``since`` and ``until`` without a zone are UTC.
        """
        since, until = _utc(since), _utc(until)
        if (svc := self._service) is not None:
            report = svc.performance(
                model, since=since, until=until, bucket=bucket, version=version
            )
            return plain(report)  # type: ignore[no-any-return]
        params = _params(since=since, until=until, bucket=bucket, version=version)
        url = f"{self._model_url(model)}/monitoring/performance"
        return self._rest("GET", url, params=params)  # type: ignore[no-any-return]

    def drift(
        self,
        model: str,
        reference: str | None = None,
        window: str = "1d",
        version: int | None = None,
    ) -> dict[str, Any]:
        """The drift and data-quality report of the logged inputs of the last ``window``.

        ``reference``: ``example``, ``window:<duration>`` or ``file:<path or URL>``.
        """
        if (svc := self._service) is not None:
            report = svc.drift(model, reference=reference, window=window, version=version)
            return plain(report)  # type: ignore[no-any-return]
        params = _params(reference=reference, window=window, version=version)
        url = f"{self._model_url(model)}/monitoring/drift"
        return self._rest("GET", url, params=params, timeout=None)  # type: ignore[no-any-return]

    # -- feedback -------------------------------------------------------------------------

    def send_feedback(self, model: str, records: Records) -> dict[str, Any]:
        """Ground truth: ``{"request_id", "label", "row"?}`` records (or one record).

        Returns ``{"received", "matched", "unknown", "unknown_ids"}``.
        """
        items = [records] if isinstance(records, dict) else list(records)
        if (svc := self._service) is not None:
            return plain(svc.record_feedback(model, items))  # type: ignore[no-any-return]
        url = f"{self._model_url(model)}/feedback"
        headers = {"Content-Type": "application/json"}
        body = orjson.dumps(plain(items))
        return self._rest("POST", url, content=body, headers=headers, timeout=None)  # type: ignore[no-any-return]

    def upload_feedback(self, model: str, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Ground truth from a .csv, .jsonl/.ndjson or .parquet file (or a .json list)."""
        file = Path(path)
        suffix = file.suffix.lower()
        if suffix != ".json" and suffix not in UPLOAD_FORMATS:
            raise InvalidArgument(
                f"cannot tell the format of '{file}': name it .csv, .jsonl, .ndjson, "
                ".parquet or .json"
            )
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise InvalidArgument(f"cannot read feedback file '{file}': {exc.strerror}") from exc
        if suffix == ".json":
            try:
                return self.send_feedback(model, orjson.loads(data))
            except orjson.JSONDecodeError as exc:
                raise InvalidArgument(f"'{file}' is not valid JSON: {exc}") from exc
        fmt, content_type = UPLOAD_FORMATS[suffix]
        if (svc := self._service) is not None:
            return plain(svc.upload_feedback(model, data, fmt))  # type: ignore[no-any-return]
        url = f"{self._model_url(model)}/feedback"
        headers = {"Content-Type": content_type}
        return self._rest("POST", url, content=data, headers=headers, timeout=None)  # type: ignore[no-any-return]

    # -- objectives -----------------------------------------------------------------------

    def list_objectives(self, model: str) -> list[dict[str, Any]]:
        """A model's objectives, each with the state and value of its latest evaluation."""
        if (svc := self._service) is not None:
            return plain(svc.list_objectives(model))  # type: ignore[no-any-return]
        return self._rest("GET", f"{self._model_url(model)}/objectives")  # type: ignore[no-any-return]

    def add_objective(self, model: str, text: str, version: int | None = None) -> dict[str, Any]:
        """Add an objective such as ``accuracy >= 0.9 over 7d, min 500``."""
        if (svc := self._service) is not None:
            objective = svc.create_objective(model, text, version=version, actor=self._actor)
            return plain(objective)  # type: ignore[no-any-return]
        body = {"objective": text, "version": version}
        return self._rest("POST", f"{self._model_url(model)}/objectives", json=body)  # type: ignore[no-any-return]

    def delete_objective(self, model: str, id: int) -> None:
        """Remove an objective (its history goes with it)."""
        if (svc := self._service) is not None:
            svc.delete_objective(model, id, actor=self._actor)
            return
        self._rest("DELETE", f"{self._model_url(model)}/objectives/{_seg(id)}")

    def objective_history(self, model: str, id: int, limit: int = 100) -> list[dict[str, Any]]:
        """An objective's evaluations, newest first."""
        if (svc := self._service) is not None:
            return plain(svc.objective_history(model, id, limit=limit))  # type: ignore[no-any-return]
        url = f"{self._model_url(model)}/objectives/{_seg(id)}/history"
        return self._rest("GET", url, params={"limit": limit})  # type: ignore[no-any-return]

    def apply_monitoring(self, model: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Apply a monitoring spec (the YAML file's content): it replaces the objectives."""
        if not isinstance(spec, dict):
            raise InvalidArgument("a monitoring spec must be a mapping (objectives, drift…)")
        if (svc := self._service) is not None:
            return plain(svc.apply(model, spec, actor=self._actor))  # type: ignore[no-any-return]
        return self._rest("PUT", f"{self._model_url(model)}/monitoring", json=spec)  # type: ignore[no-any-return]

    def evaluate(self, model: str | None = None) -> list[dict[str, Any]]:
        """Evaluate objectives now (one model's or all); opens and closes alerts."""
        if (svc := self._service) is not None:
            return plain(svc.evaluate(model))  # type: ignore[no-any-return]
        params = _params(model=model)
        return self._rest("POST", "/monitoring/evaluate", params=params, timeout=None)  # type: ignore[no-any-return]

    # -- alerts and webhooks --------------------------------------------------------------

    def list_alerts(
        self, model: str | None = None, state: str | None = None
    ) -> list[dict[str, Any]]:
        """Alerts, newest first; ``state`` is ``open`` or ``closed``."""
        if (svc := self._service) is not None:
            return plain(svc.list_alerts(model=model, state=state))  # type: ignore[no-any-return]
        return self._rest("GET", "/alerts", params=_params(model=model, state=state))  # type: ignore[no-any-return]

    def add_webhook(self, url: str, secret: str, model: str | None = None) -> dict[str, Any]:
        """POST alerts of ``model`` (or every model) to ``url``, signed with ``secret``."""
        if (svc := self._service) is not None:
            return plain(svc.create_webhook(url, secret, model=model, actor=self._actor))  # type: ignore[no-any-return]
        body = {"url": url, "secret": secret, "model": model}
        return self._rest("POST", "/webhooks", json=body)  # type: ignore[no-any-return]

    def list_webhooks(self, model: str | None = None) -> list[dict[str, Any]]:
        """Every webhook (or those of ``model``), without its secret."""
        if (svc := self._service) is not None:
            return plain(svc.list_webhooks(model))  # type: ignore[no-any-return]
        return self._rest("GET", "/webhooks", params=_params(model=model))  # type: ignore[no-any-return]

    def delete_webhook(self, id: int) -> None:
        """Stop sending alerts to a webhook."""
        if (svc := self._service) is not None:
            svc.delete_webhook(id, actor=self._actor)
            return
        self._rest("DELETE", f"/webhooks/{_seg(id)}")

    def list_deliveries(self, alert_id: int | None = None) -> list[dict[str, Any]]:
        """Webhook delivery attempts (of one alert), newest first."""
        if (svc := self._service) is not None:
            return plain(svc.list_deliveries(alert_id))  # type: ignore[no-any-return]
        return self._rest("GET", "/webhooks/deliveries", params=_params(alert_id=alert_id))  # type: ignore[no-any-return]
