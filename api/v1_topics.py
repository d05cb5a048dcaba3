"""Topics of the caller's tenant: define them by terms, list them, and follow each one's sentiment series."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from api.auth import require_tenant
from api.errors import ApiError
from api.pages import Page, PageParams, page, page_params
from api.schemas import Error
from pipeline.monitor import series, topics
from pipeline.store.models_topics import Topic

router = APIRouter(prefix="/v1", tags=["topics"])
_ONE = {401: {"model": Error}, 404: {"model": Error}, 422: {"model": Error}}


class TopicIn(BaseModel):
    terms: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Words or phrases that put an item in this topic while no topic model is live",
    )


class TopicOut(BaseModel):
    name: str
    terms: list[str]
    alerts: int = Field(description="Spike episodes so far")
    open: bool = Field(description="A spike episode is under way")
    created_at: str | None


class Bucket(BaseModel):
    start: str
    items: int
    mean_sentiment: float
    negative_share: float


def _out(t: Topic) -> dict:
    return {
        "name": t.name,
        "terms": list(t.terms or []),
        "alerts": t.episodes,
        "open": t.open_alert_id is not None,
        "created_at": t.created_at.isoformat() if t.created_at else None,
    }


@router.get("/topics", response_model=Page[TopicOut], responses={401: {"model": Error}}, summary="Topics, by name")
def list_topics(request: Request, tenant: str = Depends(require_tenant), params: PageParams = Depends(page_params)):
    with request.app.state.ctx.session() as session:
        stmt = select(Topic).where(Topic.tenant == tenant)
        return page(session, stmt, [Topic.name], params, _out, descending=False)


@router.put("/topics/{name}", response_model=TopicOut, responses=_ONE, summary="Define a topic (or replace its terms)")
def put_topic(request: Request, name: str, body: TopicIn, tenant: str = Depends(require_tenant)) -> dict:
    if any("\x00" in t or len(t) > 200 for t in body.terms):
        raise ApiError(422, "terms must be at most 200 characters, without NUL")
    try:
        with request.app.state.ctx.session() as session:
            return _out(topics.add(session, tenant, name, body.terms))
    except ValueError as exc:
        raise ApiError(422, str(exc), "invalid_topic") from None


@router.delete("/topics/{name}", status_code=204, responses=_ONE, summary="Forget a topic, its tags and alerts")
def delete_topic(request: Request, name: str, tenant: str = Depends(require_tenant)) -> Response:
    with request.app.state.ctx.session() as session:
        if not topics.remove(session, tenant, name):
            raise ApiError(404, f"no topic {name} for this tenant")
    return Response(status_code=204)


@router.get(
    "/topics/{name}/series",
    response_model=list[Bucket],
    responses=_ONE,
    summary="Items, mean sentiment and negative share of a topic per hour or day",
)
def topic_series(
    request: Request, name: str, tenant: str = Depends(require_tenant), by: Literal["hour", "day"] = "day"
) -> list[dict]:
    with request.app.state.ctx.session() as session:
        topic = topics.get(session, tenant, name)
        if topic is None:
            raise ApiError(404, f"no topic {name} for this tenant")
        return series(session, topic, by)
