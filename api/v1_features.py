"""Endpoints over features built beside this one (feeds, watchlist, alerts), and the watch charts.

Each group is wired only when its package is in this build, so the API never offers a route
whose backing code is missing. Folder sources are listed but not created here: a folder is a
path on the server, which no API client should be able to point docpipe at.
"""

from __future__ import annotations

import importlib.util
import re
from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from api.auth import require_tenant
from api.errors import ApiError
from api.schemas import Error
from pipeline.types import utcnow
from workers import client

_ID = r"^[0-9a-f]{32}$"
_TICKER = r"^\$?[A-Za-z0-9.]{1,12}$"
_ONE = {401: {"model": Error}, 404: {"model": Error}, 409: {"model": Error}, 422: {"model": Error}}


def has_sources() -> bool:
    return importlib.util.find_spec("pipeline.sources") is not None


def has_monitor() -> bool:
    return importlib.util.find_spec("pipeline.monitor") is not None


def available() -> list:
    return [m for m, present in ((_Feeds, has_sources()), (_Monitor, has_monitor())) if present]


# --- feeds -------------------------------------------------------------------------------------


class FeedIn(BaseModel):
    url: str = Field(min_length=1, max_length=2048, pattern=r"^[^\x00]*$", description="http(s) feed URL")
    every: str = Field("15m", max_length=32, pattern=r"^[0-9a-z ]+$", description="30s, 5m, 1h, 1d, 1h30m")
    timeout_seconds: float | None = Field(None, gt=0, le=600)


class _Feeds:
    router = APIRouter(prefix="/v1", tags=["feeds"])


def _tenant_source(session, tenant: str, source_id: str, kind: str | None = "feed"):
    from pipeline.store.models_sources import Source

    source = session.get(Source, source_id) if re.fullmatch(_ID, source_id) else None
    if source is None or source.tenant != tenant or (kind and source.kind != kind):
        raise ApiError(404, f"no {kind or 'source'} {source_id} in this tenant")
    return source


@_Feeds.router.get("/feeds", responses={401: {"model": Error}}, summary="Feeds of this tenant")
def list_feeds(request: Request, tenant: str = Depends(require_tenant)) -> list[dict]:
    from pipeline.sources import catalog

    with request.app.state.ctx.session() as session:
        return [catalog.source_record(s) for s in catalog.list_sources(session, "feed", tenant)]


@_Feeds.router.get("/sources", responses={401: {"model": Error}}, summary="Feeds and folder sources")
def list_sources(request: Request, tenant: str = Depends(require_tenant)) -> list[dict]:
    from pipeline.sources import catalog

    with request.app.state.ctx.session() as session:
        return [catalog.source_record(s) for s in catalog.list_sources(session, None, tenant)]


@_Feeds.router.post("/feeds", status_code=201, responses=_ONE, summary="Poll a feed on a schedule")
def add_feed(request: Request, feed: FeedIn, tenant: str = Depends(require_tenant)) -> dict:
    from pipeline.sources import SourceError, catalog, parse_every

    try:
        seconds = parse_every(feed.every)
        with request.app.state.ctx.session() as session:
            return catalog.source_record(
                catalog.add_source(session, "feed", feed.url, seconds, tenant, feed.timeout_seconds)
            )
    except SourceError as exc:
        raise ApiError(422, str(exc), "invalid_feed") from None


@_Feeds.router.delete("/feeds/{feed_id}", status_code=204, responses=_ONE, summary="Stop polling a feed")
def remove_feed(request: Request, feed_id: str, tenant: str = Depends(require_tenant)) -> Response:
    with request.app.state.ctx.session() as session:
        session.delete(_tenant_source(session, tenant, feed_id))
    return Response(status_code=204)


@_Feeds.router.post("/feeds/{feed_id}/run", status_code=202, responses=_ONE, summary="Poll a feed now")
def run_feed(request: Request, feed_id: str, tenant: str = Depends(require_tenant)) -> dict:
    from pipeline.sources import catalog

    ctx = request.app.state.ctx
    lease = ctx.settings.sources.lease_seconds
    with ctx.session() as session:
        source = _tenant_source(session, tenant, feed_id)
        token = catalog.claim(session, source.id, utcnow(), lease, force=True)
        busy = None if token else catalog.busy_reason(session, source, utcnow(), lease)
    if token is None:
        raise ApiError(409, f"feed {feed_id} is busy: {busy or 'another run holds it'}")
    ctx.send_task(client.RUN_SOURCE, [feed_id, token])
    return {"feed_id": feed_id, "queued": True}


