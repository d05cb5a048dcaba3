"""POSTing alerts to the configured webhooks, with retries, recording each hook's delivery.

Delivery is at least once: a hook that answered 2xx is never sent the alert again, but a crash
between its answer and the commit resends it; every POST carries the alert id (in the body, in
webhook-id and in an X-Docpipe-Alert header) so a receiver can drop the repeat. With
DOCPIPE_ALERT_WEBHOOK_SECRET set, each POST is signed per Standard Webhooks, as job webhooks are
(pipeline/webhooks/signing.py).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.config import AlertSettings, defaults
from pipeline.errors import ConfigError
from pipeline.store.models_monitor import AlertDelivery
from pipeline.types import utcnow
from pipeline.webhooks.signing import signed_headers

_ALERT = defaults(AlertSettings)

# a client error will not go away by asking again, except these
_RETRY_4XX = frozenset({408, 425, 429})


def webhook_urls(setting: str) -> list[str]:
    urls = [u.strip() for u in (setting or "").split(",") if u.strip()]
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"DOCPIPE_ALERT_WEBHOOKS: {url!r} is not an http(s) URL")
    return urls


def post_json(
    url: str,
    payload: dict,
    *,
    timeout: float = _ALERT.webhook_timeout,
    attempts: int = _ALERT.webhook_attempts,
    backoff: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    secret: str | None = None,
) -> tuple[bool, int, str | None]:
    """(delivered, attempts made, last error). Retries timeouts, network errors, 5xx, 408/425/429."""
    body = json.dumps(payload).encode("utf-8")
    error = None
    for attempt in range(1, max(attempts, 1) + 1):
        msg_id = f"msg_alert_{payload.get('id', '')}"  # the same on every attempt: receivers drop repeats by it
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                **signed_headers(secret, msg_id, int(time.time()), body),
                "User-Agent": "docpipe-alerts",
                "X-Docpipe-Alert": str(payload.get("id", "")),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                resp.read(1024)
            return True, attempt, None
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}"
            if 400 <= exc.code < 500 and exc.code not in _RETRY_4XX:
                return False, attempt, error
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        if attempt < attempts:
            sleep(backoff * 2 ** (attempt - 1))
    return False, max(attempts, 1), error


def deliver(
    session: Session,
    alert_id: int,
    payload: dict,
    urls: list[str],
    *,
    timeout: float = _ALERT.webhook_timeout,
    attempts: int = _ALERT.webhook_attempts,
    backoff: float = 0.5,
    secret: str | None = None,
) -> list[str]:
    """POST to every hook that has not taken the alert yet (signed when `secret` is given); return the hooks
    that still failed."""
    rows = {d.url: d for d in session.scalars(select(AlertDelivery).where(AlertDelivery.alert_id == alert_id))}
    failed = []
    for url in urls:
        row = rows.get(url)
        if row is not None and row.status == "delivered":
            continue
        ok, tries, error = post_json(url, payload, timeout=timeout, attempts=attempts, backoff=backoff, secret=secret)
        if row is None:
            row = rows[url] = AlertDelivery(alert_id=alert_id, url=url, attempts=0)
            session.add(row)
        row.attempts += tries
        row.status, row.last_error = ("delivered", None) if ok else ("failed", error)
        row.delivered_at = utcnow() if ok else None
        if not ok:
            failed.append(url)
    session.flush()
    return failed
