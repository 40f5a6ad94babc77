"""Alert webhooks over HTTP: signed POSTs, retried with backoff, one ``Delivery`` per attempt.

Each POST carries a JSON body ``{event, model, alert, objective, evaluation, sent_at}`` and
the headers ``X-Corral-Event``, ``X-Corral-Delivery`` (one id for every attempt of one
delivery), ``X-Corral-Timestamp`` (Unix seconds of the attempt) and ``X-Corral-Signature:
sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed with the webhook's secret>``.
Receivers check it with ``verify_signature``.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from typing_extensions import override

from corral.errors import CorralError
from corral.monitoring.alerts import check_webhook_url
from corral.monitoring.entities import Alert, Delivery, Webhook
from corral.monitoring.ports import Notifier
from corral.monitoring.windows import utcnow

__all__ = ["HttpNotifier", "sign", "verify_signature"]

SIGNATURE_PREFIX = "sha256="
# A Retry-After longer than this is not waited for: evaluation would stall behind it.
_MAX_RETRY_AFTER = 30.0
_ERROR_BODY = 200


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def sign(secret: str, timestamp: str | int, body: str | bytes) -> str:
    """The ``X-Corral-Signature`` value of ``body`` sent at ``timestamp``."""
    message = _bytes(str(timestamp)) + b"." + _bytes(body)
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify_signature(
    secret: str,
    timestamp: str | int,
    body: str | bytes,
    header: str | None,
    *,
    max_age_seconds: float | None = None,
    now: float | None = None,
) -> bool:
    """Whether ``header`` (``X-Corral-Signature``) signs ``body`` sent at ``timestamp``.

    For receivers: pass the raw request body (bytes, before parsing the JSON) and the
    ``X-Corral-Timestamp`` header. With ``max_age_seconds``, a timestamp further than that
    from ``now`` (default: the current time) fails too, so a captured request cannot be
    replayed later.
    """
    if not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    if max_age_seconds is not None:
        try:
            sent = float(timestamp)
        except ValueError:
            return False
        current = time.time() if now is None else now
        if abs(current - sent) > max_age_seconds:
            return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds the receiver asked to wait (``Retry-After``: seconds or an HTTP date)."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds()


def _head(response: httpx.Response) -> bytes:
    """The start of a reply's body, for the delivery's error message."""
    head = b""
    for chunk in response.iter_bytes():
        head += chunk
        if len(head) >= _ERROR_BODY:
            break
    return head[:_ERROR_BODY]


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


class HttpNotifier(Notifier):
    """Delivers alert events with httpx, retrying connection errors, 5xx and 429.

    Attempt ``n`` waits ``backoff_seconds × 2^(n-2)`` after the one before (or the
    receiver's ``Retry-After``, up to 30 s). Redirects are never followed: a 3xx fails, so a
    receiver cannot bounce the POST to an address ``check_url`` would refuse. ``check_url``
    (the outbound URL policy, ``corral.security.urls.UrlPolicy.check``) runs before every
    delivery; a refused URL is recorded as one failed attempt and not retried.
    """

    def __init__(
        self,
        *,
        attempts: int = 4,
        backoff_seconds: float = 0.5,
        timeout: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = utcnow,
        user_agent: str = "corral-webhooks",
        check_url: Callable[[str], str] | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.timeout = timeout
        self.sleep = sleep
        self.clock = clock
        self.user_agent = user_agent
        self.check_url = check_url

    @override
    def deliver(
        self, webhook: Webhook, secret: str, alert: Alert, event: str, payload: Mapping[str, Any]
    ) -> Iterator[Delivery]:
        url = check_webhook_url(webhook.url)
        if self.check_url is not None:
            # Checked again at each delivery: the host may resolve elsewhere than at creation.
            try:
                url = self.check_url(url)
            except CorralError as exc:
                yield Delivery(
                    id=0,
                    webhook_id=webhook.id,
                    alert_id=alert.id,
                    event=event,
                    attempt=1,
                    at=self.clock(),
                    succeeded=False,
                    error=exc.message,
                )
                return
        body = orjson.dumps(
            {"event": event, **payload, "sent_at": self.clock().isoformat()},
            option=orjson.OPT_NON_STR_KEYS,
        )
        delivery_id = str(uuid.uuid4())
        with httpx.Client(
            timeout=self.timeout, follow_redirects=False, headers={"User-Agent": self.user_agent}
        ) as client:
            for attempt in range(1, self.attempts + 1):
                delivery, wait = self._attempt(
                    client, url, secret, body, event, delivery_id, attempt
                )
                yield Delivery(
                    id=0,
                    webhook_id=webhook.id,
                    alert_id=alert.id,
                    event=event,
                    attempt=attempt,
                    **delivery,
                )
                if wait is None or attempt == self.attempts:
                    return
                self.sleep(wait)

    def _attempt(
        self,
        client: httpx.Client,
        url: str,
        secret: str,
        body: bytes,
        event: str,
        delivery_id: str,
        attempt: int,
    ) -> tuple[dict[str, Any], float | None]:
        """One POST: the delivery's outcome, and how long to wait before a retry (None: don't)."""
        timestamp = str(int(self.clock().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "X-Corral-Event": event,
            "X-Corral-Delivery": delivery_id,
            "X-Corral-Timestamp": timestamp,
            "X-Corral-Signature": sign(secret, timestamp, body),
        }
        backoff = self.backoff_seconds * 2 ** (attempt - 1)
        at = self.clock()
        try:
            # Streamed, to read no more of a reply than an error message needs.
            with client.stream("POST", url, content=body, headers=headers) as response:
                status = response.status_code
                head = b"" if 200 <= status < 300 else _head(response)
                asked = _retry_after(response)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return {"at": at, "succeeded": False, "error": error}, backoff
        if 200 <= status < 300:
            return {"at": at, "succeeded": True, "status_code": status}, None
        text = head.decode(errors="replace").strip()
        outcome = {
            "at": at,
            "succeeded": False,
            "status_code": status,
            "error": f"HTTP {status}" + (f": {text}" if text else ""),
        }
        if not _retryable(status):
            return outcome, None
        if asked is not None:
            backoff = max(backoff, min(asked, _MAX_RETRY_AFTER))
        return outcome, backoff
