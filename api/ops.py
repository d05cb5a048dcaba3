"""/healthz and /metrics: for load balancers and Prometheus, without a key, without tenant data."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from api.schemas import Health

router = APIRouter(tags=["operations"])


def _check(probe) -> str:
    try:
        probe()
        return "ok"
    except Exception as exc:  # any failure of a probe is the answer to "is it reachable?"
        return f"unreachable: {type(exc).__name__}: {str(exc)[:200]}"


def checks(ctx) -> dict[str, str]:
    def sql():
        with ctx.session() as session:
            session.execute(text("SELECT 1"))

    def elasticsearch():
        ctx.es.options(request_timeout=3, max_retries=0).info()

    return {"sql": _check(sql), "elasticsearch": _check(elasticsearch), "redis": _check(ctx.redis.ping)}


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health}},
    summary="Elasticsearch, Redis and SQL reachable: 200, else 503 naming what failed",
)
def healthz(request: Request):
    results = checks(request.app.state.ctx)
    failed = sorted(name for name, status in results.items() if status != "ok")
    body = {"status": "ok" if not failed else "unavailable", "checks": results, "failed": failed}
    return JSONResponse(body, status_code=503 if failed else 200)


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus text exposition",
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
