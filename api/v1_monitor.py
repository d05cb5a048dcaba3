"""Sentiment monitoring of the caller's tenant: the watchlist, per-entity series, spike alerts."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import require_tenant
from api.errors import ApiError
from api.pages import Page, PageParams, page, page_params
from api.schemas import Error
from pipeline.monitor import alert_record, series, watchlist
from pipeline.monitor.topics import normalise_topic
from pipeline.store.models_monitor import Alert, WatchEntity

router = APIRouter(prefix="/v1", tags=["watchlist"])
_TICKER = r"^\$?[A-Za-z0-9.]{1,12}$"
_ONE = {401: {"model": Error}, 404: {"model": Error}, 409: {"model": Error}, 422: {"model": Error}}


class WatchIn(BaseModel):
    names: list[str] = Field(
        default_factory=list, max_length=50, description="Names and aliases the entity goes by, e.g. Apple, Apple Inc"
    )


class EntityOut(BaseModel):
    ticker: str
    names: list[str]
    alerts: int  # spike episodes so far
    created_at: str | None


class AlertOut(BaseModel):
    model_config = ConfigDict(extra="allow")  # alert kinds may add their fields
    id: int
    kind: str
    tenant: str
    entity: str | None = Field(description="The watched ticker; null for a topic alert")
    topic: str | None = Field(None, description="The topic; null for an entity alert")
    episode: int
    window_start: str | None
    window_end: str | None
    items: int
    negatives: int
    negative_share: float
    created_at: str | None
    ended_at: str | None


class WatchPage(Page[EntityOut]):
    """A page of watched entities, by ticker."""


class AlertPage(Page[AlertOut]):
    """A page of alerts, newest first."""


def _entity_out(e: WatchEntity) -> dict:
    return {
        "ticker": e.ticker,
        "names": list(e.names or []),
        "alerts": e.episodes,
        "created_at": e.created_at.isoformat() if e.created_at else None,
    }


def _watched(session: Session, tenant: str, ticker: str) -> WatchEntity:
    entity = watchlist.get(session, tenant, ticker) if re.fullmatch(_TICKER, ticker) else None
    if entity is None:
        raise ApiError(404, f"{ticker} is not on this tenant's watchlist")
    return entity


@router.get(
    "/watchlist",
    response_model=WatchPage,
    responses={401: {"model": Error}, 422: {"model": Error}},
    summary="Watched entities, by ticker",
)
def list_watchlist(
    request: Request, tenant: str = Depends(require_tenant), paging: PageParams = Depends(page_params)
) -> dict:
    stmt = select(WatchEntity).where(WatchEntity.tenant == tenant)
    with request.app.state.ctx.session() as session:
        return page(session, stmt, (WatchEntity.ticker, WatchEntity.id), paging, _entity_out, descending=False)


class SuggestionOut(BaseModel):
    name: str  # its most frequent spelling
    norm: str  # the folded name matching compares
    documents: int
    mentions: int


@router.get(
    "/watchlist/suggestions",
    response_model=list[SuggestionOut],
    responses={401: {"model": Error}, 422: {"model": Error}},
    summary="Organisations often found in the tenant's documents that no watched entity matches",
)
def watch_suggestions(
    request: Request,
    tenant: str = Depends(require_tenant),
    limit: int = Query(20, ge=1, le=200),
    offset: int = Query(0, ge=0, le=10_000),
    min_documents: int = Query(2, ge=1, le=100_000, description="Found in at least this many documents"),
) -> list[dict]:
    from pipeline.monitor.org_match import suggestions

    with request.app.state.ctx.session() as session:
        return suggestions(session, tenant, limit, min_documents, offset)


@router.put(
    "/watchlist/{ticker}", response_model=EntityOut, responses=_ONE, summary="Watch an entity (or replace its names)"
)
def watch(request: Request, ticker: str, body: WatchIn, tenant: str = Depends(require_tenant)) -> dict:
    if any("\x00" in n or len(n) > 200 for n in body.names):
        raise ApiError(422, "names must be at most 200 characters, without NUL")
    try:
        with request.app.state.ctx.session() as session:
            return _entity_out(watchlist.add(session, tenant, ticker, body.names))
    except ValueError as exc:
        raise ApiError(422, str(exc), "invalid_ticker") from None


@router.delete("/watchlist/{ticker}", status_code=204, responses=_ONE, summary="Stop watching")
def unwatch(request: Request, ticker: str, tenant: str = Depends(require_tenant)) -> Response:
    with request.app.state.ctx.session() as session:
        if not re.fullmatch(_TICKER, ticker) or not watchlist.remove(session, tenant, ticker):
            raise ApiError(404, f"{ticker} is not on this tenant's watchlist")
    return Response(status_code=204)


@router.get(
    "/watchlist/{ticker}/series", responses=_ONE, summary="Items, mean sentiment and negative share per hour or day"
)
def entity_series(
    request: Request,
    ticker: str,
    tenant: str = Depends(require_tenant),
    by: Literal["hour", "day"] = "day",
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict]:
    with request.app.state.ctx.session() as session:
        entity = _watched(session, tenant, ticker)
        return series(session, entity, by, _utc(since), _utc(until))


@router.get(
    "/alerts",
    response_model=AlertPage,
    responses={401: {"model": Error}, 422: {"model": Error}},
    summary="Sentiment spike alerts, newest first",
)
def alerts(
    request: Request,
    tenant: str = Depends(require_tenant),
    entity: str | None = Query(None, pattern=_TICKER),
    topic: str | None = Query(None, max_length=64, description="Only this topic's alerts"),
    paging: PageParams = Depends(page_params),
) -> dict:
    stmt = select(Alert).where(Alert.tenant == tenant)
    if entity:
        stmt = stmt.where(Alert.ticker == entity.strip().lstrip("$").upper())
    if topic:
        try:
            stmt = stmt.where(Alert.topic == normalise_topic(topic))
        except ValueError as exc:
            raise ApiError(422, str(exc), "invalid_topic") from None
    with request.app.state.ctx.session() as session:
        return page(session, stmt, (Alert.created_at, Alert.id), paging, alert_record)


def _utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
