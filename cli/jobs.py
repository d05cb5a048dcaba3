"""`docpipe ingest|replay|cancel|jobs|job|search|eval-search`: documents in, jobs followed, the corpus searched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.text import Text

from cli import remote
from cli.choices import JobStatus, SearchMode
from cli.common import (
    JSON,
    TENANT,
    console,
    fail,
    get_settings,
    job_record,
    new_table,
    out,
    print_hit,
    print_json,
    progress_bar,
    session,
    submit_job,
)

if TYPE_CHECKING:
    from rich.table import Table


def ingest(
    paths: list[Path] = typer.Argument(..., help="Files or folders."),
    tenant: str = TENANT,
    wait: bool = typer.Option(False, "--wait", help="Show progress until the job ends."),
    as_json: bool = JSON,
) -> None:
    """Read, clean, deduplicate, chunk, embed and index documents (with DOCPIPE_API_URL: upload them to the API)."""
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        fail(f"no such file or folder: {', '.join(missing)}")
    from pipeline.formats.files import name_problem, shown_name

    for path in paths:
        if problem := name_problem(path.resolve()):
            fail(f"{shown_name(path)}: {problem}")
    if (api := remote.configured()) is not None:
        from cli.remote_commands import ingest as ingest_remote

        return ingest_remote(api, paths, wait, as_json)
    submit_job(tenant, [str(p.resolve()) for p in paths], wait, as_json)


def replay(job_id: str, wait: bool = typer.Option(False, "--wait"), as_json: bool = JSON) -> None:
    """Ingest again the inputs of a job's dead letters (after fixing them), as a new job."""
    from pipeline.store import repo

    nothing = f"job {job_id} has no dead letters to replay"
    with session() as db:
        job = repo.get_job(db, job_id) or fail(f"no job {job_id}")
        tenant, replayed_id, replayable = job.tenant, job.id, bool(repo.replayable_letters(db, job.id))
    if not replayable:  # said before `submit_job` brings the stack up
        fail(nothing, 1)

    def create(s):
        return repo.create_replay_job(s, repo.get_job(s, replayed_id)) or fail(nothing, 1)

    submit_job(tenant, [], wait, as_json, kind="replay", create=create)


def cancel(job_id: str) -> None:
    """Cancel a job: queued work for it is dropped, the row says cancelled."""
    from pipeline.store import repo

    if (api := remote.configured()) is not None:
        api.post(f"/v1/jobs/{api.job_id(job_id)}/cancel")
        return console.print(f"cancelled {job_id}")
    with session() as db:
        job = repo.get_job(db, job_id) or fail(f"no job {job_id}")
        if not repo.cancel_job(db, job):
            fail(f"job {job.id} already ended {job.state}", 1)
    console.print(f"cancelled {job_id}")


def jobs(
    state: JobStatus = typer.Option(None, "--status", help="Only jobs in this state."),
    tenant: str = typer.Option(None, "--tenant", "-t"),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many jobs."),
    as_json: bool = JSON,
) -> None:
    """List jobs, newest first (with DOCPIPE_API_URL: the key's tenant's)."""
    from pipeline.store import repo

    if (api := remote.configured()) is not None:
        recs = list(api.items("/v1/jobs", limit=limit, state=state.value if state else None))
    else:
        with session() as db:
            recs = [job_record(j) for j in repo.list_jobs(db, state.value if state else None, tenant, limit)]
    if as_json:
        out.print_json(json.dumps(recs))
        return
    table = new_table("id", "tenant", "kind", "state", "total", "indexed", "unchanged", "dup", "failed", "created")
    for r in recs:
        c = r["counters"]
        table.add_row(
            r["id"][:8],
            r["tenant"],
            r["kind"],
            r["state"],
            str(c["total"]),
            str(c["done"]),
            str(c["unchanged"]),
            str(c["skipped"]),
            str(c["failed"]),
            r["created_at"][:19],
        )
    out.print(table)


