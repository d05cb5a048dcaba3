"""Jobs of the caller's tenant: list, detail with dead letters, cancel, replay."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Query, Request

from api.auth import require_tenant
from api.errors import ApiError
from api.schemas import Accepted, Error, JobDetail, JobList, JobOut, display_name, job_out
from pipeline.jobs.stats import job_stats
from pipeline.store import repo
from pipeline.store.models import Job, JobState

router = APIRouter(prefix="/v1", tags=["jobs"])
JOB_ID = re.compile(r"[0-9a-f]{32}")
_AUTH = {401: {"model": Error}}
_ONE = {401: {"model": Error}, 404: {"model": Error}, 409: {"model": Error}}
_STATES = "|".join(JobState.ALL)


def tenant_job(session, tenant: str, job_id: str) -> Job:
    """The job, if it belongs to `tenant`; another tenant's job is as absent as a missing one."""
    job = session.get(Job, job_id) if JOB_ID.fullmatch(job_id) else None
    if job is None or job.tenant != tenant:
        raise ApiError(404, f"no job {job_id} in this tenant")
    return job


@router.get("/jobs", response_model=JobList, responses=_AUTH)
def list_jobs(
    request: Request,
    tenant: str = Depends(require_tenant),
    state: str | None = Query(None, pattern=f"^({_STATES})$"),
    kind: str | None = Query(None, max_length=32, pattern=r"^[a-z_-]+$"),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> dict:
    ctx = request.app.state.ctx
    with ctx.session() as session:
        rows, total = repo.page_jobs(session, tenant, state, kind, limit, offset)
        jobs = [job_out(j) for j in rows]
    return {"jobs": jobs, "total": total, "limit": limit, "offset": offset}


@router.get("/jobs/{job_id}", response_model=JobDetail, responses=_ONE)
def get_job(request: Request, job_id: str, tenant: str = Depends(require_tenant)) -> dict:
    ctx = request.app.state.ctx
    with ctx.session() as session:
        job = tenant_job(session, tenant, job_id)
        return job_out(job, repo.dead_letters(session, job.id), ctx.uploads_prefix, job_stats(session, job))


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobOut,
    responses=_ONE,
    summary="Cancel a job: its queued tasks do nothing, the job says cancelled",
)
def cancel_job(request: Request, job_id: str, tenant: str = Depends(require_tenant)) -> dict:
    with request.app.state.ctx.session() as session:
        job = tenant_job(session, tenant, job_id)
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
