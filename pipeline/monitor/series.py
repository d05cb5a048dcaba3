"""Time series of a watched entity or a topic: items, mean sentiment and negative share per hour or day (SQL).

Entity mentions and document topics are both rows with an epoch hour, a sentiment label and a score; the
queries run on either.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from pipeline.monitor.scoring import epoch_hour
from pipeline.store.models_monitor import EntityMention, WatchEntity
from pipeline.store.models_topics import DocumentTopic, Topic

BUCKET_HOURS = {"hour": 1, "day": 24}


def _rows_of(subject: WatchEntity | Topic) -> tuple[Any, Any]:
    """The table holding a subject's items and the condition that picks them."""
    if isinstance(subject, Topic):
        return DocumentTopic, DocumentTopic.topic_id == subject.id
    return EntityMention, EntityMention.entity_id == subject.id


def hourly_counts(
    session: Session, subject: WatchEntity | Topic, first_hour: int, last_hour: int
) -> dict[int, tuple[int, int]]:
    """{epoch hour: (items, negative items)} for the hours in [first_hour, last_hour]."""
    table, picked = _rows_of(subject)
    negative = func.sum(case((table.label == "negative", 1), else_=0))
    rows = session.execute(
        select(table.hour, func.count(), negative)
        .where(picked, table.hour >= first_hour, table.hour <= last_hour)
        .group_by(table.hour)
    ).all()
    return {hour: (int(items), int(neg or 0)) for hour, items, neg in rows}


def series(
    session: Session,
    subject: WatchEntity | Topic,
    by: str = "day",
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict]:
    """Buckets in time order; a bucket starts at a whole UTC hour or midnight UTC. Empty ones are left out."""
    if by not in BUCKET_HOURS:
        raise ValueError(f"series by {by!r}: use hour or day")
    size = BUCKET_HOURS[by]
    table, picked = _rows_of(subject)
    # hours are whole numbers since the epoch, so // is the same integer division in every database
    bucket = (table.hour // size).label("bucket")
    negative = func.sum(case((table.label == "negative", 1), else_=0))
    q = select(bucket, func.count(), func.avg(table.score), negative).where(picked).group_by(bucket).order_by(bucket)
    if since is not None:
        q = q.where(table.hour >= epoch_hour(since))
    if until is not None:
        q = q.where(table.hour < epoch_hour(until))
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
