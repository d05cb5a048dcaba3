"""Recent sentiment per watched entity or topic, with the alerts raised over the same span: what the charts draw."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from pipeline.monitor import topics, watchlist
from pipeline.monitor.alerts import list_alerts
from pipeline.monitor.series import series
from pipeline.store.models_monitor import Alert, WatchEntity
from pipeline.store.models_topics import Topic

# fewer daily buckets than this draw no shape, so the trend falls back to hourly buckets
MIN_DAILY_BUCKETS = 3
# alerts looked at per entity: more than any chart can mark legibly
ALERTS_PER_ENTITY = 200


@dataclass(frozen=True)
class Trend:
    name: str  # the ticker, or the topic
    names: list[str]  # an entity's names, a topic's terms
    buckets: list[dict]  # series rows: start, items, mean_sentiment, negative_share
    alerts: list[Alert]  # newest first, each ending at or after the trend's start


def recent_trends(session: Session, tenant: str, since: datetime) -> list[Trend]:
    """Each watched entity of `tenant` from `since` on: daily buckets, hourly when the data spans too few days."""
    return [trend_of(session, entity, since) for entity in watchlist.entities(session, tenant)]


def recent_topic_trends(session: Session, tenant: str, since: datetime) -> list[Trend]:
    """Each topic of `tenant` from `since` on, as for entities."""
    return [trend_of(session, topic, since) for topic in topics.topics(session, tenant)]


def trend_of(session: Session, subject: WatchEntity | Topic, since: datetime) -> Trend:
    buckets = series(session, subject, "day", since)
    if len(buckets) < MIN_DAILY_BUCKETS:
        buckets = series(session, subject, "hour", since)
    if isinstance(subject, Topic):
        name, names = subject.name, list(subject.terms or [])
        raised = list_alerts(session, subject.tenant, None, ALERTS_PER_ENTITY, topic=subject.name)
    else:
        name, names = subject.ticker, list(subject.names or [])
        raised = list_alerts(session, subject.tenant, subject.ticker, ALERTS_PER_ENTITY)
    return Trend(name, names, buckets, [a for a in raised if _aware(a.window_end) >= since])


def _aware(t: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC
    return t if t.tzinfo else t.replace(tzinfo=UTC)