def job(job_id: str, as_json: bool = JSON) -> None:
    """One job: counters, per-stage accounts (seconds, items in and out, dropped by reason), dead letters."""
    from pipeline.jobs.stats import job_stats
    from pipeline.store import repo

    if (api := remote.configured()) is not None:
        rec = api.job(job_id)
    else:
        with session() as db:
            j = repo.get_job(db, job_id) or fail(f"no job {job_id} (see `docpipe jobs`)")
            rec = job_record(j, repo.dead_letters(db, j.id), job_stats(db, j))
    if as_json:
        out.print_json(json.dumps(rec))
        return
    c = rec["counters"]
    out.print(Text.assemble(f"job {rec['id']} ({rec['kind']}, tenant {rec['tenant']}): ", (rec["state"], "bold")))
    out.print(
        f"  items {c['total']}: {c['done']} indexed, {c['unchanged']} unchanged, {c['skipped']} duplicates, "
        f"{c['failed']} failed; {c['chunks']} chunks"
    )
    out.print(f"  created {rec['created_at']}  started {rec['started_at']}  finished {rec['finished_at']}")
    if rec["stages"]:
        out.print(_stage_table(rec["stages"]))
        for line in _time_lines(rec):
            out.print(f"  {line}")
    run = (rec.get("metrics") or {}).get("classify") or {}
    if run.get("predictor"):  # a classify job: what labelled, and an int8 predictor's agreement with fp32
        agree = run.get("agreement")
        out.print(f"  predictor {run['predictor']}" + (_agreement_text(agree) if agree else ""))
    if rec.get("error"):
        out.print(f"  error: {rec['error']}")
    for d in rec["dead_letters"]:
        out.print(
            f"  dead letter [{d['stage']}/{d['reason']}] {d['source']}: {d['detail']}"
            + (" (replayed)" if d["replayed"] else "")
        )


def _agreement_text(agree: dict) -> str:
    return (
        f": labels agree with {agree['reference']} fp32 on {agree['label_agreement']:.2%} of {agree['chunks']} "
        f"chunks, mean |Δp| {agree['mean_abs_diff']:.4f}"
    )


def _time_lines(rec: dict) -> list[str]:
    """Where a job's wall time went besides its stages. The ingest queue's stages (read .. chunk) run beside the
    gpu queue's (embed, index), so the busier queue's sum is the floor; the rest is the wait for the first task
    and time outside stages (dispatch, hand-offs between queues, claims, commits)."""
    from datetime import datetime

    def at(name: str) -> datetime | None:
        value = rec.get(name)
        return datetime.fromisoformat(value) if isinstance(value, str) else value

    created, started, finished = at("created_at"), at("started_at"), at("finished_at")
    if created is None or started is None or finished is None:
        return []
    wall, waited = (finished - created).total_seconds(), (started - created).total_seconds()
    gpu = sum(st["seconds"] for st in rec["stages"] if st["stage"] in ("embed", "index", "classify"))
    ingest = sum(st["seconds"] for st in rec["stages"]) - gpu
    lines = [
        f"wall {wall:.2f} s; stages: ingest queue {ingest:.2f} s, gpu queue {gpu:.2f} s",
        f"queue wait {waited:.2f} s (until the first task started)",
        f"outside stages {max(0.0, wall - waited - max(ingest, gpu)):.2f} s (hand-offs, claims, commits)",
    ]
    retries = (rec.get("metrics") or {}).get("retries")
    if retries:  # tasks that waited for a service to come back (their waits may overlap: a sum, not wall time)
        lines[-1] = lines[-1][:-1] + f"; retry waits {retries['seconds']:.0f} s in all)"
        lines.append(f"retried {retries['count']} times while a service was away; last: {retries['last']}")
    return lines


