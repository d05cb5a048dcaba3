"""Changing a document's metadata without re-embedding: SQL first in the caller's transaction, then the
document's chunks in every index version of the prefix (live, building, retired), by update_by_query.

The script assigns whole fields (meta, meta_num, meta_date) computed here from the merged metadata, so
running it twice leaves the same chunks, and no key survives that the merge removed (a partial-update
`doc` would merge objects and keep deleted keys). The document's row is locked first, and a document that
an open job has still to index is refused (retryably), as deletion does: that job would write its chunks
with the metadata it read before the change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from elasticsearch import NotFoundError
from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.documents.delete import DocumentsBusy, physical_indices
from pipeline.errors import BulkIndexError, PermanentError
from pipeline.index.aliases import IndexLayout
from pipeline.index.guard import guard
from pipeline.metadata import index_fields, merge_patch
from pipeline.store.models import Document, Job, JobDocument, JobState, Outcome

_SCRIPT = (
    "ctx._source.meta = params.meta; ctx._source.meta_num = params.meta_num; ctx._source.meta_date = params.meta_date"
)
_TRIES = 3  # a chunk rewritten between the query and its update is a version conflict: run the update again


class DocumentNotFound(PermanentError, LookupError):
    """No document of that id in the tenant."""


@dataclass
class MetaReport:
    doc_id: str
    metadata: dict
    indices: list[str] = field(default_factory=list)  # physical indices whose chunks were updated
    chunks: int = 0  # chunks updated, every version together


def patch_metadata(session: Session, layout: IndexLayout, tenant: str, doc_id: str, patch: Mapping) -> MetaReport:
    """Apply a JSON merge patch (null deletes a key) to the document's metadata, in SQL and in every index
    version; the caller commits. MetadataError for a patch over the limits, DocumentNotFound, DocumentsBusy."""
    doc = session.scalar(select(Document).where(Document.tenant == tenant, Document.id == doc_id).with_for_update())
    if doc is None:
        raise DocumentNotFound(f"no document {doc_id} in tenant {tenant}")
    _refuse_busy(session, doc_id)
    merged = merge_patch(doc.meta, patch)
    if merged != (doc.meta or {}):
        doc.meta = merged
        session.flush()
    # pushed even when SQL had it already: a retry after a failed push must reach the indices
    indices, chunks = push_metadata(session, layout, tenant, doc_id, merged)
    return MetaReport(doc_id, merged, indices, chunks)


def sync_metadata(
    session: Session, layout: IndexLayout, tenant: str | None = None, progress: Callable[[], None] | None = None
) -> MetaReport:
    """Push every document's SQL metadata onto its chunks (an index written before metadata was indexed, or
    an update interrupted): one update per document and index version. Adds the mapping's metadata fields
    to versions created before them (additive, so put_mapping accepts it)."""
    from pipeline.index.mapping import META_PROPERTIES, META_TEMPLATES

    for index in physical_indices(session, layout):
        try:
            with guard(f"add metadata fields to {index}"):
                layout.es.indices.put_mapping(index=index, dynamic_templates=META_TEMPLATES, properties=META_PROPERTIES)
        except NotFoundError:
            continue
    q = select(Document.tenant, Document.id, Document.meta).order_by(Document.id)
    if tenant is not None:
        q = q.where(Document.tenant == tenant)
    report = MetaReport("*", {})
    for doc_tenant, doc_id, meta in session.execute(q).all():
        indices, chunks = push_metadata(session, layout, doc_tenant, doc_id, meta or {})
        report.indices = sorted(set(report.indices) | set(indices))
        report.chunks += chunks
        if progress is not None:
            progress()
    return report


def push_metadata(
    session: Session, layout: IndexLayout, tenant: str, doc_id: str, meta: Mapping
) -> tuple[list[str], int]:
    """Set the document's chunks' metadata fields in every index version; (indices updated, chunks updated)."""
    es, params, done, updated = layout.es, index_fields(meta), [], 0
    query = {"bool": {"filter": [{"term": {"tenant": tenant}}, {"term": {"doc_id": doc_id}}]}}
    for index in physical_indices(session, layout):
        try:
            for _ in range(_TRIES):
                with guard(f"update metadata of {doc_id} in {index}"):
                    # update_by_query sees refreshed chunks only
                    es.indices.refresh(index=index)
                    resp = es.update_by_query(
                        index=index,
                        query=query,
                        script={"source": _SCRIPT, "lang": "painless", "params": params},
                        refresh=True,
                        conflicts="proceed",
                    )
                if resp.get("failures"):
                    failures = list(resp["failures"])
                    raise BulkIndexError(f"updating metadata of {doc_id} in {index} partly failed", failures)
                if not resp.get("version_conflicts"):
                    break
            else:
                raise BulkIndexError(f"chunks of {doc_id} in {index} kept changing while their metadata was updated")
        except NotFoundError:
            continue  # dropped meanwhile (a discarded build): nothing to update
        updated += int(resp.get("updated", 0)) + int(resp.get("noops", 0))
        done.append(index)
    return done, updated


def _refuse_busy(session: Session, doc_id: str) -> None:
    job = session.scalar(
        select(JobDocument.job_id)
        .join(Job, Job.id == JobDocument.job_id)
        .where(
            JobDocument.document_id == doc_id,
            JobDocument.outcome == Outcome.PENDING,
            Job.state.in_((JobState.QUEUED, JobState.RUNNING)),
        )
        .limit(1)
    )
    if job is not None:
        raise DocumentsBusy(
            f"document {doc_id} is still being indexed by job {job}: change its metadata once the job ends"
        )
