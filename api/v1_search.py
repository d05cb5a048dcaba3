"""GET /v1/search: BM25, kNN or hybrid within the caller's tenant, with filters and highlights."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from elasticsearch import NotFoundError
from fastapi import APIRouter, Depends, Query, Request

from api.auth import require_tenant
from api.errors import ApiError
from api.highlight import highlight
from api.schemas import Error, SearchOut, display_name
from api.took import TookMeter
from api.v1_documents import upload_source
from pipeline.index.filters import FilterError, facet_aggs, where_clauses
from pipeline.index.search import facet_counts
from pipeline.infer.labels import UnknownLabel, labels_filter
from pipeline.retrieve import SearchRefused, check_search, tenant_fusion
from pipeline.retrieve import search as run_search

router = APIRouter(prefix="/v1", tags=["search"])
_NO_NUL = r"^[^\x00]*$"


def search_filters(
    ctx,
    tenant: str,
    source: str | None,
    published_from: datetime | None,
    published_to: datetime | None,
    label: str | list[str] | None,
) -> list[dict]:
    """Elasticsearch filters for the optional criteria; the tenant filter is added by pipeline.index."""
    filters: list[dict] = []
    if source:
        # a name as uploaded, or a source as recorded (a path, a feed item's link, a record id)
        filters.append({"terms": {"source": sorted({source, upload_source(ctx, tenant, source)})}})
    if published_from or published_to:
        bounds = {}
        if published_from:
            bounds["gte"] = _utc(published_from).isoformat()
        if published_to:
            bounds["lte"] = _utc(published_to).isoformat()
        filters.append({"range": {"published": bounds}})
    labels = [label] if isinstance(label, str) else list(label or [])
    if labels:
        with ctx.session() as session:
            try:
                filters.extend(labels_filter(session, tenant, labels))
            except UnknownLabel as exc:  # as on the CLI: a typo is an error, not an empty result
                raise ApiError(422, str(exc)) from None
    return filters


def _utc(t: datetime) -> datetime:
    # Elasticsearch parses only whole-hour-and-minute offsets it knows; UTC is always understood.
    return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)


def refuse_bad_search(ctx, mode: str, k: int, q: str) -> None:
    """The CLI's check, with the CLI's message, as a 422."""
    try:
        check_search(mode, k, ctx.settings.api.max_k, q)
    except SearchRefused as exc:
        raise ApiError(422, str(exc)) from None


def run(ctx, tenant: str, q: str, mode: str, k: int, filters: list[dict], timing: dict | None = None) -> list[dict]:
    """The hits as /v1/search lists them; `timing["took"]` gets the search server's own milliseconds."""
    refuse_bad_search(ctx, mode, k, q)
    index, model_path, variant = ctx.search_target()
    encoder = ctx.encoder(model_path, variant) if mode != "bm25" else None
    # server-side RRF only when configured (it needs a licence on self-managed Elasticsearch)
    extra = {"server_rrf": True} if getattr(ctx.settings, "server_rrf", False) else {}
    if mode == "hybrid":
        with ctx.session() as session:
            extra["fusion"] = tenant_fusion(session, tenant)
    es = TookMeter(ctx.es)
    try:
        hits = run_search(es, index, tenant, q, mode, k, encoder, filters=filters, **extra)
    except NotFoundError:
        return []  # nothing was ever indexed: no index behind the read alias yet
    finally:
        if timing is not None:
            timing["took"], timing["search_ms"] = es.took_ms, round(es.waited_ms, 1)
    out = []
    for h in hits:
        snippet, marked = highlight(h.text, q)
        out.append(
            {
                "rank": h.rank,
                "score": h.score,
                "doc_id": h.doc_id,
                "chunk_id": h.chunk_id,
                "source": h.source,
                "name": display_name(h.source, ctx.uploads_prefix),
                "title": h.title,
                "ordinal": h.ordinal,
                "snippet": snippet,
                "highlights": marked,
                "pages": h.pages,
                "language": h.language,
            }
        )
    return out


@router.get(
    "/search", response_model=SearchOut, responses={401: {"model": Error}, 422: {"model": Error}, 503: {"model": Error}}
)
def search(
    request: Request,
    tenant: str = Depends(require_tenant),
    # checked by pipeline.retrieve.check_search too: empty, blank, too long or with a NUL is refused in its words
    q: str = Query(..., description="The query (at most 1,000 characters)"),
    mode: Literal["bm25", "knn", "hybrid"] = "hybrid",
    # bounds checked by pipeline.retrieve.check_search, so the API and the CLI refuse with one message
    k: int = Query(10, description="Hits to return: 1 to DOCPIPE_API_MAX_K (default 100)"),
    source: str | None = Query(None, max_length=2048, pattern=_NO_NUL, description="Only this upload name or source"),
    published_from: datetime | None = Query(None, description="Published at or after (ISO 8601)"),
    published_to: datetime | None = Query(None, description="Published at or before (ISO 8601)"),
    label: list[str] | None = Query(
        None, description="Only chunks classified with this label (repeat it for any of several)"
    ),
    where: list[str] | None = Query(
        None,
        description="Metadata filter KEY=V1,V2 (any of), KEY!=V, KEY>=V, >, <, <= (numbers, ISO dates); repeat "
        "to AND several, e.g. where=desk=markets&where=published>=2024-01-01 (docs/metadata.md)",
    ),
    facet: list[str] | None = Query(
        None, description="A metadata key (or source, label, language, content_type) to count documents per value of"
    ),
) -> dict:
    ctx = request.app.state.ctx
    refuse_bad_search(ctx, mode, k, q)
    if any(len(name) > 128 or "\x00" in name for name in label or []):
        raise ApiError(422, "label: at most 128 characters, without NUL")
    filters = search_filters(ctx, tenant, source, published_from, published_to, label)
    try:
        filters += where_clauses(where)
        facet_aggs(facet)  # a bad facet key is refused before the search runs
    except FilterError as exc:
        raise ApiError(422, str(exc)) from None
    timing: dict = {}
    hits = run(ctx, tenant, q, mode, k, filters, timing)
    out = {"query": q, "mode": mode, "k": k, "hits": hits, "took": timing.get("took", 0)}
    out["search_ms"] = timing.get("search_ms", 0.0)
    if facet:
        out["facets"] = facets(ctx, tenant, facet, filters)
    return out


def facets(ctx, tenant: str, keys: list[str], filters: list[dict]) -> dict:
    """Documents per value of each key among the tenant's chunks that pass the filters."""
    index = ctx.search_target().name
    try:
        return facet_counts(ctx.es, index, tenant, keys, filters)
    except NotFoundError:
        return {key: [] for key in keys}  # nothing indexed yet
