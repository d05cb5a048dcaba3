"""Sentiment and entity tags for documents, written so that doing it twice changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pipeline.monitor.entities import EntityMatcher
from pipeline.monitor.org_match import org_mentions
from pipeline.monitor.sentiment import Scorer
from pipeline.store.models import Document, JobDocument, Outcome, utcnow
from pipeline.store.models_monitor import DocumentSentiment, EntityMention


def item_time(doc: Document) -> datetime:
    """When the item happened: its published time, else when docpipe first saw it (UTC)."""
    at = doc.published or doc.created_at
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def epoch_hour(at: datetime) -> int:
    return int(at.timestamp() // 3600)


def item_text(doc: Document) -> str:
    return f"{doc.title}\n\n{doc.text}" if doc.title and not doc.text.startswith(doc.title) else doc.text


def job_documents(session: Session, job_id: str, after: str = "", limit: int = 64) -> list[Document]:
    """A job's indexed documents in id order (duplicates are not scored: one story counts once)."""
    return list(
        session.scalars(
            select(Document)
            .join(JobDocument, JobDocument.document_id == Document.id)
            .where(JobDocument.job_id == job_id, JobDocument.outcome == Outcome.INDEXED, Document.id > after)
            .order_by(Document.id)
            .limit(limit)
        )
    )


def score_documents(session: Session, docs: list[Document], scorer: Scorer, matcher: EntityMatcher) -> set[int]:
    """Score what is new or changed (text or scorer), re-tag all; return the entity ids mentioned."""
    if not docs:
        return set()
    ids = [d.id for d in docs]
    known = {
        s.document_id: s
        for s in session.scalars(select(DocumentSentiment).where(DocumentSentiment.document_id.in_(ids)))
    }
    todo = [
        d
        for d in docs
        if d.id not in known or known[d.id].content_hash != d.content_hash or known[d.id].scorer != scorer.name
    ]
    for doc, result in zip(todo, scorer.score([item_text(d) for d in todo])):
        row = known.get(doc.id)
        if row is None:
            row = known[doc.id] = DocumentSentiment(document_id=doc.id, tenant=doc.tenant)
            session.add(row)
        row.label, row.score, row.confidence = result.label, result.score, result.confidence
        row.scorer, row.content_hash, row.scored_at = scorer.name, doc.content_hash, utcnow()
    # tags are recomputed every time: the watchlist may have changed since the last run
    session.execute(delete(EntityMention).where(EntityMention.document_id.in_(ids)))
    touched: set[int] = set()
    orgs = org_mentions(session, docs[0].tenant, ids) if matcher else {}
    for doc in docs:
        found = matcher.find(item_text(doc)) if matcher else {}
        found = {**orgs.get(doc.id, {}), **found}  # beyond exact names: organisations the NER model found
        at, sentiment = item_time(doc), known[doc.id]
        for entity_id, matched in found.items():
            session.add(
                EntityMention(
                    entity_id=entity_id,
                    document_id=doc.id,
                    tenant=doc.tenant,
                    at=at,
                    hour=epoch_hour(at),
                    label=sentiment.label,
                    score=sentiment.score,
                    matched=matched[:128],
                )
            )
            touched.add(entity_id)
    session.flush()
    return touched
