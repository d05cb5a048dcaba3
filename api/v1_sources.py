"""Feeds and folder sources of the caller's tenant: list, read, add, change, remove, run now.

A folder is a path on the server: API clients may add one only below a folder the operator opened to them
(DOCPIPE_API_FOLDER_ROOTS); with none opened, folder sources are added with `docpipe sources add-folder`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import require_tenant
from api.errors import ApiError
from api.pages import Page, PageParams, page, page_params
from api.schemas import DeleteAccepted, Error
from pipeline.sources import SourceError, catalog, parse_every
from pipeline.store.models_sources import Source
from pipeline.types import utcnow
from workers import client

router = APIRouter(prefix="/v1", tags=["sources"])
_ID = r"^[0-9a-f]{32}$"
_AUTH = {401: {"model": Error}, 422: {"model": Error}}
_ONE = {401: {"model": Error}, 404: {"model": Error}, 409: {"model": Error}, 422: {"model": Error}}
_EVERY = Field("15m", max_length=32, pattern=r"^[0-9a-z ]+$", description="30s, 5m, 1h, 1d, 1h30m")
_CRON = Field(None, max_length=120, description='Cron instead of `every`, e.g. "0 6 * * *" (docs/schedules.md)')
_TZ = Field(None, max_length=64, description="IANA time zone of `cron`, e.g. Europe/Berlin (default UTC)")
_REMOVED = {202: {"model": DeleteAccepted, "description": "Removed; its documents go in a delete job"}}


class SourceOut(BaseModel):
    """A feed or a folder with its schedule and the state of its last run."""

    model_config = ConfigDict(extra="allow")  # schedule features may add their fields
    id: str
    tenant: str
    kind: str
    location: str
    every: str | None = Field(description="The interval; null when `cron` schedules it")
    every_seconds: int | None
    cron: str | None = Field(None, description="Cron expression (five fields), read in `timezone`")
    timezone: str | None = None
    timeout_seconds: float | None
    enabled: bool
    prune: bool
    failures: int
    last_status: str | None
    last_error: str | None
    last_job_id: str | None
    running: bool
    next_run_at: str | None
    last_run_at: str | None
    last_success_at: str | None
    created_at: str | None


class SourcePage(Page[SourceOut]):
    """A page of sources, oldest first."""


class FeedIn(BaseModel):
    url: str = Field(min_length=1, max_length=2048, pattern=r"^[^\x00]*$", description="http(s) feed URL")
    every: str = _EVERY
    cron: str | None = _CRON
    tz: str | None = _TZ
    timeout_seconds: float | None = Field(None, gt=0, le=600)
    prune: bool = Field(False, description="Delete the documents of items that leave the feed")


class SourceIn(BaseModel):
    kind: Literal["feed", "folder"]
    location: str = Field(
        min_length=1, max_length=2048, pattern=r"^[^\x00]*$", description="A feed URL, or a folder on the server"
    )
    every: str = _EVERY
    cron: str | None = _CRON
    tz: str | None = _TZ
    timeout_seconds: float | None = Field(None, gt=0, le=600, description="Feeds: download timeout")
    prune: bool = Field(False, description="Feeds: delete the documents of items that leave it (folders always do)")


class SourcePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every: str | None = Field(None, max_length=32, pattern=r"^[0-9a-z ]+$")
    timeout_seconds: float | None = Field(None, gt=0, le=600)
    prune: bool | None = None
    enabled: bool | None = Field(None, description="false: the schedule skips it until enabled again")


class RunQueued(BaseModel):
    source_id: str
    queued: bool


def _tenant_source(session: Session, tenant: str, source_id: str, kind: str | None = "feed") -> Source:
    """The source, if it belongs to `tenant`; another tenant's source is as absent as a missing one."""
    source = session.get(Source, source_id) if re.fullmatch(_ID, source_id) else None
    if source is None or source.tenant != tenant or (kind and source.kind != kind):
        raise ApiError(404, f"no {kind or 'source'} {source_id} in this tenant")
    return source


def _list(request: Request, tenant: str, kind: str | None, paging: PageParams) -> dict:
    stmt = select(Source).where(Source.tenant == tenant)
    if kind:
        stmt = stmt.where(Source.kind == kind)
    with request.app.state.ctx.session() as session:
        return page(session, stmt, (Source.created_at, Source.id), paging, catalog.source_record, descending=False)


@router.get("/feeds", response_model=SourcePage, responses=_AUTH, summary="Feeds of this tenant, oldest first")
def list_feeds(request: Request, tenant: str = Depends(require_tenant), paging: PageParams = Depends(page_params)):
    return _list(request, tenant, "feed", paging)


@router.get("/sources", response_model=SourcePage, responses=_AUTH, summary="Feeds and folders, oldest first")
def list_sources(
    request: Request,
    tenant: str = Depends(require_tenant),
    kind: Literal["feed", "folder"] | None = None,
    paging: PageParams = Depends(page_params),
):
    return _list(request, tenant, kind, paging)


def _add(request: Request, tenant: str, kind: str, location: str, body: FeedIn | SourceIn) -> dict:
    try:
        seconds = 0 if body.cron else parse_every(body.every)
        with request.app.state.ctx.session() as session:
            source = catalog.add_source(
                session, kind, location, seconds, tenant, body.timeout_seconds, body.prune, body.cron, body.tz
            )
            return catalog.source_record(source)
    except SourceError as exc:
        raise ApiError(422, str(exc), f"invalid_{kind}") from None