# --- watchlist and alerts ---------------------------------------------------------------------


class WatchIn(BaseModel):
    names: list[str] = Field(
        default_factory=list, max_length=50, description="Names and aliases the entity goes by, e.g. Apple, Apple Inc"
    )


class _Monitor:
    router = APIRouter(prefix="/v1", tags=["watchlist"])


def _entity_out(e) -> dict:
    return {
        "ticker": e.ticker,
        "names": list(e.names or []),
        "alerts": e.episodes,
        "created_at": e.created_at.isoformat() if e.created_at else None,
    }


def _watched(session, tenant: str, ticker: str):
    from pipeline.monitor import watchlist

    entity = watchlist.get(session, tenant, ticker) if re.fullmatch(_TICKER, ticker) else None
    if entity is None:
        raise ApiError(404, f"{ticker} is not on this tenant's watchlist")
    return entity


@_Monitor.router.get("/watchlist", responses={401: {"model": Error}}, summary="Watched entities")
def list_watchlist(request: Request, tenant: str = Depends(require_tenant)) -> list[dict]:
    from pipeline.monitor import watchlist

    with request.app.state.ctx.session() as session:
        return [_entity_out(e) for e in watchlist.entities(session, tenant)]


@_Monitor.router.put("/watchlist/{ticker}", responses=_ONE, summary="Watch an entity (or replace its names)")
def watch(request: Request, ticker: str, body: WatchIn, tenant: str = Depends(require_tenant)) -> dict:
    from pipeline.monitor import watchlist

    if any("\x00" in n or len(n) > 200 for n in body.names):
        raise ApiError(422, "names must be at most 200 characters, without NUL")
    try:
        with request.app.state.ctx.session() as session:
            return _entity_out(watchlist.add(session, tenant, ticker, body.names))
    except ValueError as exc:
        raise ApiError(422, str(exc), "invalid_ticker") from None


@_Monitor.router.delete("/watchlist/{ticker}", status_code=204, responses=_ONE, summary="Stop watching")
def unwatch(request: Request, ticker: str, tenant: str = Depends(require_tenant)) -> Response:
    from pipeline.monitor import watchlist

    with request.app.state.ctx.session() as session:
        if not re.fullmatch(_TICKER, ticker) or not watchlist.remove(session, tenant, ticker):
            raise ApiError(404, f"{ticker} is not on this tenant's watchlist")
    return Response(status_code=204)


@_Monitor.router.get(
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
    from pipeline.monitor import series

    with request.app.state.ctx.session() as session:
        entity = _watched(session, tenant, ticker)
        return series(session, entity, by, _utc(since), _utc(until))


@_Monitor.router.get("/alerts", responses={401: {"model": Error}}, summary="Sentiment spike alerts, newest first")
def alerts(
    request: Request,
    tenant: str = Depends(require_tenant),
    entity: str | None = Query(None, pattern=_TICKER),
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict]:
    from pipeline.monitor import alert_record, list_alerts

    with request.app.state.ctx.session() as session:
        return [alert_record(a) for a in list_alerts(session, tenant, entity, limit)]


def _utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)


# --- the dashboard's charts -------------------------------------------------------------------


def watch_charts(session, tenant: str, days: int = 30) -> list[dict]:
    """Per watched entity: mean sentiment over the last `days` (hourly when the data is short), alerts marked."""
    if not has_monitor():
        return []
    from api import charts
    from pipeline.monitor import list_alerts, series, watchlist

    since = utcnow() - timedelta(days=days)
    out = []
    for entity in watchlist.entities(session, tenant):
        rows = series(session, entity, "day", since)
        if len(rows) < 3:
            rows = series(session, entity, "hour", since)
        points = [charts.Point(datetime.fromisoformat(r["start"]), r["mean_sentiment"], r["items"]) for r in rows]
        found = [a for a in list_alerts(session, tenant, entity.ticker, 200) if charts.aware(a.window_end) >= since]
        markers = [
            charts.Marker(
                charts.aware(a.window_end),
                f"negative share {a.negative_share:.0%} ({a.deviations:+.1f} sd, {a.items} items)",
            )
            for a in found
        ]
        out.append(
            {
                "entity": entity.ticker,
                "names": list(entity.names or []),
                "alerts": markers,
                "svg": charts.sentiment_svg(points, markers, f"{entity.ticker} sentiment"),
            }
        )
    return out
