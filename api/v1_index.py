"""Index verification for the caller's tenant: does the live index hold exactly its chunks in SQL?"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.auth import require_tenant
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
