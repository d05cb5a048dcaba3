"""Recent sentiment per watched entity, with the alerts raised over the same span: what the watch charts draw."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from pipeline.monitor import watchlist
from pipeline.monitor.alerts import list_alerts
from pipeline.monitor.series import series
from pipeline.store.models_monitor import Alert

# fewer daily buckets than this draw no shape, so the trend falls back to hourly buckets
MIN_DAILY_BUCKETS = 3
# alerts looked at per entity: more than any chart can mark legibly
ALERTS_PER_ENTITY = 200


@dataclass(frozen=True)
class EntityTrend:
    ticker: str
    names: list[str]
    buckets: list[dict]  # series rows: start, items, mean_sentiment, negative_share
    alerts: list[Alert]  # newest first, each ending at or after the trend's start


def recent_trends(session: Session, tenant: str, since: datetime) -> list[EntityTrend]:
    """Each watched entity of `tenant` from `since` on: daily buckets, hourly when the data spans too few days."""
    trends = []
    for entity in watchlist.entities(session, tenant):
        buckets = series(session, entity, "day", since)
        if len(buckets) < MIN_DAILY_BUCKETS:
            buckets = series(session, entity, "hour", since)
        alerts = [
            a for a in list_alerts(session, tenant, entity.ticker, ALERTS_PER_ENTITY) if _aware(a.window_end) >= since
        ]
        trends.append(EntityTrend(entity.ticker, list(entity.names or []), buckets, alerts))
    return trends


def _aware(t: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC
    return t if t.tzinfo else t.replace(tzinfo=UTC)
