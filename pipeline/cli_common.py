"""Helpers every `docpipe` command module shares: consoles, sessions, job submission and waiting."""
from __future__ import annotations

import json
import time

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.config import get_settings

console = Console(stderr=True)
out = Console()

TENANT = typer.Option("default", "--tenant", "-t", help="Tenant the data belongs to.")
JSON = typer.Option(False, "--json", help="Print one JSON object instead of text.")


def fail(message: str, code: int = 2) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


def session():
    from pipeline.services import endpoints
    from pipeline.store.db import session_scope

    return session_scope(endpoints(get_settings()).sql_url)


def ensure_stack() -> None:
    from pipeline.stack import is_up, up

    s = get_settings()
    if is_up(s) or (s.redis_url and s.elasticsearch_url):
        return
    console.print("No docpipe stack runs here: starting the local one (stop it with `docpipe down`).")
    print_stack(up(s, echo=console.print))


def print_stack(stack: dict) -> None:
    for name, comp in stack.get("components", {}).items():
        console.print(f"  {name:<14} pid {comp['pid']:<8} {comp['detail']}")


def job_record(job, letters=None) -> dict:
    rec = {"id": job.id, "tenant": job.tenant, "kind": job.kind, "state": job.state,
           "counters": {"total": job.total, "done": job.done, "unchanged": job.unchanged,
                        "skipped": job.skipped, "failed": job.failed, "chunks": job.chunks},
           "metrics": job.metrics, "error": job.error, "inputs": job.inputs}
    for field in ("created_at", "started_at", "finished_at", "heartbeat_at"):
        value = getattr(job, field)
        rec[field] = value.isoformat() if value else None
    if letters is not None:
        rec["dead_letters"] = [{"source": d.source, "stage": d.stage, "reason": d.reason, "detail": d.detail,
                                "replayed": d.replayed_at is not None} for d in letters]
    return rec


def wait_for_job(job_id: str) -> dict:
    from pipeline.store import repo
    from pipeline.store.models import JobState

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[counts]}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"job {job_id[:8]}", total=None, counts="queued")
        while True:
            with session() as db:
                job = repo.get_job(db, job_id)
                rec = job_record(job)
            c = rec["counters"]
            finished = c["done"] + c["unchanged"] + c["skipped"] + c["failed"]
            bar.update(task, total=c["total"] or None, completed=finished,
                       counts=f"{rec['state']} · {c['done']} indexed · {c['unchanged']} unchanged · "
                              f"{c['skipped']} duplicates · {c['failed']} failed")
            if rec["state"] in JobState.FINAL:
                return rec
            time.sleep(0.5)


def finish(rec: dict, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(rec))
    else:
        c = rec["counters"]
        out.print(f"job {rec['id']} {rec['state']}: {c['total']} items, {c['done']} indexed, "
                  f"{c['unchanged']} unchanged, {c['skipped']} duplicates, {c['failed']} failed, "
                  f"{c['chunks']} chunks")
        if rec.get("error"):
            out.print(f"  {rec['error']}")
        if c["failed"]:
            out.print(f"  see the dead letters: docpipe job {rec['id'][:8]}")
    if rec["state"] in ("failed", "cancelled"):
        raise typer.Exit(1)


def submit_job(tenant: str, inputs: list[str], wait: bool, as_json: bool, *, kind: str = "ingest",
               options: dict | None = None, task=None, on_created=None) -> None:
    """Create a job row, send its first task (default: the ingest pipeline), optionally wait for it.

    `on_created(session, job)` runs in the transaction that creates the job.
    """
    from pipeline.services import endpoints
    from pipeline.store import repo
    from pipeline.store.migrate import upgrade
    from workers.app import configure

    ensure_stack()
    upgrade(endpoints(get_settings()).sql_url)
    configure(get_settings())
    if task is None:
        from workers.tasks import start_job as task
    with session() as s:
        job = repo.create_job(s, tenant, inputs, kind=kind, options=options)
        if on_created is not None:
            on_created(s, job)
        rec = job_record(job)
    task.delay(rec["id"])
    if not wait:
        if as_json:
            out.print_json(json.dumps(rec))
        else:
            out.print(f"queued job {rec['id']}; follow it with: docpipe job {rec['id'][:8]}")
        return
    finish(wait_for_job(rec["id"]), as_json)
