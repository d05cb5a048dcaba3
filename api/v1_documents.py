"""POST /v1/documents (upload → job), the tenant's documents, and deleting them (→ a delete job)."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from api.auth import require_tenant
from api.errors import ApiError
from api.pages import PageParams, page, page_params
from api.schemas import (
    Accepted,
    DeleteAccepted,
    DeleteIn,
    DocumentDetail,
    DocumentList,
    Error,
    InvalidRequest,
    MetadataOut,
    MetadataPatch,
    document_out,
)
from api.uploads import Batch, Staging, parse_batch, read_capped, receive_multipart, upload_metadata, write_batch
from pipeline.formats import SUPPORTED_SUFFIXES
from pipeline.store import repo
from workers import client

router = APIRouter(prefix="/v1", tags=["documents"])
ID = re.compile(r"[0-9a-f]{32}")

# Room for a file's part headers and the boundaries around it.
_PART_OVERHEAD = 4096


def _inline_refs(schema: dict) -> dict:
    """The batch's JSON schema without $defs, so it can sit inside the OpenAPI request body."""
    defs = schema.pop("$defs", {})

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(defs[node["$ref"].rsplit("/", 1)[1]])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": f"Files ({' '.join(sorted(SUPPORTED_SUFFIXES))}); "
                            "the file name is the document's identity.",
                        }
                    },
                }
            },
            "application/json": {"schema": _inline_refs(Batch.model_json_schema())},
        },
    }
}
_ERRORS = {401: {"model": Error}, 413: {"model": Error}, 415: {"model": Error}, 422: {"model": Error}}


@router.post(
    "/documents",
    status_code=202,
    response_model=Accepted,
    openapi_extra=_UPLOAD_BODY,
    responses=_ERRORS,
    summary="Upload files (multipart) or a JSON batch; returns the ingest job",
)
async def upload(request: Request, tenant: str = Depends(require_tenant)) -> dict:
    ctx = request.app.state.ctx
    s = ctx.settings
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    declared = request.headers.get("content-length", "")
    if media == "multipart/form-data":
        ceiling = s.api.max_upload_files * (s.max_file_bytes + _PART_OVERHEAD)
        if declared.isdigit() and int(declared) > ceiling:
            raise ApiError(
                413,
                f"upload of {declared} bytes exceeds {s.api.max_upload_files} files of {s.max_file_bytes} bytes",
                limit=s.max_file_bytes,
            )
        staging = Staging(ctx.uploads_dir, tenant)
        rename, records, metadata = None, None, {}
        try:
            await receive_multipart(request.stream(), content_type, staging, s.max_file_bytes, s.api.max_upload_files)
            metadata = upload_metadata(staging.fields)
        except BaseException:  # refused, malformed or the client went away: keep nothing of it
            staging.discard()
            raise
    elif media == "application/json" or media.endswith("+json"):
        if declared.isdigit() and int(declared) > s.api.max_json_bytes:
            raise ApiError(
                413,
                f"JSON body of {declared} bytes exceeds {s.api.max_json_bytes} (DOCPIPE_API_MAX_JSON_BYTES)",
                limit=s.api.max_json_bytes,
            )
        batch = parse_batch(await read_capped(request.stream(), s.api.max_json_bytes))
        staging = Staging(ctx.uploads_dir, tenant)
        try:
            name = write_batch(batch, staging)
        except BaseException:
            staging.discard()
            raise
        rename, records, metadata = {name: f"batches/{name}"}, len(batch.documents), {}
    else:
        raise ApiError(
            415,
            f"Content-Type {media or '(none)'!r} is not accepted: send multipart/form-data "
            "files or an application/json batch",
        )
    names = list(staging.names)
    paths = staging.commit(rename)
    job_id = await run_in_threadpool(_create_job, ctx, tenant, paths, metadata)
    return {"job_id": job_id, "state": "queued", "files": names, "documents": records}


def _create_job(ctx, tenant: str, paths: list[str], metadata: dict | None = None) -> str:
    # the upload's metadata travels in the job: ingest gives it to every document of the upload
    options = {"metadata": metadata} if metadata else None
    with ctx.session() as session:
        job_id = repo.create_job(session, tenant, paths, kind="upload", options=options).id
    ctx.enqueue(job_id)  # after commit: the worker must find the row
    return job_id


@router.get("/documents", response_model=DocumentList, responses={401: {"model": Error}})
def list_documents(
    request: Request,
    tenant: str = Depends(require_tenant),
    status: str | None = Query(None, max_length=16, pattern=r"^[a-z]+$"),
    name: str | None = Query(
        None, max_length=2048, pattern=r"^[^\x00]*$", description="An upload name or a source, exactly"
    ),
    paging: PageParams = Depends(page_params),
) -> dict:
    from sqlalchemy import select

    from pipeline.store.models import Document

    ctx = request.app.state.ctx
    stmt = select(Document).where(Document.tenant == tenant)
    if status:
        stmt = stmt.where(Document.status == status)
    if name:
        stmt = stmt.where(Document.source.in_([name, upload_source(ctx, tenant, name)]))
    with ctx.session() as session:
        return page(
            session, stmt, (Document.created_at, Document.id), paging, lambda d: document_out(d, ctx.uploads_prefix)
        )


