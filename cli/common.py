"""Helpers every `docpipe` command module shares: consoles, sessions, job submission and waiting."""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from cli.errors import DataConsole, one_line, say_error, say_warning

if TYPE_CHECKING:
    from rich.table import Table

    from pipeline.config import Settings

console = DataConsole(stderr=True)  # progress bars, notices
out = DataConsole()  # what a command answers: sources, snippets and reasons are printed as written

TENANT = typer.Option("default", "--tenant", "-t", help="Tenant the data belongs to.")
JSON = typer.Option(False, "--json", help="Print one JSON object instead of text.")


def print_hit(rank: int, name: str, pages: list[int] | None, ordinal: int, score: float, text: str) -> None:
    """One search hit as `docpipe search` prints it, whether the local stack or the API answered."""
    on_pages = f"  {pages_label(pages)}" if pages else ""
    snippet = " ".join(text.split())[:160]
    out.print(f"{rank:>3}. {one_line(name)}{on_pages}  chunk {ordinal}  score {score:.4f}\n     {snippet}")


def pages_label(pages: list[int]) -> str:
    return f"p. {pages[0]}" if len(pages) == 1 else f"pp. {pages[0]}-{pages[-1]}"


def new_table(*headers: str, title: str | None = None) -> Table:
    """A rich table with these column headers (rich.table is imported at first use: a search never needs it)."""
    from rich.table import Table

    return Table(*headers, title=title)


def get_settings() -> Settings:
    """pipeline.config's settings, imported at first use: pydantic's import is about 130 ms of a CLI start here,
    which a search of a running stack never needs (cli/remote.py finds the stack without it). The first use warns
    of DOCPIPE_* variables that no setting reads (a typo would leave docpipe on its defaults without a word)."""
    from pipeline.config import get_settings as settings

    _name_unknown_variables()
    return settings()


@functools.cache
def _name_unknown_variables() -> None:
    from pipeline.config import unknown_variables

    for line in unknown_variables(os.environ):
        say_warning(line)


def print_json(data) -> None:
    """`data` as indented JSON on stdout: coloured by rich on a terminal; piped, the same text written directly
    (rich's highlighting of a page of hits cost a CLI search ~25 ms that a pipe never shows)."""
    if out.is_terminal:
        out.print_json(json.dumps(data))
    else:
        out.file.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        out.file.flush()


def fail(message: str, code: int = 2) -> NoReturn:
    say_error(message)
    raise typer.Exit(code)


NO_DATABASE = "no database yet: run `docpipe up` or `docpipe db upgrade`"
_migrated: set[str] = set()


def require_database(url: str) -> None:
    """Refuse, in one line, to read a database docpipe never created (a fresh data dir): its tables do not exist.

    Commands that write (ingest, up, keys create, sources add, ...) migrate first; commands that read say so.
    """
    if url in _migrated:
        return
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:" and not Path(path).exists():
            fail(NO_DATABASE, 1)  # checked without connecting: connecting would create an empty file
    from sqlalchemy import inspect

    from pipeline.store.db import engine_for

    if not inspect(engine_for(url)).has_table("alembic_version"):
        fail(NO_DATABASE, 1)
    _migrated.add(url)


def session():
    from pipeline.services import endpoints
    from pipeline.store.db import session_scope

    url = endpoints(get_settings()).sql_url
    require_database(url)
    return session_scope(url)


def ensure_stack() -> None:
    from cli.localstack.launcher import is_up, up
    from pipeline.services import read_stack

    s = get_settings()
    if is_up(s) or (s.redis_url and s.elasticsearch_url):
        return
    if not read_stack(s).get("components"):
        console.print("No docpipe stack runs here: starting the local one (stop it with `docpipe down`).")
    # up heals: what runs is left alone, only what died starts again, on its old ports
    print_stack(up(s, echo=console.print))


def print_stack(stack: dict) -> None:
    for name, comp in stack.get("components", {}).items():
        console.print(f"  {name:<14} pid {comp['pid']:<8} {comp['detail']}")