@router.post("/feeds", status_code=201, response_model=SourceOut, responses=_ONE, summary="Poll a feed on a schedule")
def add_feed(request: Request, feed: FeedIn, tenant: str = Depends(require_tenant)) -> dict:
    return _add(request, tenant, "feed", feed.url, feed)


@router.post(
    "/sources",
    status_code=201,
    response_model=SourceOut,
    responses={**_ONE, 403: {"model": Error}},
    summary="Add a feed, or a server folder below DOCPIPE_API_FOLDER_ROOTS, synced on a schedule",
)
def add_source(request: Request, body: SourceIn, tenant: str = Depends(require_tenant)) -> dict:
    if body.kind == "folder":
        _check_folder(request.app.state.ctx.settings.api.folder_roots, body.location)
    return _add(request, tenant, body.kind, body.location, body)


def _check_folder(roots_setting: str, location: str) -> None:
    roots = [Path(r.strip()).resolve() for r in roots_setting.split(",") if r.strip()]
    if not roots:
        raise ApiError(
            403,
            "folder sources cannot be added through the API here: the operator may open folders with "
            "DOCPIPE_API_FOLDER_ROOTS, or add one with `docpipe sources add-folder`",
        )
    path = Path(location).expanduser().resolve()
    if not any(path == root or root in path.parents for root in roots):
        raise ApiError(403, f"{location} is not below a folder in DOCPIPE_API_FOLDER_ROOTS")


@router.get("/sources/{source_id}", response_model=SourceOut, responses=_ONE, summary="A feed or folder source")
def get_source(request: Request, source_id: str, tenant: str = Depends(require_tenant)) -> dict:
    with request.app.state.ctx.session() as session:
        return catalog.source_record(_tenant_source(session, tenant, source_id, None))


@router.patch(
    "/sources/{source_id}", response_model=SourceOut, responses=_ONE, summary="Change a source's schedule or options"
)
def change_source(request: Request, source_id: str, body: SourcePatch, tenant: str = Depends(require_tenant)) -> dict:
    with request.app.state.ctx.session() as session:
        source = _tenant_source(session, tenant, source_id, None)
        if body.every is not None:
            try:
                source.every_seconds = parse_every(body.every)
                source.cron = source.timezone = None  # an interval replaces a cron schedule
            except SourceError as exc:
                raise ApiError(422, str(exc), "invalid_source") from None
        if body.prune is not None and source.kind == "feed":
            source.prune = body.prune
        elif body.prune is False:
            raise ApiError(422, "prune is an option of feeds: a folder always deletes removed files' documents")
        if body.timeout_seconds is not None:
            source.timeout_seconds = body.timeout_seconds
        if body.enabled is not None:
            source.enabled = body.enabled
        session.flush()
        return catalog.source_record(source)


def _remove(request: Request, tenant: str, source_id: str, kind: str | None, delete_documents: bool) -> Response:
    from pipeline.sources.prune import remove_source

    ctx = request.app.state.ctx
    with ctx.session() as session:
        job = remove_source(session, _tenant_source(session, tenant, source_id, kind), delete_documents)
        accepted = {"job_id": job.id, "state": job.state, "documents": job.total} if job else None
    if accepted is None:
        return Response(status_code=204)
    ctx.send_task(client.DELETE_DOCUMENTS, [accepted["job_id"]])
    return JSONResponse(status_code=202, content=accepted)


_DELETE_DOCUMENTS = Query(False, description="Delete its documents too, in a delete job")


@router.delete(
    "/feeds/{feed_id}",
    status_code=204,
    responses={**_ONE, **_REMOVED},
    summary="Stop polling a feed; with delete_documents=true, delete its documents too",
)
def remove_feed(
    request: Request, feed_id: str, tenant: str = Depends(require_tenant), delete_documents: bool = _DELETE_DOCUMENTS
) -> Response:
    """204: removed (its documents stay indexed). 202: removed, and a delete job deletes its documents (none: no
    job, 204)."""
    return _remove(request, tenant, feed_id, "feed", delete_documents)


@router.delete(
    "/sources/{source_id}",
    status_code=204,
    responses={**_ONE, **_REMOVED},
    summary="Remove a feed or folder source; with delete_documents=true, delete its documents too",
)
def remove_source(
    request: Request, source_id: str, tenant: str = Depends(require_tenant), delete_documents: bool = _DELETE_DOCUMENTS
) -> Response:
    return _remove(request, tenant, source_id, None, delete_documents)


def _run(request: Request, tenant: str, source_id: str, kind: str | None) -> dict:
    ctx = request.app.state.ctx
    lease = ctx.settings.sources.lease_seconds
    with ctx.session() as session:
        source = _tenant_source(session, tenant, source_id, kind)
        token = catalog.claim(session, source.id, utcnow(), lease, force=True)
        busy = None if token else catalog.busy_reason(session, source, utcnow(), lease)
    if token is None:
        raise ApiError(409, f"{kind or 'source'} {source_id} is busy: {busy or 'another run holds it'}")
    ctx.send_task(client.RUN_SOURCE, [source_id, token])
    return {"source_id": source_id, "queued": True}


@router.post(
    "/feeds/{feed_id}/run", status_code=202, response_model=RunQueued, responses=_ONE, summary="Poll a feed now"
)
def run_feed(request: Request, feed_id: str, tenant: str = Depends(require_tenant)) -> dict:
    return _run(request, tenant, feed_id, "feed")


@router.post(
    "/sources/{source_id}/run",
    status_code=202,
    response_model=RunQueued,
    responses=_ONE,
    summary="Run (re-sync) a source now",
)
def run_source(request: Request, source_id: str, tenant: str = Depends(require_tenant)) -> dict:
    return _run(request, tenant, source_id, None)