def _stage_table(stages: list[dict]) -> Table:
    table = new_table("stage", "seconds", "in", "out", "dropped")
    for column in table.columns[1:4]:
        column.justify = "right"
    for st in stages:
        dropped = ", ".join(f"{reason} {n}" for reason, n in st["dropped"].items())
        table.add_row(st["stage"], f"{st['seconds']:.2f}", str(st["items_in"]), str(st["items_out"]), dropped)
    return table


def _search_clients(need_encoder: bool = True):
    """(client, index, query encoder or None): BM25 alone needs no model loaded."""
    from pipeline.embed import get_encoder
    from pipeline.encoders import split
    from pipeline.reindex import search_target
    from pipeline.services import elasticsearch_client

    s = get_settings()
    with session() as db:  # the live version and the encoder that embedded it (it may differ from settings)
        index, model_path, variant = search_target(db, s.index_prefix, s.encoder_path)
    es = elasticsearch_client(s)
    return es, index, get_encoder(model_path, s.device, s.embed_batch_size, *split(variant)) if need_encoder else None


def _label_filters(tenant: str, labels: list[str]) -> list[dict] | None:
    """One filter for the labels asked for (a chunk matches if its document has any of them)."""
    from pipeline.infer.labels import UnknownLabel, labels_filter

    if not labels:
        return None
    try:
        with session() as db:
            return labels_filter(db, tenant, labels)
    except UnknownLabel as exc:
        fail(str(exc))


def search(
    query: str,
    mode: SearchMode = typer.Option(SearchMode.HYBRID, "--mode", "-m", help="How to rank chunks."),
    k: int = typer.Option(10, "--k", help="Hits to return (1 to DOCPIPE_API_MAX_K)."),
    tenant: str = TENANT,
    labels: list[str] = typer.Option(
        None, "--label", "-l", help="Only chunks classified with this label (repeat for any of several)."
    ),
    where: list[str] = typer.Option(
        None,
        "--where",
        "-w",
        help="Metadata filter: KEY=V1,V2 (any of), KEY!=V, KEY>=V, >, <, <= (numbers, ISO dates); repeat to AND.",
    ),
    facet: list[str] = typer.Option(None, "--facet", help="Count documents per value of this metadata key (repeat)."),
    as_json: bool = JSON,
) -> None:
    """Search the corpus of a tenant."""
    # the API keeps the encoder loaded: DOCPIPE_API_URL's, else the local stack's (cli/remote.py). It checks k,
    # the mode and the filters with the messages below; asking it first spares this process the search modules'
    # imports (the Elasticsearch client, SQLAlchemy), most of a CLI search's time
    if (api := remote.configured() or remote.local_api(tenant)) is not None:
        from cli.remote_commands import search as search_remote

        return search_remote(api, query, mode.value, k, labels or [], where or [], facet or [], as_json)
    from pipeline.index.filters import FilterError, facet_aggs, parse_where
    from pipeline.retrieve import check_search, filtered_search, tenant_fusion

    check_search(mode.value, k, get_settings().api.max_k, query)  # the API's limits and messages
    try:  # refused before any model loads
        parse_where(where)
        facet_aggs(facet)
    except FilterError as exc:
        fail(str(exc))
    filters = _label_filters(tenant, labels)
    es, alias, encoder = _search_clients(need_encoder=mode != SearchMode.BM25)
    with session() as db:
        fusion = tenant_fusion(db, tenant)
    found = filtered_search(
        es,
        alias,
        tenant,
        query,
        mode.value,
        k,
        encoder,
        where=where or [],
        facets=facet or [],
        filters=filters,
        server_rrf=get_settings().server_rrf,
        fusion=fusion,
    )
    hits = found.hits
    if as_json:
        # a bare list of hits, as before, unless facets were asked for
        hits_out = [h.__dict__ for h in hits]
        print_json({"hits": hits_out, "facets": found.facets} if facet else hits_out)
        return
    for key, values in found.facets.items():
        out.print(f"{key}: " + (", ".join(f"{v['value']} ({v['count']})" for v in values) or "no values"))
    if not hits:
        out.print("no hits")
    for h in hits:
        print_hit(h.rank, h.source, h.pages, h.ordinal, h.score, h.text)


