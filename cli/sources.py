"""`docpipe feeds ...` and `docpipe sources ...`: scheduled sources, run by the beat tick."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from cli import remote
from cli.choices import SourceKind
from cli.common import (
    JSON,
    TENANT,
    console,
    ensure_stack,
    fail,
    finish,
    get_settings,
    new_table,
    out,
    session,
    wait_for_job,
)
from pipeline.types import utcnow

feeds_app = typer.Typer(help="Feeds (RSS, Atom, JSON Feed, JSON lines) polled on a schedule.", no_args_is_help=True)
sources_app = typer.Typer(help="All scheduled sources: feeds and folders.", no_args_is_help=True)
EVERY = typer.Option(None, "--every", help="Interval: 30s, 5m, 1h, 1d (or 1h30m); or give --cron.")
CRON = typer.Option(None, "--cron", help='Cron expression instead of --every, e.g. "0 6 * * *" (docs/schedules.md).')
TZ = typer.Option(None, "--tz", help="IANA time zone of --cron, e.g. Europe/Berlin (default UTC).")
WAIT = typer.Option(False, "--wait", help="Wait for the run and the ingest job it starts.")
DELETE_DOCUMENTS = typer.Option(
    False, "--delete-documents", help="Delete its documents too (in a delete job); else they stay indexed."
)


def register(app: typer.Typer) -> None:
    """Add this feature's commands (and sub-apps) to the docpipe CLI."""
    app.add_typer(feeds_app, name="feeds")
    app.add_typer(sources_app, name="sources")


def _db():
    from migrations.runner import upgrade
    from pipeline.services import endpoints

    upgrade(endpoints(get_settings()).sql_url)  # the tables may not exist yet on a fresh data dir
    return session()


def _add(
    kind: str,
    location: str,
    every: str | None,
    tenant: str,
    timeout: float | None,
    as_json: bool,
    prune: bool = False,
    cron: str | None = None,
    tz: str | None = None,
) -> None:
    from pipeline.sources import SourceError, catalog, parse_every

    if (every is None) == (cron is None):
        fail('give the schedule as --every (e.g. 15m) or as --cron (e.g. "0 6 * * *" with --tz), one of them')
    if (api := remote.configured()) is not None:  # a folder: a path on the API's server
        from cli.remote_commands import source_add

        rec = source_add(api, kind, location, every, timeout, prune, cron, tz)
    else:
        try:
            seconds = parse_every(every) if every is not None else 0
            with _db() as db:
                source = catalog.add_source(db, kind, location, seconds, tenant, timeout, prune, cron, tz)
                rec = catalog.source_record(source)
        except SourceError as exc:
            fail(str(exc))
    if as_json:
        out.print_json(json.dumps(rec))
        return
    out.print(
        f"added {kind} {rec['id']} ({rec['location']}), {_schedule(rec)}, tenant {rec['tenant']}; "
        f"first run at {rec['next_run_at'][:19]} UTC while `docpipe up` runs (now: docpipe {_group(kind)} run "
        f"{rec['id'][:8]})"
    )


def _schedule(rec: dict) -> str:
    return f"cron {rec['cron']} ({rec['timezone']})" if rec.get("cron") else f"every {rec['every']}"


def _group(kind: str | None) -> str:
    return "feeds" if kind == "feed" else "sources"


def _find(db, ref: str, kind: str | None):
    from pipeline.sources import catalog

    return catalog.find_source(db, ref, kind) or fail(
        f"no {kind or 'source'} {ref} (or the prefix is ambiguous); see `docpipe {_group(kind)} list`"
    )


def _list(kind: str | None, tenant: str | None, as_json: bool) -> None:
    from pipeline.sources import catalog

    if (api := remote.configured()) is not None:  # the key's tenant's sources
        recs = list(api.items("/v1/sources", kind=kind))
    else:
        with _db() as db:
            recs = [catalog.source_record(s) for s in catalog.list_sources(db, kind, tenant)]
    if as_json:
        out.print_json(json.dumps(recs))
        return
    if not recs:
        out.print(f"no {kind or 'source'}s (add one with `docpipe {_group(kind)} add`)")
        return
    table = new_table("id", "kind", "tenant", "schedule", "location", "next run (UTC)", "failures", "last status")
    for r in recs:
        status = r["last_error"] or r["last_status"] or "never run"
        table.add_row(
            r["id"][:8],
            r["kind"],
            r["tenant"],
            _schedule(r),
            r["location"],
            "running" if r["running"] else (r["next_run_at"] or "")[:19],
            str(r["failures"]),
            status,
        )
    out.print(table)


def _remove(ref: str, kind: str | None, delete_documents: bool) -> None:
    from pipeline.sources.prune import remove_source
    from workers import client

    if (api := remote.configured()) is not None:
        from cli.remote_commands import source_remove

        accepted = source_remove(api, ref, kind, delete_documents)
        ended = f"deleting its {accepted['documents']} document(s) in job {accepted['job_id']}" if accepted else ""
        return console.print(f"removed {ref}" + (f"; {ended}" if ended else ""))
    with _db() as db:
        source = _find(db, ref, kind)
        sid, location = source.id, source.location
        job = remove_source(db, source, delete_documents)
        job_id, n = (job.id, job.total) if job else (None, 0)
    if job_id is None:
        kept = "it had no documents" if delete_documents else "its documents stay indexed"
        console.print(f"removed {sid} ({location}); {kept}")
        return
    client.send(client.DELETE_DOCUMENTS, job_id)
    console.print(f"removed {sid} ({location}); deleting its {n} document(s) in job {job_id}: docpipe job {job_id[:8]}")


