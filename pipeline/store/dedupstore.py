"""SQL-backed DedupStore: exact hashes and LSH buckets persist per tenant across jobs."""

from __future__ import annotations

import numpy as np
from sqlalchemy import ColumnElement, and_, or_, select, tuple_
from sqlalchemy.orm import Session

from pipeline.store.models import Document, DocumentStatus, Job, JobState, LshBucket
from pipeline.store.repo import drop_lsh, replace_lsh


def canonical() -> ColumnElement[bool]:
    """A document others may duplicate: one indexed, or one chunked for a job still open (it is being indexed).
    One that a failed or cancelled job left chunked is never indexed: a copy of it must not hide behind it."""
    open_job = select(Job.id).where(Job.id == Document.last_job_id, Job.state.not_in(JobState.FINAL)).exists()
    return or_(Document.status == DocumentStatus.INDEXED, and_(Document.status == DocumentStatus.CHUNKED, open_job))


def is_canonical(session: Session, doc_id: str) -> bool:
    return session.scalar(select(Document.id).where(Document.id == doc_id, canonical())) is not None


def pack_signature(signature: list[int]) -> bytes:
    return np.asarray(signature, dtype=np.uint64).tobytes()


def unpack_signature(blob: bytes) -> list[int]:
    return np.frombuffer(blob, dtype=np.uint64).tolist()


class SqlDedupStore:
    """A DedupStore over the documents table (rows written by ingest) and the lsh_buckets table."""

    def __init__(self, session: Session):
        self.session = session

    def find_exact(self, tenant: str, content_hash: str, exclude_doc: str) -> tuple[str, str] | None:
        row = self.session.execute(
            select(Document.id, Document.cluster_id)
            .where(
                Document.tenant == tenant,
                Document.content_hash == content_hash,
                canonical(),
                Document.id != exclude_doc,
            )
            .order_by(Document.created_at)
            .limit(1)
        ).first()
        return (row[0], row[1]) if row else None

    def candidates(
        self, tenant: str, bands: list[tuple[int, str]], exclude_doc: str
    ) -> list[tuple[str, str, list[int]]]:
        if not bands:
            return []
        # The band and bucket IN lists let SQLite walk the bucket key (tenant, band, bucket) instead of
        # scanning the tenant's buckets; the pair IN keeps the match exact.
        rows = self.session.execute(
            select(Document.id, Document.cluster_id, Document.signature)
            .join(LshBucket, LshBucket.document_id == Document.id)
            .where(
                LshBucket.tenant == tenant,
                LshBucket.band.in_(sorted({b for b, _ in bands})),
                LshBucket.bucket.in_(sorted({k for _, k in bands})),
                tuple_(LshBucket.band, LshBucket.bucket).in_(bands),
                LshBucket.document_id != exclude_doc,
                canonical(),
            )
        ).all()
        found = {r[0]: (r[0], r[1], unpack_signature(r[2])) for r in rows if r[2]}  # one per shared band
        return list(found.values())

    def add(self, tenant: str, doc_id: str, bands: list[tuple[int, str]]) -> None:
        replace_lsh(self.session, tenant, doc_id, bands)

    def remove(self, tenant: str, doc_id: str) -> None:
        drop_lsh(self.session, doc_id)
