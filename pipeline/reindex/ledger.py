"""The SQL side of a build: which documents a version under construction still has to write or drop.

The set is an anti-join of the documents table against the ledger, so it is exact however the
documents changed meanwhile (ingest into the live version, edits, duplicates, deletions) and
whichever step died half-way: nothing has to be told that a document changed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session, aliased

from pipeline.store.models import Document, DocumentStatus
from pipeline.store.models_monitor import ReindexLedger

INDEXED = DocumentStatus.INDEXED
# the text an indexed document's chunks come from; a row written without indexed_hash means its content
HELD_HASH = func.coalesce(Document.indexed_hash, Document.content_hash)


def held_hash(doc: Document) -> str:
    return doc.indexed_hash or doc.content_hash


def to_write(session: Session, index_name: str, limit: int, after: str = "") -> list[Document]:
    """Indexed documents that the version lacks, or holds with another content hash, in id order
    from `after` (a build's first pass walks the table once instead of rescanning it every step)."""
    row = aliased(ReindexLedger)
    return list(
        session.scalars(
            select(Document)
            .outerjoin(row, and_(row.index_name == index_name, row.document_id == Document.id))
            .where(
                Document.status == INDEXED,
                Document.id > after,
                or_(row.document_id.is_(None), row.content_hash != HELD_HASH),
            )
            .order_by(Document.id)
            .limit(limit)
        )
    )


def to_drop(session: Session, index_name: str, limit: int) -> list[str]:
    """Documents the version holds that are no longer indexed (duplicate, deleted, failed, gone)."""
    return list(
        session.scalars(
            select(ReindexLedger.document_id)
            .outerjoin(Document, Document.id == ReindexLedger.document_id)
            .where(ReindexLedger.index_name == index_name, or_(Document.id.is_(None), Document.status != INDEXED))
            .order_by(ReindexLedger.document_id)
            .limit(limit)
        )
    )


def record(session: Session, index_name: str, rows: list[tuple[str, str, list | None]]) -> None:
    """Upsert (document id, content hash, spans): a redelivered step may record a document twice."""
    if not rows:
        return
    values: list[dict[str, Any]] = [
        {"index_name": index_name, "document_id": d, "content_hash": h, "spans": s} for d, h, s in rows
    ]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]  # PostgreSQL's upsert API
    else:  # pragma: no cover - docpipe runs on SQLite and PostgreSQL
        forget(session, index_name, [v["document_id"] for v in values])
        session.add_all(ReindexLedger(**v) for v in values)
        session.flush()
        return
    stmt = insert(ReindexLedger)
    stmt = stmt.on_conflict_do_update(
        index_elements=["index_name", "document_id"],
        set_={"content_hash": stmt.excluded.content_hash, "spans": stmt.excluded.spans},
    )
    session.execute(stmt, values)


def forget(session: Session, index_name: str, doc_ids: list[str]) -> None:
    if doc_ids:
        session.execute(
            delete(ReindexLedger).where(ReindexLedger.index_name == index_name, ReindexLedger.document_id.in_(doc_ids))
        )


def clear(session: Session, index_name: str) -> None:
    session.execute(delete(ReindexLedger).where(ReindexLedger.index_name == index_name))


def held(session: Session, index_name: str) -> int:
    return (
        session.scalar(select(func.count()).select_from(ReindexLedger).where(ReindexLedger.index_name == index_name))
        or 0
    )


def indexed_total(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Document).where(Document.status == INDEXED)) or 0


def with_spans(session: Session, index_name: str, batch: int = 500):
    """(document id, spans) of a build that changed chunking, in batches, for the swap's chunk rows.

    Spans are JSON (a missing list may read back as JSON null), so callers test them, not SQL.
    """
    after = ""
    while True:
        rows = session.execute(
            select(ReindexLedger.document_id, ReindexLedger.spans)
            .where(ReindexLedger.index_name == index_name, ReindexLedger.document_id > after)
            .order_by(ReindexLedger.document_id)
            .limit(batch)
        ).all()
        if not rows:
            return
        yield rows
        after = rows[-1][0]
