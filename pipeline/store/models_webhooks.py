"""Tables of job webhooks: a tenant's endpoints and the delivery log (one row per endpoint, job and event).

A delivery row is written in the transaction that ends the job (pipeline/store/job_events.py): it is the
outbox the sender works from, and its unique (endpoint, job, event) is what makes a re-run of the task that
finished the job send nothing twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.store.models import Base, utcnow


class DeliveryState:
    PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"  # failed: gave up after the last attempt
    ALL = (PENDING, DELIVERED, FAILED)


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    # whsec_<base64>: kept readable because signing needs it; shown once, when the endpoint is created
    secret: Mapped[str] = mapped_column(String(128))
    events: Mapped[list] = mapped_column(default=list)  # event types it receives, e.g. ["job.failed"]
    description: Mapped[str | None] = mapped_column(String(500))
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "job_id", "event"),
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # sent as webhook-id "msg_<id>"
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    tenant: Mapped[str] = mapped_column(String(128))
    job_id: Mapped[str | None] = mapped_column(String(32))  # None for a test event
    event: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict] = mapped_column(default=dict)  # frozen when the event happened: retries send the same
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    status_code: Mapped[int | None]  # of the last attempt that got an answer
    last_error: Mapped[str | None] = mapped_column(Text)
    # when the next attempt is due; while an attempt runs, the end of its lease; None once delivered or failed
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