def _run(ref: str, kind: str | None, wait: bool, as_json: bool) -> None:
    """Claim the source now (due or not), enqueue its run, optionally wait for it and its job."""
    from pipeline.sources import catalog
    from workers import client

    ensure_stack()
    s = get_settings()
    with _db() as db:
        source = _find(db, ref, kind)
        sid, before = source.id, source.last_job_id
        token = catalog.claim(db, sid, utcnow(), s.sources.lease_seconds, force=True)
        busy = None if token else catalog.busy_reason(db, source, utcnow(), s.sources.lease_seconds)
    if token is None:
        fail(f"{sid} is busy: {busy or 'another run holds it'}", 1)
    client.send(client.RUN_SOURCE, sid, token)
    if not wait:
        if as_json:
            out.print_json(json.dumps({"source": sid, "queued": True}))
        else:
            out.print(f"queued a run of {sid}; follow it with: docpipe {_group(kind)} list")
        return
    rec = _wait_for_run(sid, token)
    job_id = rec["last_job_id"] if rec["last_job_id"] != before else None
    if rec["failures"] and rec["last_error"]:
        if as_json:
            out.print_json(json.dumps({"source": rec, "job": None}))
        else:
            out.print(f"run of {sid} failed: {rec['last_error']}\n  {rec['last_status']}")
        raise typer.Exit(1)
    if not as_json:
        out.print(f"{sid}: {rec['last_status']}")
    if job_id is None:
        if as_json:
            out.print_json(json.dumps({"source": rec, "job": None}))
        return
    job = wait_for_job(job_id)
    if as_json:
        out.print_json(json.dumps({"source": rec, "job": job}))
        if job["state"] in ("failed", "cancelled"):
            raise typer.Exit(1)
        return
    finish(job, False)


def _wait_for_run(source_id: str, token: str, timeout: float = 600) -> dict:
    from pipeline.sources import catalog
    from pipeline.store.models_sources import Source

    deadline = time.monotonic() + timeout
    with console.status(f"running {source_id[:8]}"):
        while time.monotonic() < deadline:
            with session() as db:
                source = db.get(Source, source_id)
                if source is None:
                    fail(f"{source_id} was removed while it ran", 1)
                if source.run_token != token or source.running_since is None:
                    return catalog.source_record(source)
            time.sleep(0.5)
    fail(f"the run of {source_id} did not finish within {timeout:.0f}s; is a worker running (`docpipe status`)?", 1)


# --- docpipe feeds -------------------------------------------------------------------------------


@feeds_app.command("add")
def feeds_add(
    url: str,
    every: str = EVERY,
    cron: str = CRON,
    tz: str = TZ,
    tenant: str = TENANT,
    timeout: float = typer.Option(None, "--timeout", help="Seconds; default DOCPIPE_FETCH_TIMEOUT."),
    prune: bool = typer.Option(False, "--prune", help="Delete the documents of items that leave the feed."),
    as_json: bool = JSON,
) -> None:
    """Poll URL on a schedule (--every or --cron); new items go through the ingest pipeline."""
    _add("feed", url, every, tenant, timeout, as_json, prune, cron, tz)


sources_app.command("add-feed")(feeds_add)


@feeds_app.command("list")
def feeds_list(tenant: str = typer.Option(None, "--tenant", "-t"), as_json: bool = JSON) -> None:
    """Feeds with their schedule, next run, consecutive failures and last status."""
    _list("feed", tenant, as_json)


@feeds_app.command("remove")
def feeds_remove(source_id: str, delete_documents: bool = DELETE_DOCUMENTS) -> None:
    """Stop polling a feed (documents already indexed stay, unless --delete-documents)."""
    _remove(source_id, "feed", delete_documents)


@feeds_app.command("run")
def feeds_run(source_id: str, wait: bool = WAIT, as_json: bool = JSON) -> None:
    """Poll a feed now, whatever its schedule."""
    _run(source_id, "feed", wait, as_json)


# --- docpipe sources -----------------------------------------------------------------------------


@sources_app.command("add-folder")
def sources_add_folder(
    path: Path, every: str = EVERY, cron: str = CRON, tz: str = TZ, tenant: str = TENANT, as_json: bool = JSON
) -> None:
    """Re-sync a folder on a schedule (--every or --cron): new and changed files are ingested, deleted ones
    removed."""
    _add("folder", str(path), every, tenant, None, as_json, cron=cron, tz=tz)


@sources_app.command("list")
def sources_list(
    kind: SourceKind = typer.Option(None, "--kind", help="Only sources of this kind."),
    tenant: str = typer.Option(None, "--tenant", "-t"),
    as_json: bool = JSON,
) -> None:
    """Every scheduled source."""
    _list(kind.value if kind else None, tenant, as_json)


@sources_app.command("remove")
def sources_remove(source_id: str, delete_documents: bool = DELETE_DOCUMENTS) -> None:
    """Stop scheduling a source (documents already indexed stay, unless --delete-documents)."""
    _remove(source_id, None, delete_documents)


@sources_app.command("run")
def sources_run(source_id: str, wait: bool = WAIT, as_json: bool = JSON) -> None:
    """Run (re-sync) a source now, whatever its schedule."""
    _run(source_id, None, wait, as_json)
