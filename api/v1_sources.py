"""Feeds and sources of the caller's tenant: list, add, remove, poll now.

Folder sources are listed but not created here: a folder is a path on the server, which no API
client should be able to point docpipe at.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from api.auth import require_tenant
from api.errors import ApiError
from api.schemas import DeleteAccepted, Error
from pipeline.sources import SourceError, catalog, parse_every
from pipeline.store.models_sources import Source
from pipeline.types import utcnow
from workers import client

router = APIRouter(prefix="/v1", tags=["feeds"])
_ID = r"^[0-9a-f]{32}$"
_ONE = {401: {"model": Error}, 404: {"model": Error}, 409: {"model": Error}, 422: {"model": Error}}


class FeedIn(BaseModel):
    url: str = Field(min_length=1, max_length=2048, pattern=r"^[^\x00]*$", description="http(s) feed URL")
    every: str = Field("15m", max_length=32, pattern=r"^[0-9a-z ]+$", description="30s, 5m, 1h, 1d, 1h30m")
    timeout_seconds: float | None = Field(None, gt=0, le=600)
    prune: bool = Field(False, description="Delete the documents of items that leave the feed")


def _tenant_source(session: Session, tenant: str, source_id: str, kind: str | None = "feed") -> Source:
    """The source, if it belongs to `tenant`; another tenant's source is as absent as a missing one."""
    source = session.get(Source, source_id) if re.fullmatch(_ID, source_id) else None
    if source is None or source.tenant != tenant or (kind and source.kind != kind):
        raise ApiError(404, f"no {kind or 'source'} {source_id} in this tenant")
    return source


@router.get("/feeds", responses={401: {"model": Error}}, summary="Feeds of this tenant")
def list_feeds(request: Request, tenant: str = Depends(require_tenant)) -> list[dict]:
    with request.app.state.ctx.session() as session:
        return [catalog.source_record(s) for s in catalog.list_sources(session, "feed", tenant)]


@router.get("/sources", responses={401: {"model": Error}}, summary="Feeds and folder sources")
def list_sources(request: Request, tenant: str = Depends(require_tenant)) -> list[dict]:
    with request.app.state.ctx.session() as session:
        return [catalog.source_record(s) for s in catalog.list_sources(session, None, tenant)]


@router.post("/feeds", status_code=201, responses=_ONE, summary="Poll a feed on a schedule")
def add_feed(request: Request, feed: FeedIn, tenant: str = Depends(require_tenant)) -> dict:
    try:
        seconds = parse_every(feed.every)
        with request.app.state.ctx.session() as session:
            return catalog.source_record(
                catalog.add_source(session, "feed", feed.url, seconds, tenant, feed.timeout_seconds, feed.prune)
            )
    except SourceError as exc:
        raise ApiError(422, str(exc), "invalid_feed") from None


@router.delete(
    "/feeds/{feed_id}",
    status_code=204,
    responses={**_ONE, 202: {"model": DeleteAccepted, "description": "Removed; its documents go in a delete job"}},
    summary="Stop polling a feed; with delete_documents=true, delete its documents too",
)
def remove_feed(
    request: Request,
    feed_id: str,
    tenant: str = Depends(require_tenant),
    delete_documents: bool = Query(False, description="Delete the feed's documents too, in a delete job"),
) -> Response:
    """204: removed (its documents stay indexed). 202: removed, and a delete job deletes its documents (none: no
    job, 204)."""
    from pipeline.sources.prune import remove_source

    ctx = request.app.state.ctx
    with ctx.session() as session:
        job = remove_source(session, _tenant_source(session, tenant, feed_id), delete_documents)
        accepted = {"job_id": job.id, "state": job.state, "documents": job.total} if job else None
    if accepted is None:
        return Response(status_code=204)
    ctx.send_task(client.DELETE_DOCUMENTS, [accepted["job_id"]])
    return JSONResponse(status_code=202, content=accepted)


@router.post("/feeds/{feed_id}/run", status_code=202, responses=_ONE, summary="Poll a feed now")
def run_feed(request: Request, feed_id: str, tenant: str = Depends(require_tenant)) -> dict:
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
