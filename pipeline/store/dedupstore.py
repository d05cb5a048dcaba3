"""SQL-backed DedupStore: exact hashes and LSH buckets persist per tenant across jobs."""
from __future__ import annotations

import numpy as np
from sqlalchemy import delete, select, tuple_
from sqlalchemy.orm import Session

from pipeline.store.models import Document, LshBucket
from pipeline.store.repo import replace_lsh

CANONICAL = ("chunked", "indexed")


def pack_signature(signature: list[int]) -> bytes:
    return np.asarray(signature, dtype=np.uint64).tobytes()


def unpack_signature(blob: bytes) -> list[int]:
    return np.frombuffer(blob, dtype=np.uint64).tolist()


class SqlDedupStore:
    def __init__(self, session: Session):
        self.session = session

    def find_exact(self, tenant: str, content_hash: str, exclude_doc: str) -> tuple[str, str] | None:
        row = self.session.execute(
            select(Document.id, Document.cluster_id).where(
                Document.tenant == tenant, Document.content_hash == content_hash,
                Document.status.in_(CANONICAL), Document.id != exclude_doc).order_by(Document.created_at)
            .limit(1)).first()
        return (row[0], row[1]) if row else None

    def candidates(self, tenant: str, bands: list[tuple[int, str]], exclude_doc: str):
        if not bands:
            return []
        ids = select(LshBucket.document_id).where(
            LshBucket.tenant == tenant, tuple_(LshBucket.band, LshBucket.bucket).in_(bands),
            LshBucket.document_id != exclude_doc).distinct()
        rows = self.session.execute(
            select(Document.id, Document.cluster_id, Document.signature)
            .where(Document.id.in_(ids), Document.status.in_(CANONICAL))).all()
        return [(r[0], r[1], unpack_signature(r[2])) for r in rows if r[2]]

    def add(self, tenant: str, doc_id: str, bands: list[tuple[int, str]]) -> None:
        replace_lsh(self.session, tenant, doc_id, bands)
        self.session.flush()

    def remove(self, tenant: str, doc_id: str) -> None:
        self.session.execute(delete(LshBucket).where(LshBucket.document_id == doc_id))
