"""`docpipe documents delete`: delete documents (by id, source or job) in a delete job."""

from __future__ import annotations

import os
import sys

import typer

from cli.common import JSON, TENANT, JobView, fail, job_record, out, session, submit_job
from workers import client

documents_app = typer.Typer(help="The documents of a tenant.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(documents_app, name="documents")


def _progress(rec: dict) -> tuple[int | None, int, str]:
    c = rec["counters"]
    return c["total"] or None, c["done"], f"{rec['state']} · {c['done']} deleted · {c['chunks']} chunks"


def _summary(rec: dict) -> None:
    out.print(f"job {rec['id']} {rec['state']}: {rec['outcome']}")
    if rec.get("error"):
        out.print(f"  {rec['error']}")


def _record(db, job) -> dict:
    from pipeline.documents.jobs import summary

    return {**job_record(job), "outcome": summary(job)}


DELETE_JOB = JobView(record=_record, progress=_progress, summary=_summary, named=True)


def _can_ask() -> bool:
    ci = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
    return not ci and sys.stdin.isatty()


def _selection(db, tenant: str, ids: list[str], source: str | None, job: str | None) -> tuple[dict, str]:
    """The selection the options name and how to say it; refuses (in one line) one that matches nothing."""
    from pipeline.documents.jobs import InvalidSelection, count_documents, select_documents, selection
    from pipeline.store import repo

    try:
        if job is not None:
            found = repo.get_job(db, job)
            if found is None or found.tenant != tenant:
                fail(f"no job {job} in tenant {tenant} (see `docpipe jobs --tenant {tenant}`)")
            chosen = selection(job=found.id)
            what = f"of job {found.id}"
        else:
            chosen = selection(ids=ids or None, sources=[source] if source is not None else None)
            what = f"of source {source}" if source is not None else ""
    except InvalidSelection as exc:
        fail(f"{exc} (document ids as arguments, or --source, or --job)")
    if "ids" in chosen:
        unknown = sorted(set(chosen["ids"]) - set(select_documents(db, tenant, chosen)))
        if unknown:
            fail(f"no document {unknown[0]} in tenant {tenant} ({len(unknown)} unknown id(s))")
    elif not count_documents(db, tenant, chosen):
        fail(f"no document {what} in tenant {tenant}", 1)
    return chosen, what


@documents_app.command("delete")
def delete(
    ids: list[str] = typer.Argument(None, help="Ids of the documents to delete."),
    source: str = typer.Option(None, "--source", help="A source, exactly; ending in '*', every source it begins."),
    job: str = typer.Option(None, "--job", help="The documents this job read or last wrote (an id or its prefix)."),
    tenant: str = TENANT,
    cascade_duplicates: bool = typer.Option(
        False, "--cascade-duplicates", help="Delete their duplicates too (else those wait for their next ingest)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    wait: bool = typer.Option(False, "--wait", help="Show progress until the job ends."),
    as_json: bool = JSON,
) -> None:
    """Delete documents: their chunks from every index version, their rows and their dedup state, in a job."""
    from pipeline.documents.jobs import count_documents, create_delete_job

    with session() as db:
        chosen, what = _selection(db, tenant, ids or [], source, job)
        n = count_documents(db, tenant, chosen)
    if not yes:
        if not _can_ask():
            fail(f"deleting {n} document(s) needs confirmation: add --yes (no terminal to ask on)")
        if not typer.confirm(f"Delete {n} document(s) {what} of tenant {tenant}?".replace("  ", " "), default=False):
            fail("nothing deleted", 1)

    def create(db):
        return create_delete_job(db, tenant, chosen, cascade_duplicates=cascade_duplicates, reason="docpipe CLI")

    submit_job(tenant, [], wait, as_json, kind="delete", task=client.DELETE_DOCUMENTS, create=create, view=DELETE_JOB)
