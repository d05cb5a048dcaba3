"""`docpipe` commands of the monitor feature: reindex, index versions / rollback, watch, alerts."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import typer
from rich.table import Table

from pipeline.cli_common import (JSON, TENANT, JobView, console, fail, ingest_summary, job_record, out, session,
                                 submit_job)
from pipeline.config import get_settings

WAIT = typer.Option(False, "--wait", help="Show progress until the job ends.")
index_app = typer.Typer(help="Index versions: list them, roll back.", no_args_is_help=True)
watch_app = typer.Typer(help="The watchlist of entities whose news sentiment is followed.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this feature's commands (and sub-apps) to the docpipe CLI."""
    app.command("reindex")(reindex)
    app.command("alerts")(alerts)
    app.add_typer(index_app, name="index")
    app.add_typer(watch_app, name="watch")


def _layout():
    from pipeline.index import IndexLayout
    from pipeline.services import elasticsearch_client

    s = get_settings()
    try:
        return IndexLayout(elasticsearch_client(s), s.index_prefix)
    except RuntimeError as exc:
        fail(str(exc))


def _record(db, job) -> dict:
    rec = job_record(job)
    opts = job.options or {}
    rec["outcome"] = opts.get("outcome")
    rec["reindex"] = {k: opts.get(k) for k in ("index", "from", "mode", "model", "reason", "resumed") if opts.get(k)}
    return rec


def _summary(rec: dict) -> None:
    if rec.get("outcome"):
        out.print(rec["outcome"])
    ingest_summary(rec)


REINDEX_JOB = JobView(record=_record, summary=_summary, named=True)


def _submit(options: dict, kind: str, wait: bool, as_json: bool) -> None:
    from workers.tasks_monitor import REINDEX_TENANT, reindex as reindex_task

    submit_job(REINDEX_TENANT, [], wait, as_json, kind=kind, options=options, task=reindex_task, view=REINDEX_JOB)


def reindex(model: Path = typer.Option(None, "--model", help="A sentence-transformers folder for the new version."),
            reason: str = typer.Option(None, "--reason", help="Why; kept with the version."),
            chunk_tokens: int = typer.Option(None, "--chunk-tokens", help="Override DOCPIPE_CHUNK_TOKENS once."),
            chunk_overlap: int = typer.Option(None, "--chunk-overlap", help="Override DOCPIPE_CHUNK_OVERLAP once."),
            force: bool = typer.Option(False, "--force", help="Rebuild even if the configuration is unchanged."),
            batch: int = typer.Option(None, "--batch", help="Documents per step (DOCPIPE_REINDEX_BATCH_DOCS)."),
            discard: bool = typer.Option(False, "--discard", help="Give up the unfinished build instead."),
            wait: bool = WAIT, as_json: bool = JSON) -> None:
    """Build the next index version from SQL and swap the aliases to it; a no-op when nothing changed."""
    if discard:
        return _discard(as_json)
    s = get_settings()
    path = None
    if model is not None:
        from pipeline.errors import ConfigError
        from pipeline.reindex import IndexConfig

        path = str(model.resolve())
        try:
            IndexConfig.for_model(path, chunk_tokens or s.chunk_tokens,
                                  s.chunk_overlap if chunk_overlap is None else chunk_overlap)
        except ConfigError as exc:
            fail(str(exc))
    if batch is not None and batch < 1:
        fail("--batch must be at least 1")
    options = {"action": "build", "model": path, "chunk_tokens": chunk_tokens, "chunk_overlap": chunk_overlap,
               "force": force, "reason": reason or (f"model {path}" if path else None), "batch_docs": batch}
    _submit({k: v for k, v in options.items() if v not in (None, False)}, "reindex", wait, as_json)


def _discard(as_json: bool) -> None:
    from pipeline.reindex import discard as discard_build

    with session() as db:
        build = discard_build(db, _layout())
        rec = None if build is None else {"discarded": build.name, "state": build.state, "job_id": build.job_id}
    if as_json:
        out.print_json(json.dumps(rec or {"discarded": None}))
    elif rec is None:
        out.print("nothing is being built")
    else:
        out.print(f"discarded {rec['discarded']} (now {rec['state']}); its job {rec['job_id']} is cancelled, "
                  "the live version is untouched")


@index_app.command("versions")
def versions(as_json: bool = JSON) -> None:
    """Index versions with their configuration hash, model, chunking, chunk count and state."""
    from pipeline.reindex import list_versions

    with session() as db:
        rows = list_versions(db, _layout())
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("version", "state", "config", "model", "dims", "chunking", "chunks", "activated", "reason")
    for r in rows:
        chunking = f"{r['chunk_tokens']}/{r['chunk_overlap']}" if r["chunk_tokens"] else "-"
        table.add_row(r["name"] + (" *" if r["live"] else ""), r["state"], r["config"], r["model"] or "-",
                      str(r["dims"] or "-"), chunking, "-" if r["chunks"] is None else str(r["chunks"]),
                      (r["activated_at"] or "-")[:19], r["reason"] or "")
    out.print(table)


