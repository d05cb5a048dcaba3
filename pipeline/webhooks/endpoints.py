"""A tenant's webhook endpoints: register (a fresh secret each), list, find, remove, and send a test event.

Functions take an open session from their caller and never commit.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.errors import InvalidWebhook
from pipeline.sources.errors import SourceError
from pipeline.sources.fetch import check_url
from pipeline.store.job_events import EVENTS
from pipeline.store.models_webhooks import DeliveryState, WebhookDelivery, WebhookEndpoint
from pipeline.webhooks.signing import new_secret

TEST_EVENT = "webhook.test"
MAX_ENDPOINTS = 20  # per tenant: each finished job costs one POST per endpoint


def check_events(events: list[str] | None) -> list[str]:
    """The event filter as stored: known job events, without repeats; empty or None means all of them."""
    chosen = []
    for name in events or []:
        name = name.strip().lower()
        if name and not name.startswith("job."):
            name = f"job.{name}"  # "failed" is accepted for "job.failed"
        if name not in EVENTS:
            raise InvalidWebhook(f"unknown event {name!r}: use any of {', '.join(EVENTS)}")
        if name not in chosen:
            chosen.append(name)
    return chosen or list(EVENTS)


def add_endpoint(
    session: Session, tenant: str, url: str, events: list[str] | None = None, description: str | None = None
) -> WebhookEndpoint:
    """A new enabled endpoint with its own secret. The URL's addresses are checked at each delivery (DNS may
    change), here only its form: http(s), a host, no credentials."""
    try:
        check_url(url)
    except SourceError as exc:
        raise InvalidWebhook(str(exc).replace("fetched", "allowed")) from None
    count = len(session.scalars(select(WebhookEndpoint.id).where(WebhookEndpoint.tenant == tenant)).all())
    if count >= MAX_ENDPOINTS:
        raise InvalidWebhook(f"tenant {tenant} has {count} webhook endpoints, the most allowed; remove one first")
    endpoint = WebhookEndpoint(
        id=uuid.uuid4().hex,
        tenant=tenant,
        url=url.strip(),
        secret=new_secret(),
        events=check_events(events),
        description=(description or "").strip()[:500] or None,
        enabled=True,
        created_at=datetime.now(UTC),
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def list_endpoints(session: Session, tenant: str | None = None) -> list[WebhookEndpoint]:
    q = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    if tenant:
        q = q.where(WebhookEndpoint.tenant == tenant)
    return list(session.scalars(q))


def find_endpoint(session: Session, ref: str, tenant: str | None = None) -> WebhookEndpoint | None:
    """By id or a unique id prefix (as the CLI prints them), within `tenant` when given."""
    ref = ref.strip().lower()
    if not ref or any(c not in "0123456789abcdef" for c in ref):
        return None
    q = select(WebhookEndpoint).where(WebhookEndpoint.id.startswith(ref)).limit(2)
    if tenant:
        q = q.where(WebhookEndpoint.tenant == tenant)
    rows = session.scalars(q).all()
    return rows[0] if len(rows) == 1 else None


def remove_endpoint(session: Session, endpoint: WebhookEndpoint) -> None:
    """The endpoint and its delivery log (pending deliveries are never sent)."""
    for delivery in session.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)):
        session.delete(delivery)
    session.delete(endpoint)
    session.flush()


def queue_test_event(session: Session, endpoint: WebhookEndpoint, now: datetime) -> WebhookDelivery:
    """A `webhook.test` delivery to the endpoint, due at once, signed and retried like a job event."""
    delivery = WebhookDelivery(
        id=uuid.uuid4().hex,
        endpoint_id=endpoint.id,
        tenant=endpoint.tenant,
        job_id=None,
        event=TEST_EVENT,
        payload={"type": TEST_EVENT, "timestamp": now.isoformat(), "data": {"endpoint_id": endpoint.id}},
        state=DeliveryState.PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(delivery)
    session.flush()
    return delivery


def endpoint_record(endpoint: WebhookEndpoint, with_secret: bool = False) -> dict:
    rec: dict = {
        "id": endpoint.id,
        "tenant": endpoint.tenant,
        "url": endpoint.url,
        "events": list(endpoint.events or EVENTS),
        "description": endpoint.description,
        "enabled": endpoint.enabled,
        "created_at": _iso(endpoint.created_at),
    }
    if with_secret:
        rec["secret"] = endpoint.secret
    return rec


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).isoformat()
