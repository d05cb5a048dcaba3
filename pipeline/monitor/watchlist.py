"""The watchlist: entities (ticker plus names) a tenant follows."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.monitor.entities import EntityMatcher, normalise_ticker
from pipeline.store.models_monitor import WatchEntity


def parse_names(names: str | list[str] | None) -> list[str]:
    items = names.split(",") if isinstance(names, str) else (names or [])
    seen, out = set(), []
    for name in (" ".join(n.split()) for n in items):
        if name and name.lower() not in seen:
            seen.add(name.lower())
            out.append(name)
    return out


def add(session: Session, tenant: str, ticker: str, names: str | list[str] | None = None) -> WatchEntity:
    """Watch an entity; adding a watched ticker again replaces its names. ValueError for a bad ticker."""
    ticker = normalise_ticker(ticker)
    row = get(session, tenant, ticker)
    if row is None:
        row = WatchEntity(tenant=tenant, ticker=ticker, names=parse_names(names), episodes=0)
        session.add(row)
    else:
        row.names = parse_names(names)
    session.flush()
    return row


def get(session: Session, tenant: str, ticker: str) -> WatchEntity | None:
    return session.scalar(
        select(WatchEntity).where(
            WatchEntity.tenant == tenant, WatchEntity.ticker == ticker.strip().lstrip("$").upper()
        )
    )


def entities(session: Session, tenant: str | None = None) -> list[WatchEntity]:
    q = select(WatchEntity).order_by(WatchEntity.tenant, WatchEntity.ticker)
    if tenant:
        q = q.where(WatchEntity.tenant == tenant)
    return list(session.scalars(q))


def remove(session: Session, tenant: str, ticker: str) -> bool:
    """Stop watching; the entity's mentions and alerts go with it."""
    row = get(session, tenant, ticker)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def matcher(session: Session, tenant: str) -> EntityMatcher:
    return EntityMatcher([(e.id, e.ticker, e.names) for e in entities(session, tenant)])