@router.get(
    "/documents/{doc_id}", response_model=DocumentDetail, responses={401: {"model": Error}, 404: {"model": Error}}
)
def get_document(request: Request, doc_id: str, tenant: str = Depends(require_tenant)) -> dict:
    ctx = request.app.state.ctx
    with ctx.session() as session:
        doc = repo.get_document(session, tenant, doc_id) if ID.fullmatch(doc_id) else None
        if doc is None:
            raise ApiError(404, f"no document {doc_id} in this tenant")
        return document_out(doc, ctx.uploads_prefix, detail=True)


@router.patch(
    "/documents/{doc_id}",
    response_model=MetadataOut,
    responses={401: {"model": Error}, 404: {"model": Error}, 409: {"model": Error}, 422: {"model": Error}},
    summary="Change a document's metadata (JSON merge patch; null removes a key) without re-embedding it",
)
def patch_document(request: Request, doc_id: str, body: MetadataPatch, tenant: str = Depends(require_tenant)) -> dict:
    """Updates SQL and the document's chunks in every index version at once, so filters and facets see the
    change when the call returns. 409: a job is still indexing the document (retry when it ends)."""
    from pipeline.documents.delete import DocumentsBusy
    from pipeline.documents.metadata import DocumentNotFound, patch_metadata
    from pipeline.index import IndexLayout
    from pipeline.metadata import MetadataError

    ctx = request.app.state.ctx
    if not ID.fullmatch(doc_id):
        raise ApiError(404, f"no document {doc_id} in this tenant")
    try:
        with ctx.session() as session:
            report = patch_metadata(session, IndexLayout(ctx.es, ctx.settings.index_prefix), tenant, doc_id, body.meta)
    except MetadataError as exc:
        raise ApiError(422, f"meta: {exc}") from None
    except DocumentNotFound:
        raise ApiError(404, f"no document {doc_id} in this tenant") from None
    except DocumentsBusy as exc:
        raise ApiError(409, str(exc)) from None
    return {"id": doc_id, "meta": report.metadata, "indices": report.indices, "chunks": report.chunks}


def upload_source(ctx, tenant: str, name: str) -> str:
    """The source (stored path) an upload of `name` gets in `tenant`."""
    return f"{ctx.uploads_dir}/{tenant}/{name}"


_DELETE_ERRORS = {401: {"model": Error}, 404: {"model": Error}, 422: {"model": InvalidRequest}}


@router.delete(
    "/documents/{doc_id}",
    status_code=202,
    response_model=DeleteAccepted,
    responses=_DELETE_ERRORS,
    summary="Delete a document (its chunks in every index version, its rows, its dedup state) in a delete job",
)
def delete_document(
    request: Request,
    doc_id: str,
    tenant: str = Depends(require_tenant),
    cascade_duplicates: bool = Query(False, description="Delete its duplicates too"),
) -> dict:
    """202: a delete job was queued; follow it at /v1/jobs/{job_id} (kind `delete`, counters `done` and `chunks`:
    documents and chunks deleted). 404: no such document in this tenant."""
    ctx = request.app.state.ctx
    with ctx.session() as session:
        if not ID.fullmatch(doc_id) or repo.get_document(session, tenant, doc_id) is None:
            raise ApiError(404, f"no document {doc_id} in this tenant")
    return _delete_job(ctx, tenant, {"ids": [doc_id]}, cascade_duplicates, f"DELETE /v1/documents/{doc_id}")


@router.post(
    "/documents/delete",
    status_code=202,
    response_model=DeleteAccepted,
    responses=_DELETE_ERRORS,
    summary="Delete the documents of a source, of a job, or by id, in a delete job",
)
def delete_documents(request: Request, body: DeleteIn, tenant: str = Depends(require_tenant)) -> dict:
    """202: a delete job was queued; follow it at /v1/jobs/{job_id}. 404: the selection matches none of this
    tenant's documents (an unknown job or id included). 422: not exactly one of source, job and ids."""
    from pipeline.documents.jobs import count_documents, select_documents, selection

    ctx = request.app.state.ctx
    if body.source is not None:
        chosen = selection(sources=[body.source, upload_source(ctx, tenant, body.source)])
        what = f"source {body.source}"
    elif body.job is not None:
        chosen, what = selection(job=body.job), f"job {body.job}"
    else:
        chosen, what = selection(ids=body.ids), "the ids"
    with ctx.session() as session:
        if body.job is not None and _job_of(session, tenant, body.job) is None:
            raise ApiError(404, f"no job {body.job} in this tenant")
        if body.ids is not None:
            unknown = sorted(set(body.ids) - set(select_documents(session, tenant, chosen)))
            if unknown:
                raise ApiError(404, f"no document {unknown[0]} in this tenant ({len(unknown)} unknown id(s))")
        elif not count_documents(session, tenant, chosen):
            raise ApiError(404, f"no document of {what} in this tenant")
    return _delete_job(ctx, tenant, chosen, body.cascade_duplicates, f"POST /v1/documents/delete ({what})")


def _job_of(session, tenant: str, job_id: str):
    job = repo.get_job(session, job_id)
    return job if job is not None and job.tenant == tenant else None


def _delete_job(ctx, tenant: str, chosen: dict, cascade: bool, reason: str) -> dict:
    from pipeline.documents.jobs import create_delete_job

    with ctx.session() as session:
        job = create_delete_job(session, tenant, chosen, cascade_duplicates=cascade, reason=reason)
        job_id, documents = job.id, job.total
    ctx.send_task(client.DELETE_DOCUMENTS, [job_id])  # after commit: the worker must find the row
    return {"job_id": job_id, "state": "queued", "documents": documents}
