"""POST /v1/ask: an answer from the caller's corpus that cites its passages; streamed as Server-Sent Events when
the request says `stream: true` or accepts text/event-stream, else one JSON object."""

from __future__ import annotations

import json
from collections.abc import Iterator

from elasticsearch import NotFoundError
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from api.auth import require_tenant
from api.errors import ApiError
from api.schemas import Error
from pipeline.errors import ConfigError, DocpipeError, PermanentError, ServiceUnavailable
from workers import client

router = APIRouter(prefix="/v1", tags=["ask"])


class AskIn(BaseModel):
    question: str = Field(..., min_length=1, max_length=2000, description="The question")
    k: int = Field(5, description="Passages to retrieve: 1 to DOCPIPE_API_MAX_K; those that fit the prompt are used")
    where: list[str] = Field(
        default_factory=list, max_length=32, description="Metadata filters, KEY OP VALUE each (as `docpipe ask -w`)"
    )
    stream: bool = Field(False, description="Send Server-Sent Events (as does Accept: text/event-stream)")


class PassageOut(BaseModel):
    number: int = Field(..., description="The [number] the answer cites it by")
    chunk_id: str
    doc_id: str
    source: str
    ordinal: int
    title: str | None = None
    score: float
    pages: list[int] = Field(default_factory=list)
    page: int | None = Field(None, description="The first page of the source the passage is on, when known")
    text: str | None = Field(None, description="The passage as the prompt carried it (absent in citations)")


class AskOut(BaseModel):
    question: str
    answer: str
    generator: str = Field(..., description="openai, local or extractive")
    citations: list[PassageOut] = Field(..., description="The passages the answer cites, in order of first mention")
    passages: list[PassageOut] = Field(..., description="Every passage the answer could cite")
    prompt_tokens: int | None = None


def _status(exc: DocpipeError) -> int:
    from pipeline.answer.generators import GeneratorRefused

    if isinstance(exc, GeneratorRefused):
        return 502  # the generator behind docpipe refused: the operator's model or key, not the caller's request
    if isinstance(exc, ConfigError):
        return 503
    return 422 if isinstance(exc, PermanentError) else 503


def _events(ctx, tenant: str, body: AskIn) -> Iterator[dict]:
    from pipeline.answer import ask, make_writer, retrieve
    from pipeline.answer.ask import check_question
    from pipeline.index.filters import parse_where, to_clauses
    from pipeline.retrieve import check_search, tenant_fusion

    question = check_question(body.question)
    check_search("hybrid", body.k, ctx.settings.api.max_k)
    filters = to_clauses(parse_where(body.where)) if body.where else None
    index, model_path, variant = ctx.search_target()
    encoder = ctx.encoder(model_path, variant)
    with ctx.session() as session:
        fusion = tenant_fusion(session, tenant)
    try:
        passages = retrieve(ctx.es, index, tenant, question, body.k, encoder, filters, fusion, ctx.settings.server_rrf)
    except NotFoundError:
        passages = []
    writer = make_writer(
        ctx.settings,
        encoder,
        model_path or ctx.settings.encoder_path,
        submit=lambda payload: ctx.send_task(client.GENERATE_ANSWER, [payload]),
        redis=ctx.redis,
    )
    return ask(question, passages, writer)


def _sse(event: dict) -> str:
    kind = event.get("event", "message")
    data = {k: v for k, v in event.items() if k != "event"}
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _stream(first: dict, rest: Iterator[dict]) -> Iterator[str]:
    yield _sse(first)
    try:
        for event in rest:
            yield _sse(event)
    except DocpipeError as exc:  # the status line has gone: the failure travels as the last event
        yield _sse({"event": "error", "error": "generator_failed", "message": str(exc), "status": _status(exc)})


@router.post(
    "/ask",
    response_model=AskOut,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "JSON, or events: passages, delta..., done"},
        401: {"model": Error},
        422: {"model": Error},
        502: {"model": Error},
        503: {"model": Error},
    },
)
def post_ask(request: Request, body: AskIn, tenant: str = Depends(require_tenant)):
    """Retrieve the tenant's passages (hybrid, its tuned fusion), answer from them, cite them as [n]."""
    from pipeline.answer import collect

    ctx = request.app.state.ctx
    streamed = body.stream or "text/event-stream" in request.headers.get("accept", "")
    try:
        events = _events(ctx, tenant, body)
        if not streamed:
            return collect(body.question, events).as_dict()
        first = next(events)  # retrieval and the prompt fail before any byte is sent, as a plain error
    except (ConfigError, ServiceUnavailable):
        raise  # the app's handlers answer them (503, with Retry-After for an unreachable service)
    except DocpipeError as exc:
        raise ApiError(_status(exc), str(exc)) from None
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # proxies must pass each event on at once
    return StreamingResponse(_stream(first, events), media_type="text/event-stream", headers=headers)
