"""Models of the caller's tenant (list, promote, roll back) and the index versions."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select

from api.auth import require_tenant
from api.errors import ApiError
from api.pages import Page, PageParams, page, page_params
from api.schemas import Error, IndexVersionOut, ModelOut, index_version_out, model_out
from pipeline.infer.artefact import unusable
from pipeline.reindex.live import of_prefix
from pipeline.store import model_registry
from pipeline.store.models import IndexVersion
from pipeline.store.models_ml import ModelRecord

router = APIRouter(prefix="/v1", tags=["models"])
MODEL_ID = re.compile(r"[0-9a-f]{32}")
_TASK = Query(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
_ONE = {401: {"model": Error}, 404: {"model": Error}, 409: {"model": Error}}


class ModelPage(Page[ModelOut]):
    """A page of models, newest first."""


class IndexVersionPage(Page[IndexVersionOut]):
    """A page of index versions, newest first."""


def tenant_model(session, tenant: str, model_id: str) -> ModelRecord:
    row = session.get(ModelRecord, model_id) if MODEL_ID.fullmatch(model_id) else None
    if row is None or row.tenant != tenant:
        raise ApiError(404, f"no model {model_id} in this tenant")
    return row


@router.get(
    "/models", response_model=ModelPage, responses={401: {"model": Error}, 422: {"model": Error}}, summary="Models"
)
def list_models(
    request: Request,
    tenant: str = Depends(require_tenant),
    task: str | None = Query(None, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$"),
    paging: PageParams = Depends(page_params),
) -> dict:
    stmt = select(ModelRecord).where(ModelRecord.tenant == tenant)
    if task:
        stmt = stmt.where(ModelRecord.task == task)
    with request.app.state.ctx.session() as session:
        return page(session, stmt, (ModelRecord.created_at, ModelRecord.id), paging, model_out)


@router.get("/models/{model_id}", response_model=ModelOut, responses=_ONE)
def get_model(request: Request, model_id: str, tenant: str = Depends(require_tenant)) -> dict:
    with request.app.state.ctx.session() as session:
        return model_out(tenant_model(session, tenant, model_id))


@router.post(
    "/models/{model_id}/promote",
    response_model=ModelOut,
    responses=_ONE,
    summary="Make this model the live one of its task",
)
def promote(request: Request, model_id: str, tenant: str = Depends(require_tenant)) -> dict:
    with request.app.state.ctx.session() as session:
        model = tenant_model(session, tenant, model_id)
        problem = unusable(model.artefact_path) if model.status == "ready" else None
        if problem:
            raise ApiError(409, f"model {model.id} cannot be promoted: {problem}; the live model stays live")
        try:
            model_registry.promote(session, model)
        except ValueError as exc:
            raise ApiError(409, str(exc)) from None
        return model_out(model)


@router.post(
    "/models/rollback",
    response_model=ModelOut,
    responses=_ONE,
    summary="Return a task to the model that was live before",
)
def rollback(request: Request, task: str = _TASK, tenant: str = Depends(require_tenant)) -> dict:
    with request.app.state.ctx.session() as session:
        previous = model_registry.rollback(session, tenant, task, usable=lambda m: unusable(m.artefact_path) is None)
        if previous is None:
            raise ApiError(409, f"task {task} has no earlier usable model to return to")
        return model_out(previous)


@router.get(
    "/index-versions",
    response_model=IndexVersionPage,
    responses={401: {"model": Error}, 422: {"model": Error}},
    tags=["index"],
    summary="Physical index versions (shared by all tenants): live, building or retired, with their configuration",
)
def index_versions(
    request: Request, tenant: str = Depends(require_tenant), paging: PageParams = Depends(page_params)
) -> dict:
    del tenant  # authenticated, but versions hold no tenant data
    stmt = select(IndexVersion).where(of_prefix(request.app.state.ctx.settings.index_prefix))
    with request.app.state.ctx.session() as session:
        return page(session, stmt, (IndexVersion.version, IndexVersion.id), paging, index_version_out)
