"""Webhook endpoints of the caller's tenant: register, list, remove, read the delivery log, send a test event.

The secret (whsec_...) is in the answer to the POST that creates an endpoint, and nowhere else: the receiver
keeps it to verify the webhook-signature of every POST (docs/webhooks.md).
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import require_tenant
from api.errors import ApiError
from api.pages import Page, PageParams, page, page_params
from api.schemas import Error
from pipeline.errors import InvalidWebhook
from pipeline.store import job_events
from pipeline.store.job_events import EVENTS
from pipeline.store.models_webhooks import WebhookDelivery, WebhookEndpoint
from pipeline.types import utcnow
from pipeline.webhooks import add_endpoint, endpoint_record
from pipeline.webhooks.deliveries import delivery_record
from pipeline.webhooks.endpoints import queue_test_event, remove_endpoint
from workers import client

router = APIRouter(prefix="/v1", tags=["webhooks"])
_ID = r"^[0-9a-f]{32}$"
_AUTH = {401: {"model": Error}, 422: {"model": Error}}
_ONE = {401: {"model": Error}, 404: {"model": Error}, 422: {"model": Error}}


class WebhookIn(BaseModel):
    url: str = Field(min_length=1, max_length=2048, pattern=r"^[^\x00]*$", description="http(s) URL to POST to")
    events: list[str] | None = Field(
        None, max_length=len(EVENTS), description=f"Event types to receive (default all): {', '.join(EVENTS)}"
    )
    description: str | None = Field(None, max_length=500)


class WebhookOut(BaseModel):
    id: str
    tenant: str
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    created_at: str | None


class WebhookCreated(WebhookOut):
    secret: str = Field(description="whsec_...: verifies webhook-signature; shown only in this answer")


class WebhookPage(Page[WebhookOut]):
    """A page of endpoints, oldest first."""


class DeliveryOut(BaseModel):
    id: str
    webhook_id: str = Field(description="The webhook-id header of its POSTs (the same on every retry)")
    endpoint_id: str
    job_id: str | None
    event: str
    state: str = Field(description="pending, delivered, or failed (no attempt left)")
    attempts: int
    status_code: int | None = Field(description="HTTP status of the last attempt that got an answer")
    last_error: str | None
    next_attempt_at: str | None
    last_attempt_at: str | None
    delivered_at: str | None
    created_at: str | None


class DeliveryPage(Page[DeliveryOut]):
    """A page of deliveries, newest first."""


_sender: dict = {}


def _notify(delivery_ids: list[str]) -> None:
    ctx = _sender.get("ctx")
    for delivery_id in delivery_ids if ctx else ():
        ctx.send_task(client.DELIVER_WEBHOOK, [delivery_id])


def wire(ctx) -> None:
    """Jobs that end in this process (a cancel through the API) send their deliveries at once, through the
    app's task sender; without this, beat's sweep would send them a little later."""
    _sender["ctx"] = ctx
    job_events.on_committed(_notify)


def _endpoint(session: Session, tenant: str, endpoint_id: str) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id) if re.fullmatch(_ID, endpoint_id) else None
    if endpoint is None or endpoint.tenant != tenant:
        raise ApiError(404, f"no webhook {endpoint_id} in this tenant")
    return endpoint


@router.post(
    "/webhooks", status_code=201, response_model=WebhookCreated, responses=_AUTH, summary="Register an endpoint"
)
def create_webhook(request: Request, body: WebhookIn, tenant: str = Depends(require_tenant)) -> dict:
    try:
        with request.app.state.ctx.session() as session:
            endpoint = add_endpoint(session, tenant, body.url, body.events, body.description)
            return endpoint_record(endpoint, with_secret=True)
    except InvalidWebhook as exc:
        raise ApiError(422, str(exc), "invalid_webhook") from None


@router.get("/webhooks", response_model=WebhookPage, responses=_AUTH, summary="Endpoints of this tenant")
def list_webhooks(request: Request, tenant: str = Depends(require_tenant), paging: PageParams = Depends(page_params)):
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.tenant == tenant)
    with request.app.state.ctx.session() as session:
        columns = (WebhookEndpoint.created_at, WebhookEndpoint.id)
        return page(session, stmt, columns, paging, endpoint_record, descending=False)


@router.delete("/webhooks/{webhook_id}", status_code=204, responses=_ONE, summary="Remove an endpoint and its log")
def delete_webhook(request: Request, webhook_id: str, tenant: str = Depends(require_tenant)) -> Response:
    with request.app.state.ctx.session() as session:
        remove_endpoint(session, _endpoint(session, tenant, webhook_id))
    return Response(status_code=204)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=DeliveryPage,
    responses=_ONE,
    summary="The endpoint's delivery log: attempts, status, error, next retry",
)
def list_deliveries(
    request: Request, webhook_id: str, tenant: str = Depends(require_tenant), paging: PageParams = Depends(page_params)
):
    with request.app.state.ctx.session() as session:
        endpoint = _endpoint(session, tenant, webhook_id)
        stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
        return page(session, stmt, (WebhookDelivery.created_at, WebhookDelivery.id), paging, delivery_record)


@router.post(
    "/webhooks/{webhook_id}/test",
    status_code=202,
    response_model=DeliveryOut,
    responses=_ONE,
    summary="Send a signed webhook.test event to the endpoint",
)
def test_webhook(request: Request, webhook_id: str, tenant: str = Depends(require_tenant)) -> dict:
    ctx = request.app.state.ctx
    with ctx.session() as session:
        delivery = queue_test_event(session, _endpoint(session, tenant, webhook_id), utcnow())
        rec = delivery_record(delivery)
    ctx.send_task(client.DELIVER_WEBHOOK, [rec["id"]])
    return rec


def dashboard_rows(session: Session, tenant: str, per_endpoint: int = 20) -> list[dict]:
    """The webhooks page's data: each endpoint with its latest deliveries (api/templates/webhooks.html)."""
    from pipeline.webhooks.deliveries import list_deliveries as latest

    rows = []
    for endpoint in session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.tenant == tenant).order_by(WebhookEndpoint.created_at)
    ):
        deliveries = [delivery_record(d) for d in latest(session, endpoint.id, per_endpoint)]
        rows.append({**endpoint_record(endpoint), "deliveries": deliveries})
    return rows
