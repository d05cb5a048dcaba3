"""Watchlist matching through extracted entities, and suggestions of what to watch next.

An organisation the NER model found ("Apple Inc.", "the Acme Corporation") matches a watched entity when
its folded name equals one of the entity's folded names or its ticker: case, accents, punctuation, a
leading "the" and trailing legal forms ("Inc", "Corp", "plc", "Holdings") do not count. A TICKER entity
matches its ticker. Organisations found often in a tenant's documents that match nothing watched are
offered as suggestions.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipeline.store.models_entities import EntityRow, fold_name
from pipeline.store.models_monitor import WatchEntity

ORG_TYPES = ("ORG", "ORGANIZATION", "ORGANISATION", "COMPANY", "CORP")
TICKER_TYPES = ("TICKER",)


def watched_keys(session: Session, tenant: str) -> tuple[dict[str, int], dict[str, int]]:
    """(folded name -> watched entity id, ticker -> watched entity id) of the tenant's watchlist."""
    names: dict[str, int] = {}
    tickers: dict[str, int] = {}
    for e in session.scalars(select(WatchEntity).where(WatchEntity.tenant == tenant)):
        tickers[e.ticker.upper()] = e.id
        for name in [*(e.names or []), e.ticker]:
            key = fold_name(name)
            if key:
                names.setdefault(key, e.id)
    return names, tickers


def org_mentions(session: Session, tenant: str, doc_ids: list[str]) -> dict[str, dict[int, str]]:
    """document id -> {watched entity id: the entity text that matched it}, from the extracted entities."""
    names, tickers = watched_keys(session, tenant)
    if not names or not doc_ids:
        return {}
    found: dict[str, dict[int, str]] = {}
    rows = session.execute(
        select(EntityRow.document_id, EntityRow.type, EntityRow.text, EntityRow.norm)
        .where(EntityRow.document_id.in_(doc_ids), EntityRow.type.in_(ORG_TYPES + TICKER_TYPES))
        .order_by(EntityRow.document_id, EntityRow.char_start)
    )
    for doc_id, kind, text, norm in rows:
        entity = tickers.get(text.strip().lstrip("$").upper()) if kind in TICKER_TYPES else names.get(norm)
        if entity is not None:
            found.setdefault(doc_id, {}).setdefault(entity, text)
    return found


def suggestions(session: Session, tenant: str, limit: int = 20, min_documents: int = 2, offset: int = 0) -> list[dict]:
    """Organisations in the most documents of the tenant that no watched entity matches, most frequent first:
    {name (its most frequent spelling), norm, documents, mentions}."""
    names, tickers = watched_keys(session, tenant)
    watched = set(names) | {t.lower() for t in tickers}
    documents = func.count(func.distinct(EntityRow.document_id))
    q = (
        select(EntityRow.norm, documents, func.count())
        .where(EntityRow.tenant == tenant, EntityRow.type.in_(ORG_TYPES), EntityRow.norm != "")
        .group_by(EntityRow.norm)
        .having(documents >= min_documents)
        .order_by(documents.desc(), func.count().desc(), EntityRow.norm)
    )
    out, skipped = [], 0
    for norm, docs, mentions in session.execute(q):
        if norm in watched:
            continue
        if skipped < offset:
            skipped += 1
            continue
        out.append({"norm": norm, "documents": int(docs), "mentions": int(mentions)})
        if len(out) == limit:
            break
    for item in out:
        item["name"] = session.execute(
            select(EntityRow.text)
            .where(EntityRow.tenant == tenant, EntityRow.norm == item["norm"], EntityRow.type.in_(ORG_TYPES))
            .group_by(EntityRow.text)
            .order_by(func.count().desc(), EntityRow.text)
            .limit(1)
        ).scalar_one()
    return [{"name": i["name"], "norm": i["norm"], "documents": i["documents"], "mentions": i["mentions"]} for i in out]