def eval_search(
    queries: Path,
    modes: str = typer.Option("bm25,knn,hybrid", "--modes", help="Comma-separated, of: bm25, knn, hybrid."),
    k: int = typer.Option(10, "--k", help="Cut-off of the scores (1 to DOCPIPE_API_MAX_K)."),
    tenant: str = TENANT,
    aggregate: str = typer.Option(
        "max", "--aggregate", help="A document ranks by its best chunk (max) or by the sum of its chunks (sum)."
    ),
    tune: bool = typer.Option(
        False, "--tune", help="Pick the hybrid fusion that scores best on these queries and store it for the tenant."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="With --tune: report the tuned fusion, store nothing."),
    as_json: bool = JSON,
) -> None:
    """MRR@k, nDCG@k and recall@k per mode, at document level, over judged queries (JSON lines).

    Hybrid uses the tenant's stored fusion (plain RRF until `--tune` stored one).
    """
    from pipeline.evaluate import load_queries
    from pipeline.retrieve import FUSION_SETTING, check_search, tenant_fusion
    from pipeline.store.tenants import put_setting
    from pipeline.tune import AGGREGATES, collect_runs, holdout, score_runs
    from pipeline.tune import tune as tune_fusion

    chosen = [m.strip() for m in modes.split(",") if m.strip()] or fail("--modes names no mode")
    for mode in chosen:
        check_search(mode, k, get_settings().api.max_k)
    if aggregate not in AGGREGATES:
        fail(f"--aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    try:
        judged = load_queries(queries)
    except (OSError, ValueError) as exc:
        fail(str(exc))
    es, alias, encoder = _search_clients()
    with progress_bar(len(judged), "searching") as advance:
        runs = collect_runs(es, alias, tenant, judged, encoder, k * 5, progress=advance)
    with session() as db:
        fusion = tenant_fusion(db, tenant)
    report: dict = {"k": k, "queries": len(judged), "aggregate": aggregate, "fusion": fusion.label(), "modes": {}}
    for mode in chosen:
        report["modes"][mode] = score_runs(runs, mode, k, fusion, aggregate)
    if tune:
        tuned = tune_fusion(runs, k, aggregate)
        report["tuned"] = {"fusion": tuned.fusion.as_dict(), "label": tuned.fusion.label(), **tuned.scores}
        report["holdout"] = holdout(runs, k, aggregate) if len(runs) >= 4 else None
        report["stored"] = not dry_run
        if not dry_run:
            with session() as db:
                put_setting(db, tenant, FUSION_SETTING, tuned.as_setting())
    if as_json:
        out.print_json(json.dumps(report))
        return
    title = f"{len(judged)} queries, tenant {tenant}, hybrid = {fusion.label()}, documents by their {aggregate}"
    table = new_table("mode", f"MRR@{k}", f"nDCG@{k}", f"recall@{k}", title=title)
    for mode, m in report["modes"].items():
        table.add_row(mode, f"{m['mrr']:.3f}", f"{m['ndcg']:.3f}", f"{m['recall']:.3f}")
    if tune:
        t = report["tuned"]
        table.add_row(f"tuned ({t['label']})", f"{t['mrr']:.3f}", f"{t['ndcg']:.3f}", f"{t['recall']:.3f}")
    out.print(table)
    if tune and report["holdout"]:
        h = report["holdout"]
        out.print(
            "held-out queries (2 folds) MRR: "
            + ", ".join(f"{mode} {h[mode]['mrr']:.3f}" for mode in ("bm25", "knn", "hybrid", "tuned"))
        )
    if tune:
        out.print("stored for the tenant: hybrid searches use it" if not dry_run else "dry run: nothing stored")


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command()(replay)
    app.command()(cancel)
    app.command()(jobs)
    app.command()(job)
    app.command()(search)
    app.command("eval-search")(eval_search)
