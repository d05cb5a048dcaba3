"""`docpipe documents delete`: delete documents (by id, source or job) in a delete job; `set-meta` and `sync-meta`:
change their metadata without re-embedding (docs/metadata.md)."""

from __future__ import annotations

import json
import os
import sys

import typer

from cli import remote
from cli.common import JSON, TENANT, JobView, fail, job_record, out, progress_bar, session, submit_job

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

    if (api := remote.configured()) is not None:
        from cli.remote_commands import delete_documents

        asked = not yes and _can_ask() and typer.confirm(f"Delete the documents named through {api.url}?")
        return delete_documents(
            api, ids or [], source, job, cascade_duplicates, yes or asked, wait, as_json, DELETE_JOB.progress
        )
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

    from workers import client

    submit_job(tenant, [], wait, as_json, kind="delete", task=client.DELETE_DOCUMENTS, create=create, view=DELETE_JOB)


def _pairs(pairs: list[str], unset: list[str]) -> dict:
    """KEY=VALUE arguments (a key given twice makes a list) and --unset keys, as a merge patch."""
    patch: dict = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            fail(f"cannot read {pair!r}: write KEY=VALUE (and --unset KEY to remove a key)")
        key = key.strip()
        if key in patch:
            before = patch[key]
            patch[key] = [*(before if isinstance(before, list) else [before]), value]
        else:
            patch[key] = value
    for key in unset:
        if key in patch:
            fail(f"{key!r} is both set and unset: choose one")
        patch[key] = None
    if not patch:
        fail("nothing to change: give KEY=VALUE pairs or --unset KEY")
    return patch


@documents_app.command("set-meta")
def set_meta(
    doc_id: str = typer.Argument(..., help="The document's id."),
    pairs: list[str] = typer.Argument(None, help="KEY=VALUE to set (a key given twice holds a list)."),
    unset: list[str] = typer.Option(None, "--unset", help="A key to remove (repeatable)."),
    tenant: str = TENANT,
    as_json: bool = JSON,
) -> None:
    """Change a document's metadata in SQL and on its chunks in every index version, without re-embedding."""
    from pipeline.documents.delete import DocumentsBusy
    from pipeline.documents.metadata import DocumentNotFound, patch_metadata
    from pipeline.metadata import MetadataError

    patch = _pairs(pairs or [], unset or [])
    try:
        with session() as db:
            report = patch_metadata(db, _layout(), tenant, doc_id, patch)
    except (MetadataError, DocumentNotFound, DocumentsBusy) as exc:
        fail(str(exc))
    if as_json:
        rec = {"id": doc_id, "meta": report.metadata, "indices": report.indices, "chunks": report.chunks}
        out.print_json(json.dumps(rec))
        return
    out.print(f"document {doc_id}: {report.chunks} chunk(s) updated in {', '.join(report.indices) or 'no index'}")
    for key, value in sorted(report.metadata.items()):
        out.print(f"  {key} = {value}")


@documents_app.command("sync-meta")
def sync_meta(
    tenant: str = typer.Option(None, "--tenant", "-t", help="Only this tenant's documents (default: every tenant)."),
    as_json: bool = JSON,
) -> None:
    """Copy every document's metadata from SQL onto its chunks (once after upgrading: no re-embedding)."""
    from sqlalchemy import func, select

    from pipeline.documents.metadata import sync_metadata
    from pipeline.store.models import Document

    with session() as db:
        q = select(func.count()).select_from(Document)
        total = db.scalar(q if tenant is None else q.where(Document.tenant == tenant)) or 0
        with progress_bar(total, "metadata") as advance:
            report = sync_metadata(db, _layout(), tenant, advance)
    if as_json:
        out.print_json(json.dumps({"documents": total, "indices": report.indices, "chunks": report.chunks}))
        return
    out.print(f"{total} document(s): {report.chunks} chunk(s) updated in {', '.join(report.indices) or 'no index'}")


def _layout():
    from pipeline.config import get_settings
    from pipeline.index import IndexLayout
    from pipeline.services import elasticsearch_client

    s = get_settings()
    return IndexLayout(elasticsearch_client(s), s.index_prefix)
