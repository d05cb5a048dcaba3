"""Jobs of the caller's tenant: list, detail with dead letters, cancel, replay."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select

from api.auth import is_admin, require_tenant
from api.errors import ApiError
from api.pages import PageParams, page, page_params
from api.schemas import Accepted, Error, JobDetail, JobList, JobOut, display_name, job_out
from pipeline.jobs.stats import job_stats
from pipeline.reindex import REINDEX_TENANT
from pipeline.store import repo
from pipeline.store.models import Job, JobState

router = APIRouter(prefix="/v1", tags=["jobs"])
JOB_ID = re.compile(r"[0-9a-f]{32}")
_AUTH = {401: {"model": Error}}
_ONE = {401: {"model": Error}, 404: {"model": Error}, 409: {"model": Error}}
_STATES = "|".join(JobState.ALL)


def tenant_job(session, tenant: str, job_id: str, index_wide: bool = False) -> Job:
    """The job, if it belongs to `tenant`; another tenant's job is as absent as a missing one. With
    `index_wide`, also a job over every tenant (reindex, rollback, verify of all tenants)."""
    job = session.get(Job, job_id) if JOB_ID.fullmatch(job_id) else None
    if job is None or not (job.tenant == tenant or (index_wide and job.tenant == REINDEX_TENANT)):
        raise ApiError(404, f"no job {job_id} in this tenant")
    return job


@router.get("/jobs", response_model=JobList, responses=_AUTH, summary="The tenant's jobs, newest first")
def list_jobs(
    request: Request,
    tenant: str = Depends(require_tenant),
    state: str | None = Query(None, pattern=f"^({_STATES})$"),
    kind: str | None = Query(None, max_length=32, pattern=r"^[a-z_-]+$"),
    paging: PageParams = Depends(page_params),
) -> dict:
    stmt = select(Job).where(Job.tenant == tenant)
    if state:
        stmt = stmt.where(Job.state == state)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    with request.app.state.ctx.session() as session:
        return page(session, stmt, (Job.created_at, Job.id), paging, job_out)


@router.get(
    "/jobs/{job_id}",
    response_model=JobDetail,
    responses=_ONE,
    summary="A job with its stages and dead letters; admin tenants also see index-wide jobs (reindex, verify)",
)
def get_job(request: Request, job_id: str, tenant: str = Depends(require_tenant)) -> dict:
    ctx = request.app.state.ctx
    with ctx.session() as session:
        job = tenant_job(session, tenant, job_id, index_wide=is_admin(ctx.settings, tenant))
        return job_out(job, repo.dead_letters(session, job.id), ctx.uploads_prefix, job_stats(session, job))


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobOut,
    responses=_ONE,
    summary="Cancel a job: its queued tasks do nothing, the job says cancelled",
)
def cancel_job(request: Request, job_id: str, tenant: str = Depends(require_tenant)) -> dict:
    ctx = request.app.state.ctx
    with ctx.session() as session:
        job = tenant_job(session, tenant, job_id, index_wide=is_admin(ctx.settings, tenant))
        if not repo.cancel_job(session, job):
            raise ApiError(409, f"job {job_id} already ended {job.state}", state=job.state)
        return job_out(job)


@router.post(
    "/jobs/{job_id}/replay",
    status_code=202,
    response_model=Accepted,
    responses=_ONE,
    summary="Ingest again the files behind a job's dead letters, as a new job",
)
def replay_job(request: Request, job_id: str, tenant: str = Depends(require_tenant)) -> dict:
    ctx = request.app.state.ctx
    with ctx.session() as session:
        job = tenant_job(session, tenant, job_id)
        replay = repo.create_replay_job(session, job)
        if replay is None:
            raise ApiError(409, f"job {job_id} has no dead letters left to replay")
        replay_id, inputs = replay.id, list(replay.inputs)
    ctx.enqueue(replay_id)
    return {
        "job_id": replay_id,
        "state": JobState.QUEUED,
        "files": [display_name(p, ctx.uploads_prefix) for p in inputs],
    }