@index_app.command("rollback")
def rollback(wait: bool = WAIT, as_json: bool = JSON) -> None:
    """Swap back to the previous version, first catching it up with what changed since it was live."""
    _submit({"action": "rollback", "reason": "rollback"}, "rollback", wait, as_json)


@watch_app.command("add")
def watch_add(ticker: str, names: str = typer.Option("", "--names", help='Comma-separated, e.g. "Apple,Apple Inc"'),
              tenant: str = TENANT, as_json: bool = JSON) -> None:
    """Watch an entity (adding it again replaces its names)."""
    from pipeline.monitor import watchlist
    from pipeline.services import endpoints
    from pipeline.store.migrate import upgrade

    upgrade(endpoints(get_settings()).sql_url)
    try:
        with session() as db:
            row = watchlist.add(db, tenant, ticker, names)
            rec = _entity(row)
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        out.print_json(json.dumps(rec))
    else:
        out.print(f"watching {rec['ticker']} ({', '.join(rec['names']) or 'no names'}) for tenant {tenant}")


@watch_app.command("list")
def watch_list(tenant: str = typer.Option(None, "--tenant", "-t"), as_json: bool = JSON) -> None:
    """Watched entities."""
    from pipeline.monitor import watchlist

    with session() as db:
        rows = [_entity(e) for e in watchlist.entities(db, tenant)]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("tenant", "ticker", "names", "alerts", "in episode")
    for r in rows:
        table.add_row(r["tenant"], r["ticker"], ", ".join(r["names"]), str(r["episodes"]), "yes" if r["open"] else "")
    out.print(table)


@watch_app.command("remove")
def watch_remove(ticker: str, tenant: str = TENANT) -> None:
    """Stop watching an entity (its mentions and alerts are removed with it)."""
    from pipeline.monitor import watchlist

    with session() as db:
        if not watchlist.remove(db, tenant, ticker):
            fail(f"{ticker} is not watched for tenant {tenant}", 1)
    console.print(f"no longer watching {ticker.upper()}")


@watch_app.command("series")
def watch_series(ticker: str, by: str = typer.Option("day", "--by", help="hour | day"),
                 since: str = typer.Option(None, "--since", help="ISO date or time (UTC)"),
                 until: str = typer.Option(None, "--until", help="ISO date or time (UTC), exclusive"),
                 tenant: str = TENANT, as_json: bool = JSON) -> None:
    """Items, mean sentiment and negative share of an entity per hour or day."""
    from pipeline.monitor import series, watchlist

    if by not in ("hour", "day"):
        fail("--by takes hour or day")
    bounds = [_when(v, flag) for v, flag in ((since, "--since"), (until, "--until"))]
    with session() as db:
        entity = watchlist.get(db, tenant, ticker) or fail(f"{ticker} is not watched for tenant {tenant}")
        rows = series(db, entity, by, *bounds)
    if as_json:
        out.print_json(json.dumps({"entity": entity.ticker, "tenant": tenant, "by": by, "buckets": rows}))
        return
    table = Table(by, "items", "mean sentiment", "negative share", title=f"{entity.ticker} ({tenant})")
    for r in rows:
        table.add_row(r["start"][:16 if by == "hour" else 10], str(r["items"]), f"{r['mean_sentiment']:+.3f}",
                      f"{r['negative_share']:.0%}")
    out.print(table)


def alerts(entity: str = typer.Option(None, "--entity", "-e", help="Only this ticker."),
           tenant: str = typer.Option(None, "--tenant", "-t"), limit: int = 100, as_json: bool = JSON) -> None:
    """Spike alerts, newest first."""
    from pipeline.monitor import alert_record, list_alerts

    with session() as db:
        rows = [alert_record(a) for a in list_alerts(db, tenant, entity, limit)]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    if not rows:
        out.print("no alerts")
        return
    table = Table("id", "tenant", "entity", "window", "items", "negative", "baseline", "σ", "ended")
    for r in rows:
        table.add_row(str(r["id"]), r["tenant"], r["entity"], f"{r['window_start'][:16]} → {r['window_end'][11:16]}",
                      str(r["items"]), f"{r['negative_share']:.0%}",
                      f"{r['baseline_mean']:.0%} ± {r['baseline_std']:.0%}", f"{r['deviations']:.1f}",
                      (r["ended_at"] or "open")[:16])
    out.print(table)


def _entity(e) -> dict:
    return {"id": e.id, "tenant": e.tenant, "ticker": e.ticker, "names": list(e.names or []),
            "episodes": e.episodes, "open": e.open_alert_id is not None}


def _when(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{flag} {value!r} is not an ISO date or time")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
