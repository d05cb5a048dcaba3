"""The dashboard: server-rendered pages (Jinja2) over the same data as /v1, one small script.

Signing in stores the API key in an HttpOnly, SameSite=Strict cookie: page scripts cannot read
it, other sites cannot make the browser send it, and /v1 accepts it, so the page's fetches
(progress polling, upload, replay) go through the same tenant checks as any API client.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from api import charts, search_view
from api.auth import COOKIE, tenant_for
from api.errors import ApiError
from api.schemas import document_out, index_version_out, job_out, model_out
from api.v1_index import last_verify
from api.v1_jobs import tenant_job
from api.v1_search import facets as search_facets
from api.v1_search import run as run_search
from api.v1_search import search_filters
from pipeline.errors import DocpipeError
from pipeline.formats import SUPPORTED_SUFFIXES
from pipeline.index.filters import facet_aggs, where_clauses
from pipeline.jobs.stats import job_stats
from pipeline.monitor import topics
from pipeline.monitor.trends import Trend, recent_topic_trends, recent_trends, trend_of
from pipeline.store import model_registry, repo
from pipeline.store.models import JobState
from pipeline.types import utcnow

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals["plotly_url"] = charts.plotly_url
# the upload picker offers every type the readers take (it offered the first eight: no Office file could be picked)
templates.env.globals["upload_accept"] = ",".join(sorted(SUPPORTED_SUFFIXES))
templates.env.filters["pages"] = search_view.pages_label
WATCH_SPAN = timedelta(days=30)


class LoginRequired(Exception):
    pass


def install(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, _exc: LoginRequired):
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)


def page_tenant(request: Request) -> str:
    tenant = tenant_for(request, request.cookies.get(COOKIE))
    if tenant is None:
        raise LoginRequired()
    return tenant


def render(request: Request, template: str, tenant: str | None, **context) -> HTMLResponse:
    return templates.TemplateResponse(request, template, {"tenant": tenant, **context})


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/ui/jobs", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/ui/jobs", error: str | None = None):
    return render(request, "login.html", None, next=_safe_next(next), error=error)


@router.post("/login")
async def login(request: Request):
    form = await request.form()
    key, target = str(form.get("key", "")).strip(), _safe_next(str(form.get("next", "/ui/jobs")))
    if tenant_for(request, key) is None:
        return render(request, "login.html", None, next=target, error="That key is not valid (or was revoked).")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE, key, httponly=True, samesite="strict", path="/", secure=request.app.state.ctx.settings.api.cookie_secure
    )
    return response


@router.get("/logout")
def logout() -> RedirectResponse:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _safe_next(target: str) -> str:
    # only our own pages: an absolute or protocol-relative URL would make this an open redirect
    return target if target.startswith("/ui/") and not target.startswith("//") else "/ui/jobs"


@router.get("/ui/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, tenant: str = Depends(page_tenant), state: str | None = None):
    ctx = request.app.state.ctx
    with ctx.session() as session:
        jobs = [job_out(j) for j in repo.list_jobs(session, state if state in JobState.ALL else None, tenant, 50)]
        chart = activity_chart(session, tenant)
    return render(
        request,
        "jobs.html",
        tenant,
        jobs=jobs,
        chart=chart,
        state=state,
        states=JobState.ALL,
        final=list(JobState.FINAL),
    )


# (window, bucket): the shortest window that holds the data, cut in buckets small enough to show a shape
_WINDOWS = (
    (timedelta(hours=2), timedelta(minutes=5), "per 5 minutes, last 2 hours"),
    (timedelta(days=2), timedelta(hours=1), "per hour, last 2 days"),
    (timedelta(days=14), timedelta(days=1), "per day, last 14 days"),
)


def activity_chart(session, tenant: str) -> dict:
    """Items of the jobs that finished per time bucket, stacked by outcome (empty buckets included), partial
    and failed jobs marked: {"figure": a plotly figure or None, "caption": what it shows, in words}."""
    now = utcnow()
    rows = repo.finished_jobs(session, tenant, now - _WINDOWS[-1][0], INGESTING)
    oldest = min((charts.aware(r[0]) for r in rows), default=now)
    window, step, label = next((w for w in _WINDOWS if now - oldest <= w[0]), _WINDOWS[-1])
    size = step.total_seconds()
    first = (now - window).timestamp() // size * size
    buckets = {first + i * size: dict.fromkeys(_COUNTERS, 0) for i in range(int(window / step) + 1)}
    starts = {}
    for finished_at, done, unchanged, skipped, failed, state, job_id in rows:
        start = charts.aware(finished_at).timestamp() // size * size
        counts = buckets.setdefault(start, dict.fromkeys(_COUNTERS, 0))
        for name, n in zip(_COUNTERS, (done, unchanged, skipped, failed), strict=True):
            counts[name] += n or 0
        starts[job_id] = (start, state, done, failed, done + unchanged + skipped + failed)
    markers = [
        charts.Marker(
            datetime.fromtimestamp(start, UTC),
            f"job {job_id[:8]} {state}: {failed} of {total} item(s) failed, {done} indexed",
            state,
            float(sum(buckets[start].values())),
        )
        for job_id, (start, state, done, failed, total) in starts.items()
        if state in (JobState.FAILED, JobState.PARTIAL)
    ]
    figure = charts.activity_figure(
        [charts.Bucket(datetime.fromtimestamp(b, UTC), counts) for b, counts in sorted(buckets.items()) if rows],
        markers,
        step,
    )
    partial = sum(m.kind == JobState.PARTIAL for m in markers)
    failed_jobs = len(markers) - partial
    caption = (
        f"items of finished jobs {label}, by outcome · {len(rows)} job(s) finished, "
        f"{partial} partial, {failed_jobs} failed"
    )
    return {"figure": figure, "caption": caption}


_COUNTERS = ("done", "unchanged", "skipped", "failed")
# jobs whose counters count documents read and indexed; a delete job's `done` counts documents deleted
INGESTING = ("ingest", "upload", "folder", "feed", "replay")


@router.get("/ui/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str, tenant: str = Depends(page_tenant)):
    ctx = request.app.state.ctx
    with ctx.session() as session:
        try:
            job = tenant_job(session, tenant, job_id)
        except ApiError:
            return render(request, "missing.html", tenant, what=f"job {job_id}")
        rec = job_out(job, repo.dead_letters(session, job.id), ctx.uploads_prefix, job_stats(session, job))
        replayable = len(repo.replayable_letters(session, job.id))
    return render(request, "job.html", tenant, job=rec, replayable=replayable, final=list(JobState.FINAL))


@router.get("/ui/search", response_class=HTMLResponse)
def search_page(
    request: Request,
    tenant: str = Depends(page_tenant),
    q: str = "",
    mode: str = "hybrid",
    k: int = 10,  # bounds: pipeline.retrieve.check_search, shown on the page like any refusal
    source: str = "",
    label: str = "",
    published_from: str = "",
    published_to: str = "",
    where: list[str] = Query([]),  # KEY OP VALUE, one a line or one a parameter (facet links)
    facet: list[str] = Query([]),  # keys, comma-separated
):
    ctx = request.app.state.ctx
    mode = mode if mode in ("bm25", "knn", "hybrid") else "hybrid"
    conditions, keys = search_view.conditions(where), search_view.facet_keys(facet)
    hits, facets, error = [], {}, None
    if q.strip():
        try:
            start, end = _date(published_from), _date(published_to, end_of_day=True)
            filters = search_filters(ctx, tenant, source or None, start, end, label or None)
            filters += where_clauses(conditions)
            facet_aggs(keys)  # a key that cannot be counted is refused before anything runs, as by the API
            hits = run_search(ctx, tenant, q, mode, k, filters)
            facets = search_facets(ctx, tenant, keys, filters) if keys else {}
        except (ValueError, ApiError, DocpipeError) as exc:  # shown on the page, next to the query
            error = str(exc)
    state = {"q": q, "mode": mode, "k": k, "source": source, "label": label}
    state |= {"published_from": published_from, "published_to": published_to, "facet": ",".join(keys)}
    return render(
        request,
        "search.html",
        tenant,
        q=q,
        mode=mode,
        k=k,
        max_k=ctx.settings.api.max_k,
        hits=hits,
        error=error,
        source=source,
        label=label,
        published_from=published_from,
        published_to=published_to,
        where=conditions,
        facet_keys=keys,
        facets=search_view.facet_links(facets, state, conditions, ctx.uploads_prefix),
        unfiltered=search_view.search_url(state, []) if conditions else None,
    )


def _date(value: str, end_of_day: bool = False) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    if end_of_day and len(value) == 10:  # a date from <input type=date> covers the whole day
        parsed += timedelta(days=1, microseconds=-1)
    return parsed


@router.get("/ui/documents", response_class=HTMLResponse)
def documents_page(request: Request, tenant: str = Depends(page_tenant), offset: int = Query(0, ge=0)):
    ctx = request.app.state.ctx
    with ctx.session() as session:
        rows, _ = repo.list_documents(session, tenant, limit=100, offset=offset)
        docs = [document_out(d, ctx.uploads_prefix) for d in rows]
    return render(request, "documents.html", tenant, documents=docs, offset=offset)


@router.get("/ui/models", response_class=HTMLResponse)
def models_page(request: Request, tenant: str = Depends(page_tenant)):
    with request.app.state.ctx.session() as session:
        models = [model_out(m) for m in model_registry.list_models(session, tenant)]
    return render(request, "models.html", tenant, models=models)


@router.get("/ui/index", response_class=HTMLResponse)
def index_page(request: Request, tenant: str = Depends(page_tenant)):
    with request.app.state.ctx.session() as session:
        versions = [index_version_out(v) for v in repo.index_versions(session)]
        chunks = repo.chunk_total(session, tenant)
        verified = last_verify(session, tenant)
    return render(request, "index.html", tenant, versions=versions, chunks=chunks, verified=verified)


@router.get("/ui/webhooks", response_class=HTMLResponse)
def webhooks_page(request: Request, tenant: str = Depends(page_tenant)):
    from api.v1_webhooks import dashboard_rows

    with request.app.state.ctx.session() as session:
        endpoints = dashboard_rows(session, tenant)
    return render(request, "webhooks.html", tenant, endpoints=endpoints)


@router.get("/ui/watch", response_class=HTMLResponse)
def watch_page(request: Request, tenant: str = Depends(page_tenant)):
    with request.app.state.ctx.session() as session:
        trends = recent_trends(session, tenant, utcnow() - WATCH_SPAN)
        entities = [watch_chart(t) for t in trends]
    return render(request, "watch.html", tenant, entities=entities)


@router.get("/ui/topics", response_class=HTMLResponse)
def topics_page(request: Request, tenant: str = Depends(page_tenant)):
    with request.app.state.ctx.session() as session:
        charts_ = [watch_chart(t) for t in recent_topic_trends(session, tenant, utcnow() - WATCH_SPAN)]
    return render(request, "topics.html", tenant, topics=charts_, single=False)


@router.get("/ui/topics/{name}", response_class=HTMLResponse)
def topic_page(request: Request, name: str, tenant: str = Depends(page_tenant)):
    with request.app.state.ctx.session() as session:
        topic = topics.get(session, tenant, name)
        if topic is None:
            return render(request, "missing.html", tenant, what=f"topic {name}")
        chart = watch_chart(trend_of(session, topic, utcnow() - WATCH_SPAN))
    return render(request, "topics.html", tenant, topics=[chart], single=True)


def watch_chart(trend: Trend) -> dict:
    """An entity's or a topic's mean sentiment drawn over its buckets, its alerts marked."""
    points = [charts.Point(datetime.fromisoformat(b["start"]), b["mean_sentiment"], b["items"]) for b in trend.buckets]
    markers = [
        charts.Marker(
            charts.aware(a.window_end),
            f"negative share {a.negative_share:.0%} ({a.deviations:+.1f} sd, {a.items} items)",
        )
        for a in trend.alerts
    ]
    return {
        "entity": trend.name,
        "names": trend.names,
        "alerts": markers,
        "figure": charts.sentiment_figure(points, markers),
    }


@router.get("/vendor/plotly-{digest}.min.js")
def plotly_js(request: Request, digest: str) -> Response:
    """plotly.js from the installed plotly package. The URL carries its content hash, so it may be cached for
    good; an old hash (the package was upgraded meanwhile) still gets the script, but one not to be kept."""
    current = digest == charts.plotly_hash()
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable" if current else "no-cache",
        "Vary": "Accept-Encoding",
    }
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(charts.plotly_gzipped(), media_type="text/javascript", headers=headers)
    return FileResponse(charts.plotly_file(), media_type="text/javascript", headers=headers)
