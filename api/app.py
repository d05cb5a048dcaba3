"""The FastAPI app: /v1 (JSON, OpenAPI at /openapi.json), /healthz, /metrics and the dashboard.

Run it with `docpipe api` (or `uvicorn api.app:create_app --factory`); `docpipe up`
starts it beside the workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from api import (
    dashboard,
    errors,
    idempotency,
    ops,
    v1_ask,
    v1_documents,
    v1_index,
    v1_jobs,
    v1_models,
    v1_monitor,
    v1_search,
    v1_sources,
    v1_tenant,
    v1_topics,
    v1_webhooks,
)
from api.context import ApiContext
from api.errors import publish_error_bodies
from api.idempotency import Idempotency
from api.metrics import registry_for
from api.observe import HttpMetrics, RequestContext
from pipeline.config import Settings, get_settings
from pipeline.logs import configure_logging

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).parent


def create_app(
    settings: Settings | None = None,
    enqueue: Callable[[str], None] | None = None,
    send_task: Callable[[str, list], None] | None = None,
) -> FastAPI:
    """`enqueue(job_id)` sends a job's first task, `send_task(name, args)` any other task; both go
    through Celery by default, like `docpipe ingest` (tests pass recorders)."""
    configure_logging("api")
    ctx = ApiContext(settings or get_settings(), enqueue, send_task)
    # /docs and /redoc serve their scripts from the fastapi-offline package, never from a CDN
    app = FastAPIOffline(
        title="docpipe",
        version="1",
        description="Upload documents, follow their jobs, search a tenant's corpus. Every /v1 request "
        "needs an API key (X-API-Key or Authorization: Bearer); it decides the tenant.",
    )
    app.state.ctx = ctx
    app.state.registry = registry_for(ctx)
    app.add_middleware(Idempotency)  # inside RequestContext: its answers get request ids and metrics too
    app.add_middleware(RequestContext, metrics=HttpMetrics(app.state.registry))
    errors.install(app)
    v1_webhooks.wire(ctx)
    dashboard.install(app)
    for module in (
        v1_documents,
        v1_jobs,
        v1_search,
        v1_models,
        v1_index,
        ops,
        dashboard,
        v1_sources,
        v1_monitor,
        v1_topics,
        v1_ask,
        v1_webhooks,
        v1_tenant,
    ):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    publish_error_bodies(app, idempotency.document)
    return app
