"""A source's documents: those a feed's items left behind when they vanished from it (a feed with `prune`), and
all of a source's documents when it is removed with them. Both delete through docpipe's one delete path.

A feed's documents are those whose metadata names the feed (every item record carries its `source_id`, see
poll.py); a folder's are those read from its files (sync.py). A poll that finds no items prunes nothing: a feed
that breaks down to an empty list must not empty the index, as an unmounted folder must not.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.documents.delete import DeleteReport, DocumentsBusy, delete_documents
from pipeline.documents.jobs import create_delete_job, selection
from pipeline.index.aliases import IndexLayout
from pipeline.sources.errors import SourceError
from pipeline.sources.sync import documents_of_deleted_files
from pipeline.store.models import Document, Job
from pipeline.store.models_sources import Source, SourceFile, SourceKind
from pipeline.types import document_id


def feed_documents(session: Session, tenant: str, source_id: str) -> list[str]:
    """The tenant's documents that came from the feed `source_id`, in id order."""
    return list(
        session.scalars(
            select(Document.id)
            .where(Document.tenant == tenant, Document.meta["source_id"].as_string() == source_id)
            .order_by(Document.id)
        )
    )


def vanished_items(session: Session, source: Source, identities: list[str]) -> list[str]:
    """The feed's documents whose item is not among `identities` (the sources of the items it lists now)."""
    if not identities:
        return []
    listed = {document_id(source.tenant, identity.strip()) for identity in identities}
    return [d for d in feed_documents(session, source.tenant, source.id) if d not in listed]


def prune_feed(session: Session, layout: IndexLayout, source: Source, identities: list[str]) -> DeleteReport:
    """Delete the documents of items that left the feed; the caller commits. A document that an open job still
    indexes makes the run fail, to be retried at the next one."""
    try:
        return delete_documents(session, layout, source.tenant, vanished_items(session, source, identities))
    except DocumentsBusy as exc:
        raise SourceError(f"cannot prune the feed yet: {exc}") from exc


def source_documents(session: Session, source: Source) -> list[str]:
    """Every document that came from the source."""
    if source.kind == SourceKind.FEED:
        return feed_documents(session, source.tenant, source.id)
    paths = list(session.scalars(select(SourceFile.path).where(SourceFile.source_id == source.id)))
    return documents_of_deleted_files(session, source.tenant, paths, set())


def remove_source(session: Session, source: Source, with_documents: bool) -> Job | None:
    """Remove the source; with its documents, a queued delete job over them (None when it has none). The caller
    commits, then sends the job's task."""
    job = None
    if with_documents:
        ids = source_documents(session, source)
        if ids:
            job = create_delete_job(
                session, source.tenant, selection(ids=ids), reason=f"{source.kind} {source.location} removed"
            )
    session.delete(source)
    session.flush()
    return job
