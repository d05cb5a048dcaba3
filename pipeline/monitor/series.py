"""Per-entity time series: items, mean sentiment and negative share per hour or per day (SQL)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from pipeline.monitor.scoring import epoch_hour
from pipeline.store.models_monitor import EntityMention, WatchEntity

BUCKET_HOURS = {"hour": 1, "day": 24}


def hourly_counts(session: Session, entity_id: int, first_hour: int, last_hour: int) -> dict[int, tuple[int, int]]:
    """{epoch hour: (items, negative items)} for the hours in [first_hour, last_hour]."""
    negative = func.sum(case((EntityMention.label == "negative", 1), else_=0))
    rows = session.execute(
        select(EntityMention.hour, func.count(), negative)
        .where(EntityMention.entity_id == entity_id, EntityMention.hour >= first_hour, EntityMention.hour <= last_hour)
        .group_by(EntityMention.hour)
    ).all()
    return {hour: (int(items), int(neg or 0)) for hour, items, neg in rows}


def series(
    session: Session, entity: WatchEntity, by: str = "day", since: datetime | None = None, until: datetime | None = None
) -> list[dict]:
    """Buckets in time order; a bucket starts at a whole UTC hour or midnight UTC. Empty ones are left out."""
    if by not in BUCKET_HOURS:
        raise ValueError(f"series by {by!r}: use hour or day")
    size = BUCKET_HOURS[by]
    # hours are whole numbers since the epoch, so // is the same integer division in every database
    bucket = (EntityMention.hour // size).label("bucket")
    negative = func.sum(case((EntityMention.label == "negative", 1), else_=0))
    q = (
        select(bucket, func.count(), func.avg(EntityMention.score), negative)
        .where(EntityMention.entity_id == entity.id)
        .group_by(bucket)
        .order_by(bucket)
    )
    if since is not None:
        q = q.where(EntityMention.hour >= epoch_hour(since))
    if until is not None:
        q = q.where(EntityMention.hour < epoch_hour(until))
    out = []
    for b, items, mean, neg in session.execute(q).all():
        start = datetime.fromtimestamp(int(b) * size * 3600, tz=UTC)
        out.append(
            {
                "start": start.isoformat(),
                "items": int(items),
                "mean_sentiment": round(float(mean or 0), 4),
                "negative_share": round(int(neg or 0) / int(items), 4),
            }
        )
    return out
