"""Alerts: always to Python logging, and as JSON POSTs to the webhook URL the factory file declares.

Delivery never raises into the caller: a webhook that refuses, fails or hangs is retried, then logged
and counted in :attr:`Alerter.failed`, and the factory goes on.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any

import httpx

log = logging.getLogger("darkfab.monitor")

ALERT_KINDS: tuple[str, ...] = ("drift", "quality_decay", "rollback", "budget_reached", "campaign_failed")
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def _json_default(value: Any) -> Any:
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


class Alerter:
    """Sends alerts of the kinds in :data:`ALERT_KINDS`.

    Args:
        webhook: URL that receives ``{kind, factory, reason, data, time}`` as a JSON POST; None logs only.
        timeout: seconds per attempt (connect, read and write each).
        retries: further attempts after a connection error, a timeout, or a 408/425/429/5xx answer.
        backoff: seconds before the first retry, doubling after each.
    """

    def __init__(self, webhook: str | None, *, timeout: float = 5.0, retries: int = 2, backoff: float = 0.5) -> None:
        if webhook is not None and not webhook.startswith(("http://", "https://")):
            raise ValueError(f"the alert webhook must be an http(s) URL, got {webhook!r}")
        if timeout <= 0 or retries < 0 or backoff < 0:
            raise ValueError(f"need timeout > 0, retries >= 0, backoff >= 0; got {timeout=}, {retries=}, {backoff=}")
        self.webhook = webhook
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.sent = 0  # alerts the webhook accepted (2xx)
        self.failed = 0  # alerts the webhook never accepted
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Alerter(webhook={self.webhook!r}, sent={self.sent}, failed={self.failed})"

    def send(self, kind: str, *, factory: str, reason: str, data: dict[str, Any] | None = None) -> bool:
        """Log the alert and POST it to the webhook; True when delivered (or when there is no webhook).

        Raises ValueError only for a ``kind`` outside :data:`ALERT_KINDS` (a bug in the caller).
        """
        if kind not in ALERT_KINDS:
            raise ValueError(f"alert kind must be one of {list(ALERT_KINDS)}, got {kind!r}")
        log.warning("alert %s for factory %s: %s", kind, factory, reason)
        if self.webhook is None:
            return True
        payload = {
            "kind": kind,
            "factory": factory,
            "reason": reason,
            "data": data or {},
            "time": datetime.now(timezone.utc).isoformat(),
        }
        try:
            body = json.dumps(payload, default=_json_default, allow_nan=False)
        except ValueError:
            body = json.dumps(json.loads(json.dumps(payload, default=_json_default)), default=str)
        ok = self._post(body, kind)
        with self._lock:
            if ok:
                self.sent += 1
            else:
                self.failed += 1
        return ok

    def _post(self, body: str, kind: str) -> bool:
        assert self.webhook is not None
        headers = {"content-type": "application/json", "user-agent": "darkfab-alerts"}
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                with httpx.Client(timeout=self.timeout) as client:
                    answer = client.post(self.webhook, content=body, headers=headers)
            except httpx.HTTPError as err:
                problem = f"{type(err).__name__}: {err}"
                continue
            except Exception as err:  # delivery must never raise into the factory
                problem = f"{type(err).__name__}: {err}"
                break
            if answer.is_success:
                return True
            problem = f"HTTP {answer.status_code}"
            if answer.status_code not in _RETRY_STATUS:
                break
        log.error("could not deliver the %s alert to %s (%s); it is in this log only", kind, self.webhook, problem)
        return False
