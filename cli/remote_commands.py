"""The remote forms of the commands that create jobs or search: what `docpipe ...` does with DOCPIPE_API_URL set.

Each command in cli/ checks `remote.configured()` first and hands over here; reading commands (`jobs`, `job`,
`sources list`) only swap where their records come from and keep their own printing.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import typer

from cli.common import JobView, fail, finish, ingest_summary, out, print_hit, print_json, wait_for_job
from cli.remote import RemoteApi

_BATCH_FILES = 50  # files per upload request (the API takes DOCPIPE_API_MAX_UPLOAD_FILES, 100 by default)


def upload_files(paths: list[Path]) -> list[Path]:
    """The files to upload: those named, and the supported ones under the folders named (hidden ones skipped),
    as `docpipe ingest` reads them locally. The API keys a document by its file name: two of one name refuse."""
    from pipeline.formats import SUPPORTED_SUFFIXES, iter_files

    files = []
    for path in paths:
        if path.is_dir():
            files += [f for f in iter_files([path]) if f.suffix.lower() in SUPPORTED_SUFFIXES]
        else:
            files.append(path)
    from pipeline.formats.files import name_problem, shown_name

    unnamed = [shown_name(f) for f in files if name_problem(f)]
    if unnamed:
        fail(f"{len(unnamed)} file name(s) are not UTF-8, e.g. {unnamed[0]}: rename them (e.g. with convmv)")
    twice = sorted(name for name, n in Counter(f.name for f in files).items() if n > 1)
    if twice:
        fail(f"{len(twice)} file name(s) occur twice, e.g. {twice[0]}: an upload is named by its file name; rename one")
    if not files:
        fail("no supported files to upload in the folders given")
    return files


def ingest(api: RemoteApi, paths: list[Path], wait: bool, as_json: bool) -> None:
    """Upload the files (in batches: one ingest job each); with `wait`, follow the jobs to their end."""
    files = upload_files(paths)
    accepted = [api.upload(files[i : i + _BATCH_FILES]) for i in range(0, len(files), _BATCH_FILES)]
    if not wait:
        if as_json:
            out.print_json(json.dumps(accepted if len(accepted) > 1 else accepted[0]))
        for a in [] if as_json else accepted:
            out.print(
                f"queued job {a['job_id']} ({len(a['files'])} files); follow it with: docpipe job {a['job_id'][:8]}"
            )
        return
    recs = [follow(api, a["job_id"]) for a in accepted]
    if as_json and len(recs) > 1:
        out.print_json(json.dumps(recs))
        if any(r["state"] in ("failed", "cancelled") for r in recs):
            raise typer.Exit(1)
        return
    for rec in recs[:-1]:
        ingest_summary(rec)
    finish(recs[-1], as_json)


def follow(api: RemoteApi, job_id: str, view: JobView = JobView()) -> dict:
    """A progress bar on the job until it ends, reading it from the API."""
    return wait_for_job(job_id, view.progress, fetch=api.job)


def submitted(api: RemoteApi, accepted: dict, wait: bool, as_json: bool, kind: str, view: JobView = JobView()) -> None:
    """Print a queued job, or follow it and print how it ended (as `docpipe` does for local jobs)."""
    if not wait:
        if as_json:
            out.print_json(json.dumps(accepted))
        else:
            out.print(f"queued {kind} job {accepted['job_id']}; follow it with: docpipe job {accepted['job_id'][:8]}")
        return
    finish(follow(api, accepted["job_id"], view), as_json, view.summary)


def search(
    api: RemoteApi,
    query: str,
    mode: str,
    k: int,
    labels: list[str],
    where: list[str],
    facets: list[str],
    as_json: bool,
) -> None:
    found = api.get(
        "/v1/search", q=query, mode=mode, k=k, label=labels or None, where=where or None, facet=facets or None
    )
    hits = found["hits"]
    if as_json:
        print_json({"hits": hits, "facets": found.get("facets", {})} if facets else hits)
        return
    for key, values in (found.get("facets") or {}).items():
        out.print(f"{key}: " + (", ".join(f"{v['value']} ({v['count']})" for v in values) or "no values"))
    if not hits:
        out.print("no hits")
    for h in hits:
        print_hit(h["rank"], h["name"], h.get("pages"), h["ordinal"], h["score"], h.get("snippet") or "")


def delete_documents(
    api: RemoteApi,
    ids: list[str],
    source: str | None,
    job: str | None,
    cascade: bool,
    confirmed: bool,
    wait: bool,
    as_json: bool,
    progress,
) -> None:
    given = [name for name, value in (("ids", ids), ("--source", source), ("--job", job)) if value]
    if len(given) != 1:
        fail("name the documents to delete: document ids as arguments, or --source, or --job (one of them)")
    if not confirmed:
        fail("deleting through the API needs --yes (the API deletes at once; nothing is counted beforehand)")
    if ids and len(ids) == 1:
        accepted = api.delete(f"/v1/documents/{ids[0]}", cascade_duplicates=cascade or None)
    else:
        body: dict = {"cascade_duplicates": cascade}
        if ids:
            body["ids"] = ids
        elif source:
            body["source"] = source
        else:
            body["job"] = api.job_id(job or "")
        accepted = api.post("/v1/documents/delete", json=body)
    if not as_json and not wait:
        out.print(f"deleting {accepted['documents']} document(s) in job {accepted['job_id']}")
    submitted(api, accepted, wait, as_json, "delete", JobView(progress=progress, summary=_deleted))


def _deleted(rec: dict) -> None:
    c = rec["counters"]
    out.print(f"job {rec['id']} {rec['state']}: deleted {c['done']} document(s), {c['chunks']} chunk(s)")
    if rec.get("error"):
        out.print(f"  {rec['error']}")


def source_add(
    api: RemoteApi,
    kind: str,
    location: str,
    every: str | None,
    timeout: float | None,
    prune: bool,
    cron: str | None = None,
    tz: str | None = None,
) -> dict:
    body = {"kind": kind, "location": location, "every": every, "cron": cron, "tz": tz, "timeout_seconds": timeout}
    body["prune"] = prune
    return api.post("/v1/sources", json={k: v for k, v in body.items() if v is not None})


def source_id(api: RemoteApi, ref: str, kind: str | None) -> str:
    """A source's id from its id or the prefix `sources list` shows."""
    found = [s["id"] for s in api.items("/v1/sources", kind=kind) if s["id"].startswith(ref.strip().lower())]
    if len(found) != 1 or not ref.strip():
        group = "feeds" if kind == "feed" else "sources"
        fail(f"no {kind or 'source'} {ref} (or the prefix is ambiguous); see `docpipe {group} list`")
    return found[0]


def source_remove(api: RemoteApi, ref: str, kind: str | None, delete_documents: bool) -> dict | None:
    """Remove the source; the delete job of its documents, if one was started."""
    return api.delete(f"/v1/sources/{source_id(api, ref, kind)}", delete_documents=delete_documents or None)


def reindex(api: RemoteApi, options: dict, wait: bool, as_json: bool, view: JobView) -> None:
    path = "/v1/index/rollback" if options.get("action") == "rollback" else "/v1/index/reindex"
    body = {k: v for k, v in options.items() if k not in ("action",)}
    accepted = api.post(path, json=None if path.endswith("rollback") else body)
    submitted(api, accepted, wait, as_json, accepted.get("kind", "reindex"), view)