def job_record(job, letters=None, stages=None) -> dict:
    """The job as the CLI prints it (--json): the domain's record with its times in ISO 8601."""
    from pipeline.jobs import record

    rec = record.job_record(job, letters, stages)
    for field in record.TIMES:
        rec[field] = _iso(rec[field])
    for letter in rec.get("dead_letters", ()):
        letter["created_at"] = _iso(letter["created_at"])
    return rec


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def ingest_progress(rec: dict) -> tuple[int | None, int, str]:
    """(total, done, status) of the progress bar for a job that counts documents."""
    c = rec["counters"]
    finished = c["done"] + c["unchanged"] + c["skipped"] + c["failed"]
    return (
        c["total"] or None,
        finished,
        (
            f"{rec['state']} · {c['done']} indexed · {c['unchanged']} unchanged · "
            f"{c['skipped']} duplicates · {c['failed']} failed"
        ),
    )


def ingest_summary(rec: dict) -> None:
    c = rec["counters"]
    out.print(
        f"job {rec['id']} {rec['state']}: {c['total']} items, {c['done']} indexed, "
        f"{c['unchanged']} unchanged, {c['skipped']} duplicates, {c['failed']} failed, "
        f"{c['chunks']} chunks"
    )
    if rec.get("error"):
        out.print(f"  {rec['error']}")
    if c["failed"]:
        out.print(f"  see the dead letters: docpipe job {rec['id'][:8]}")


def _plain_record(session, job) -> dict:
    from pipeline.jobs.stats import job_stats

    return job_record(job, stages=job_stats(session, job))


@dataclass(frozen=True)
class JobView:
    """How a kind of job is shown while it is submitted and followed; the defaults show an ingest job.

    record: (session, job) -> the dict printed when it is queued and when it ends (--json);
    progress: job record -> (total, done, status) for the progress bar; summary: prints the text
    when it ends; named: whether "queued ... job" names the job's kind.
    """

    record: Callable[..., dict] = _plain_record
    progress: Callable[[dict], tuple[int | None, int, str]] = ingest_progress
    summary: Callable[[dict], None] = ingest_summary
    named: bool = False


def _job_from_database(job_id: str) -> dict:
    from pipeline.store import repo

    with session() as db:
        return job_record(repo.get_job(db, job_id))


def wait_for_job(
    job_id: str,
    progress: Callable[[dict], tuple[int | None, int, str]] = ingest_progress,
    fetch: Callable[[str], dict] = _job_from_database,
) -> dict:
    """A progress bar until the job ends; `fetch(job_id)` reads its record (from the database, or the API)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pipeline.store.models import JobState

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"job {job_id[:8]}", total=None, status="queued")
        while True:
            rec = fetch(job_id)
            total, done, status = progress(rec)
            bar.update(task, total=total, completed=done, status=status)
            if rec["state"] in JobState.FINAL:
                return rec
            time.sleep(0.5)


@contextmanager
def progress_bar(total: int, what: str) -> Iterator[Callable[[], None]]:
    """A bar on stderr for `total` steps of CLI work; yields the function that advances it by one."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda: bar.advance(task)


def finish(rec: dict, as_json: bool, summary: Callable[[dict], None] = ingest_summary) -> None:
    if as_json:
        out.print_json(json.dumps(rec))
    else:
        summary(rec)
    if rec["state"] in ("failed", "cancelled"):
        raise typer.Exit(1)


def submit_job(
    tenant: str,
    inputs: list[str],
    wait: bool,
    as_json: bool,
    *,
    kind: str = "ingest",
    options: dict | None = None,
    task: str | None = None,
    create=None,
    view: JobView = JobView(),
) -> None:
    """Create a job row, send task `task` by name (default: the ingest pipeline's first), optionally wait for it.

    `create(session)` builds the job row instead of a plain job over `inputs` (a use case such as a replay);
    `view` says how the job is printed (queued, while it runs, when it ends).
    """
    from migrations.runner import upgrade
    from pipeline.services import endpoints
    from pipeline.store import repo
    from workers import client

    ensure_stack()
    upgrade(endpoints(get_settings()).sql_url)
    with session() as s:
        job = create(s) if create is not None else repo.create_job(s, tenant, inputs, kind=kind, options=options)
        rec = view.record(s, job)
    client.send(task or client.START_JOB, rec["id"])
    if not wait:
        if as_json:
            out.print_json(json.dumps(rec))
        else:
            out.print(
                f"queued {kind + ' ' if view.named else ''}job {rec['id']}; follow it with: docpipe job {rec['id'][:8]}"
            )
        return
    wait_for_job(rec["id"], view.progress)
    with session() as s:
        rec = view.record(s, repo.get_job(s, rec["id"]))
    finish(rec, as_json, view.summary)
