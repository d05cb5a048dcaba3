"""Sentiment monitoring of the caller's tenant: the watchlist, per-entity series, spike alerts."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from api.auth import require_tenant
from api.errors import ApiError
from api.schemas import Error
from pipeline.monitor import alert_record, list_alerts, series, watchlist
from pipeline.store.models_monitor import WatchEntity

router = APIRouter(prefix="/v1", tags=["watchlist"])
_TICKER = r"^\$?[A-Za-z0-9.]{1,12}$"
_ONE = {401: {"model": Error}, 404: {"model": Error}, 409: {"model": Error}, 422: {"model": Error}}


class WatchIn(BaseModel):
    names: list[str] = Field(
        default_factory=list, max_length=50, description="Names and aliases the entity goes by, e.g. Apple, Apple Inc"
    )


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


@router.get("/watchlist", responses={401: {"model": Error}}, summary="Watched entities")
def list_watchlist(request: Request, tenant: str = Depends(require_tenant)) -> list[dict]:
    with request.app.state.ctx.session() as session:
        return [_entity_out(e) for e in watchlist.entities(session, tenant)]


@router.put("/watchlist/{ticker}", responses=_ONE, summary="Watch an entity (or replace its names)")
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


@router.get("/alerts", responses={401: {"model": Error}}, summary="Sentiment spike alerts, newest first")
def alerts(
    request: Request,
    tenant: str = Depends(require_tenant),
    entity: str | None = Query(None, pattern=_TICKER),
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict]:
    with request.app.state.ctx.session() as session:
        return [alert_record(a) for a in list_alerts(session, tenant, entity, limit)]


def _utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
