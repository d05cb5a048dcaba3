"""`docpipe reindex` and `docpipe index versions|rollback`: versioned indices behind aliases."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cli import remote
from cli.common import (
    JSON,
    JobView,
    fail,
    get_settings,
    ingest_summary,
    job_record,
    new_table,
    out,
    session,
    submit_job,
    wait_for_job,
)

WAIT = typer.Option(False, "--wait", help="Show progress until the job ends.")
index_app = typer.Typer(help="Index versions: list them, roll back.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("reindex")(reindex)
    app.add_typer(index_app, name="index")


def _layout():
    from pipeline.index import IndexLayout
    from pipeline.services import elasticsearch_client

    s = get_settings()
    return IndexLayout(elasticsearch_client(s), s.index_prefix)


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
    from pipeline.reindex import REINDEX_TENANT
    from workers import client

    if (api := remote.configured()) is not None:  # the key must be of a tenant in DOCPIPE_API_ADMIN_TENANTS
        from cli.remote_commands import reindex as reindex_remote

        return reindex_remote(api, options, wait, as_json, REINDEX_JOB)
    submit_job(REINDEX_TENANT, [], wait, as_json, kind=kind, options=options, task=client.REINDEX, view=REINDEX_JOB)


def reindex(
    model: Path = typer.Option(None, "--model", help="A sentence-transformers folder for the new version."),
    reason: str = typer.Option(None, "--reason", help="Why; kept with the version."),
    chunk_tokens: int = typer.Option(None, "--chunk-tokens", help="Override DOCPIPE_CHUNK_TOKENS once."),
    chunk_overlap: int = typer.Option(None, "--chunk-overlap", help="Override DOCPIPE_CHUNK_OVERLAP once."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the configuration is unchanged."),
    batch: int = typer.Option(None, "--batch", help="Documents per step (DOCPIPE_REINDEX_BATCH_DOCS)."),
    discard: bool = typer.Option(False, "--discard", help="Give up the unfinished build instead."),
    wait: bool = WAIT,
    as_json: bool = JSON,
) -> None:
    """Build the next index version from SQL and swap the aliases to it; a no-op when nothing changed."""
    if discard:
        return _discard(as_json)
    s = get_settings()
    path = None
    if model is not None and remote.configured() is not None:
        path = str(model)  # a folder on the API's server: it checks the model
    elif model is not None:
        from pipeline.errors import ConfigError
        from pipeline.reindex import IndexConfig

        path = str(model.resolve())
        try:
            IndexConfig.for_model(
                path, chunk_tokens or s.chunk.tokens, s.chunk.overlap if chunk_overlap is None else chunk_overlap
            )
        except ConfigError as exc:
            fail(str(exc))
    if batch is not None and batch < 1:
        fail("--batch must be at least 1")
    options = {
        "action": "build",
        "model": path,
        "chunk_tokens": chunk_tokens,
        "chunk_overlap": chunk_overlap,
        "force": force,
        "reason": reason or (f"model {path}" if path else None),
        "batch_docs": batch,
    }
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
        out.print(
            f"discarded {rec['discarded']} (now {rec['state']}); its job {rec['job_id']} is cancelled, "
            "the live version is untouched"
        )


@index_app.command("versions")
def versions(as_json: bool = JSON) -> None:
    """Index versions with their configuration hash, model, chunking, chunk count and state."""
    from pipeline.reindex import list_versions

    with session() as db:
        rows = list_versions(db, _layout())
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = new_table("version", "state", "config", "model", "dims", "chunking", "chunks", "activated", "reason")
    for r in rows:
        chunking = f"{r['chunk_tokens']}/{r['chunk_overlap']}" if r["chunk_tokens"] else "-"
        table.add_row(
            r["name"] + (" *" if r["live"] else ""),
            r["state"],
            r["config"],
            r["model"] or "-",
            str(r["dims"] or "-"),
            chunking,
            "-" if r["chunks"] is None else str(r["chunks"]),
            (r["activated_at"] or "-")[:19],
            r["reason"] or "",
        )
    out.print(table)


@index_app.command("rollback")
def rollback(wait: bool = WAIT, as_json: bool = JSON) -> None:
    """Swap back to the previous version, first catching it up with what changed since it was live."""
    _submit({"action": "rollback", "reason": "rollback"}, "rollback", wait, as_json)


@index_app.command("verify")
def verify(
    tenant: str = typer.Option(None, "--tenant", "-t", help="Only this tenant's chunks (default: every tenant)."),
    repair: bool = typer.Option(
        False, "--repair", help="Re-index missing and stale chunks from SQL and delete extras (a job on the gpu queue)."
    ),
    as_json: bool = JSON,
) -> None:
    """Compare the live index with SQL: missing, extra and stale chunks. Exit 1 when drift remains."""
    from pipeline.reindex.verify import VerifyResult, create_verify_job, record_result, run_verify, server_starts
    from workers import client

    layout = _layout()
    if repair:
        with session() as db:
            starts = server_starts(layout.es) if tenant is None else {}
            job_id = create_verify_job(db, tenant, True, "cli", server_starts=starts).id
        client.send(client.VERIFY_INDEX, job_id)
        rec = wait_for_job(job_id, lambda r: (None, 0, r["state"]))
        with session() as db:
            from pipeline.store import repo

            job = repo.get_job(db, job_id)
            found, error = (job.metrics or {}).get("verify"), job.error
        if not found:
            fail(f"verify job {job_id} {rec['state']}: {error or 'no result'}", 1)
        result = VerifyResult.from_dict(found)
    else:
        with session() as db:
            job = create_verify_job(db, tenant, False, "cli")
            job_id = job.id
            result = run_verify(db, layout, tenant, None, get_settings().reindex.verify_samples)
            record_result(job, result)
    _print_verify(job_id, result, as_json)
    if result.drift_left:
        raise typer.Exit(1)


def _print_verify(job_id: str, result, as_json: bool) -> None:
    from pipeline.reindex.verify import summary

    if as_json:
        out.print_json(json.dumps({"job_id": job_id, **result.to_dict()}))
        return
    out.print(summary(result))
    for kind, ids in result.samples.items():
        out.print(f"  {kind}: {', '.join(ids)}")
    if result.drift_left and result.repaired is None:
        out.print(
            "repair with: docpipe index verify --repair" + (f" --tenant {result.tenant}" if result.tenant else "")
        )
