"""Sending the outbox: claim a due delivery, POST it signed, record the answer and when to try again.

An attempt is claimed with one conditional UPDATE that moves `next_attempt_at` to the end of a lease, so two
messages for one delivery (the task sent after the commit and beat's sweep, or a redelivered one) never POST
at once; an attempt whose worker died is taken again when the lease ends. The POST itself runs outside any
transaction. Delivery is at least once: a crash between a receiver's 2xx and the record sends it again,
with the same webhook-id, which is what receivers deduplicate on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from pipeline.sources.netguard import IPNetwork, parse_networks
from pipeline.store.models_webhooks import DeliveryState, WebhookDelivery, WebhookEndpoint
from pipeline.webhooks.send import Answer, post
from pipeline.webhooks.signing import signed_headers

_MAX_ERROR = 1000
BACKOFF_FACTOR = 4


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout: float = 10.0
    max_attempts: int = 8
    retry_base: float = 5.0
    retry_max: float = 6 * 3600.0
    allow: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, settings) -> DeliveryPolicy:
        w = settings.webhook
        return cls(
            w.timeout, w.max_attempts, w.retry_base_seconds, w.retry_max_seconds, parse_networks(w.allow_networks)
        )

    @property
    def lease(self) -> timedelta:
        """How long a claimed attempt may take before another message may try again."""
        return timedelta(seconds=self.timeout * 2 + 30)

    def retry_delay(self, attempts: int) -> float:
        """Seconds after the `attempts`-th failure: base, x4 each time, capped."""
        return min(self.retry_base * BACKOFF_FACTOR ** min(max(attempts - 1, 0), 30), self.retry_max)


@dataclass(frozen=True)
class Claimed:
    """What an attempt needs, read in the claiming transaction."""

    id: str
    url: str
    secret: str
    payload: dict
    attempt: int  # this attempt's number, from 1

    @property
    def msg_id(self) -> str:
        return f"msg_{self.id}"


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def claim(session: Session, delivery_id: str, now: datetime, policy: DeliveryPolicy) -> Claimed | None:
    """Take the next attempt of a pending, due delivery; None when it is not due, done, or taken."""
    taken = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.state == DeliveryState.PENDING,
            WebhookDelivery.next_attempt_at <= now,
        )
        .values(next_attempt_at=now + policy.lease)
        .execution_options(synchronize_session=False)
    )
    if cast("CursorResult[Any]", taken).rowcount != 1:
        return None
    row = session.execute(
        select(WebhookDelivery, WebhookEndpoint)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.id == delivery_id)
    ).first()
    if row is None:
        return None
    delivery, endpoint = row
    return Claimed(delivery.id, endpoint.url, endpoint.secret, delivery.payload or {}, delivery.attempts + 1)


def send_claimed(claimed: Claimed, policy: DeliveryPolicy, now: datetime) -> Answer:
    """POST the frozen payload, signed with the endpoint's secret at `now`."""
    body = json.dumps(claimed.payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    headers = signed_headers(claimed.secret, claimed.msg_id, int(now.timestamp()), body)
    return post(claimed.url, body, headers, policy.timeout, policy.allow)


def record_attempt(
    session: Session, claimed: Claimed, answer: Answer, now: datetime, policy: DeliveryPolicy
) -> float | None:
    """Write the attempt into the delivery row; the seconds until the next attempt, None when none follows."""
    delivery = session.get(WebhookDelivery, claimed.id)
    if delivery is None or delivery.state != DeliveryState.PENDING:
        return None  # deleted with its endpoint meanwhile, or recorded by an earlier run of this attempt
    delivery.attempts = claimed.attempt
    delivery.last_attempt_at = now
    delivery.status_code = answer.status
    delivery.last_error = answer.error[:_MAX_ERROR] if answer.error else None
    if answer.ok:
        delivery.state, delivery.delivered_at, delivery.next_attempt_at = DeliveryState.DELIVERED, now, None
        return None
    if answer.refused or claimed.attempt >= policy.max_attempts:
        delivery.state, delivery.next_attempt_at = DeliveryState.FAILED, None
        return None
    delay = policy.retry_delay(claimed.attempt)
    delivery.next_attempt_at = now + timedelta(seconds=delay)
    return delay


def due_deliveries(session: Session, now: datetime, limit: int = 500) -> list[str]:
    """Pending deliveries whose attempt is due (their task was lost, or their lease ran out)."""
    return list(
        session.scalars(
            select(WebhookDelivery.id)
            .where(WebhookDelivery.state == DeliveryState.PENDING, WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(limit)
        )
    )


def list_deliveries(session: Session, endpoint_id: str, limit: int = 50, before: str | None = None) -> list:
    """The endpoint's deliveries, newest first; `before` (a delivery id) pages on."""
    q = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if before:
        edge = session.get(WebhookDelivery, before)
        if edge is not None:
            q = q.where(
                (WebhookDelivery.created_at < edge.created_at)
                | ((WebhookDelivery.created_at == edge.created_at) & (WebhookDelivery.id < edge.id))
            )
    q = q.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(limit)
    return list(session.scalars(q))


def delivery_record(d: WebhookDelivery) -> dict:
    rec: dict = {
        "id": d.id,
        "webhook_id": f"msg_{d.id}",
        "endpoint_id": d.endpoint_id,
        "job_id": d.job_id,
        "event": d.event,
        "state": d.state,
        "attempts": d.attempts,
        "status_code": d.status_code,
        "last_error": d.last_error,
    }
    for name in ("next_attempt_at", "last_attempt_at", "delivered_at", "created_at"):
        value = _aware(getattr(d, name))
        rec[name] = value.isoformat() if value else None
    return rec
