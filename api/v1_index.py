"""The index: reindex and roll back (admin tenants: the index is shared), and verification of the caller's tenant
(does the live index hold exactly its chunks in SQL?). Index versions are listed by api/v1_models.py."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.auth import require_admin, require_tenant
from api.errors import ApiError
from api.schemas import Error
from workers import client

router = APIRouter(prefix="/v1", tags=["index"])


class VerifyOut(BaseModel):
    job_id: str
    index: str | None
    tenant: str | None
    sql_chunks: int
    index_chunks: int
    missing: int
    extra: int
    stale: int
    unhashed: int
    drift: int
    samples: dict[str, list[str]]
    note: str | None = None
    checked_at: str


class RepairAccepted(BaseModel):
    job_id: str
    state: str


class ReindexIn(BaseModel):
    """What `docpipe reindex` takes; all optional: a reindex with nothing changed is a no-op job."""

    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=500, pattern=r"^[^\x00]*$", description="Why; kept with the version")
    model: str | None = Field(
        None, min_length=1, max_length=2048, pattern=r"^[^\x00]*$", description="A model folder on the server"
    )
    chunk_tokens: int | None = Field(None, ge=16, le=8192, description="Override DOCPIPE_CHUNK_TOKENS once")
    chunk_overlap: int | None = Field(None, ge=0, le=4096, description="Override DOCPIPE_CHUNK_OVERLAP once")
    force: bool = Field(False, description="Rebuild even if the configuration is unchanged")
    batch_docs: int | None = Field(None, ge=1, le=100_000, description="Documents per step")


class IndexJobAccepted(BaseModel):
    job_id: str
    kind: str  # reindex | rollback
    state: str


_ADMIN = {401: {"model": Error}, 403: {"model": Error}, 409: {"model": Error}, 422: {"model": Error}}


def _start(request: Request, options: dict, kind: str) -> dict:
    from pipeline.reindex import active_reindex_job, create_reindex_job

    ctx = request.app.state.ctx
    with ctx.session() as session:
        running = active_reindex_job(session)
        if running:
            raise ApiError(
                409,
                f"reindex job {running} is still queued or running; follow it at /v1/jobs/{running}",
                job_id=running,
            )
        job_id = create_reindex_job(session, options, kind).id
    ctx.send_task(client.REINDEX, [job_id])  # after commit: the worker must find the row
    return {"job_id": job_id, "kind": kind, "state": "queued"}


@router.post(
    "/index/reindex",
    status_code=202,
    response_model=IndexJobAccepted,
    responses=_ADMIN,
    summary="Build the next index version from SQL and swap to it (a job; a no-op when nothing changed)",
)
def reindex(request: Request, body: ReindexIn, tenant: str = Depends(require_admin)) -> dict:
    from pipeline.errors import ConfigError
    from pipeline.reindex import IndexConfig

    s = request.app.state.ctx.settings
    overlap = s.chunk.overlap if body.chunk_overlap is None else body.chunk_overlap
    if overlap >= (body.chunk_tokens or s.chunk.tokens):
        raise ApiError(422, "chunk_overlap must be below chunk_tokens")
    if body.model is not None:
        try:
            IndexConfig.for_model(body.model, body.chunk_tokens or s.chunk.tokens, overlap)
        except ConfigError as exc:
            raise ApiError(422, str(exc), "invalid_model") from None
    options = {
        "action": "build",
        "model": body.model,
        "chunk_tokens": body.chunk_tokens,
        "chunk_overlap": body.chunk_overlap,
        "force": body.force,
        "reason": body.reason or (f"model {body.model}" if body.model else None),
        "batch_docs": body.batch_docs,
    }
    return _start(request, {k: v for k, v in options.items() if v not in (None, False)}, "reindex")


@router.post(
    "/index/rollback",
    status_code=202,
    response_model=IndexJobAccepted,
    responses=_ADMIN,
    summary="Swap back to the previous index version, caught up with what changed since (a job)",
)
def rollback(request: Request, tenant: str = Depends(require_admin)) -> dict:
    return _start(request, {"action": "rollback", "reason": "rollback"}, "rollback")


@router.post(
    "/index/verify",
    response_model=VerifyOut,
    responses={202: {"model": RepairAccepted}, 401: {"model": Error}},
    summary="Compare the tenant's chunks in the live index with SQL; with repair=true, repair them in a job",
)
def verify_index(
    request: Request,
    tenant: str = Depends(require_tenant),
    repair: bool = Query(False, description="Re-index missing and stale chunks and delete extras, as a job."),
):
    from pipeline.index import IndexLayout
    from pipeline.reindex.verify import create_verify_job, record_result, run_verify

    ctx = request.app.state.ctx
    if repair:  # the repair embeds: it runs on the gpu queue; follow it at /v1/jobs/{job_id}
        with ctx.session() as session:
            job_id = create_verify_job(session, tenant, True, "api").id
        ctx.send_task(client.VERIFY_INDEX, [job_id])
        return JSONResponse(status_code=202, content={"job_id": job_id, "state": "queued"})
    with ctx.session() as session:
        job = create_verify_job(session, tenant, False, "api")
        result = run_verify(
            session, IndexLayout(ctx.es, ctx.settings.index_prefix), tenant, None, ctx.settings.reindex.verify_samples
        )
        record_result(job, result)
        return {"job_id": job.id, **result.to_dict()}


def drift_metrics(session):
    """/metrics: the drift the last verify of every tenant left (after its repair, if it repaired), by kind."""
    from prometheus_client.core import GaugeMetricFamily

    from pipeline.reindex.verify import DRIFT_KINDS, last_result

    found = last_result(session)
    drift = GaugeMetricFamily(
        "docpipe_index_drift_chunks",
        "Chunks that differed between the live index and SQL at the last verify of all tenants "
        "(found, or left after its repair)",
        labels=["kind"],
    )
    when = GaugeMetricFamily("docpipe_index_verified_timestamp_seconds", "When the last verify of all tenants ran")
    if found is not None:
        job, result = found
        for kind in DRIFT_KINDS:
            drift.add_metric([kind], result.left_of(kind))
        when.add_metric([], (job.finished_at or job.created_at).timestamp())
    yield drift
    yield when


def last_verify(session, tenant: str) -> dict | None:
    """The dashboard's line: the latest verify of this tenant or of all tenants."""
    from pipeline.reindex.verify import ALL_TENANTS, last_result, summary

    found = [r for r in (last_result(session, tenant), last_result(session, ALL_TENANTS)) if r is not None]
    if not found:
        return None
    job, result = max(found, key=lambda r: r[0].created_at)
    return {
        "job_id": job.id,
        "when": job.finished_at or job.created_at,
        "drift": result.drift_left,
        "text": summary(result),
    }
