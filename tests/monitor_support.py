"""Shared pieces of the monitor tests: feed items as stored documents that say "indexed"."""

from __future__ import annotations

import hashlib
from datetime import datetime

from pipeline.store.models import Document
from pipeline.types import document_id


def news_item(tenant: str, link: str, text: str, published: datetime) -> Document:
    """A feed item as the ingest leaves it (indexed, its own cluster), with no chunks anywhere."""
    doc_id = document_id(tenant, link)
    return Document(
        id=doc_id,
        tenant=tenant,
        source=link,
        content_type="json",
        title=None,
        published=published,
        text=text,
        meta={},
        content_hash=hashlib.sha256(f"{link}{text}".encode()).hexdigest(),
        status="indexed",
        cluster_id=doc_id,
        chunk_count=1,
        indexed_hash=None,
        created_at=published,
    )
