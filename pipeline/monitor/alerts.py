"""Spike alerts: a watched entity's (or a topic's) negative share in a recent window against its own baseline.

The baseline is the entity's history before the window, cut into windows of the same length;
their negative shares give a mean and a standard deviation. A spike starts when the recent window
has at least `min_items` items and its share lies `sigma` deviations or more above the mean; one
alert is written then, and the episode stays open (no further alerts) until the share falls back
below half that distance or the window empties. Only rises count: a burst of good news is no alarm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.config import AlertSettings, defaults
from pipeline.monitor.scoring import epoch_hour
from pipeline.monitor.series import hourly_counts
from pipeline.store.models_monitor import Alert, WatchEntity
from pipeline.store.models_topics import Topic

_ALERT = defaults(AlertSettings)


@dataclass(frozen=True)
class SpikeRule:
    window_hours: int = _ALERT.window_hours
    baseline_hours: int = _ALERT.baseline_hours
    sigma: float = _ALERT.sigma
    min_items: int = _ALERT.min_items
    min_baseline_windows: int = _ALERT.min_baseline_windows
    std_floor: float = _ALERT.std_floor

    @classmethod
    def from_settings(cls, s) -> SpikeRule:
        return cls(
            s.alert.window_hours,
            s.alert.baseline_hours,
            s.alert.sigma,
            s.alert.min_items,
            s.alert.min_baseline_windows,
            s.alert.std_floor,
        )

    def __post_init__(self):
        if self.window_hours < 1 or self.baseline_hours < self.window_hours or self.sigma <= 0:
            raise ValueError("alert rule needs window >= 1 h, baseline >= window and sigma > 0")


@dataclass(frozen=True)
class Verdict:
    items: int
    negatives: int
    share: float
    mean: float
    std: float
    deviations: float
    baseline_windows: int
    starts: bool  # a spike: open an episode (and alert) unless one is open
    ends: bool  # back to normal: close an open episode


def judge(hourly: dict[int, tuple[int, int]], now_hour: int, rule: SpikeRule) -> Verdict:
    """Pure decision over {epoch hour: (items, negatives)}; the window ends with `now_hour` included."""

    def window(last: int) -> tuple[int, int]:
        cells = [hourly.get(h, (0, 0)) for h in range(last - rule.window_hours + 1, last + 1)]
        return sum(c[0] for c in cells), sum(c[1] for c in cells)

    items, negatives = window(now_hour)
    shares = []
    for k in range(1, rule.baseline_hours // rule.window_hours + 1):
        n, neg = window(now_hour - k * rule.window_hours)
        if n:
            shares.append(neg / n)
    share = negatives / items if items else 0.0
    mean = sum(shares) / len(shares) if shares else 0.0
    std = math.sqrt(sum((x - mean) ** 2 for x in shares) / len(shares)) if shares else 0.0
    deviations = (share - mean) / max(std, rule.std_floor)
    enough = len(shares) >= rule.min_baseline_windows
    starts = enough and items >= rule.min_items and deviations >= rule.sigma
    ends = items == 0 or deviations < rule.sigma / 2
    return Verdict(
        items,
        negatives,
        round(share, 4),
        round(mean, 4),
        round(std, 4),
        round(deviations, 3),
        len(shares),
        starts,
        ends,
    )


def evaluate(session: Session, tenant: str, entity_ids: set[int] | None, now: datetime, rule: SpikeRule) -> list[Alert]:
    """Judge the entities (all of the tenant's when None) at `now`; return the alerts opened.

    Entity rows are locked in id order while judged, so two tasks finishing at once cannot both
    open the same episode (and (entity, episode) is unique besides).
    """
    return _evaluate(session, WatchEntity, tenant, entity_ids, now, rule)


def evaluate_topics(
    session: Session, tenant: str, topic_ids: set[int] | None, now: datetime, rule: SpikeRule
) -> list[Alert]:
    """The same rule over the tenant's topics (all when None): a topic's negative share against its own past."""
    return _evaluate(session, Topic, tenant, topic_ids, now, rule)


def _evaluate(
    session: Session,
    kind: type[WatchEntity] | type[Topic],
    tenant: str,
    ids: set[int] | None,
    now: datetime,
    rule: SpikeRule,
) -> list[Alert]:
    q = select(kind).where(kind.tenant == tenant).order_by(kind.id).with_for_update()
    if ids is not None:
        if not ids:
            return []
        q = q.where(kind.id.in_(sorted(ids)))
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    now_hour = epoch_hour(now)
    first = now_hour - rule.window_hours - (rule.baseline_hours // rule.window_hours) * rule.window_hours + 1
    opened = []
    subjects = cast(list[WatchEntity | Topic], list(session.scalars(q).all()))
    for subject in subjects:
        verdict = judge(hourly_counts(session, subject, first, now_hour), now_hour, rule)
        if subject.open_alert_id is None and verdict.starts:
            subject.episodes += 1
            alert = Alert(
                tenant=tenant,
                episode=subject.episodes,
                window_start=_hour_start(now_hour - rule.window_hours + 1),
                window_end=_hour_start(now_hour + 1),
                items=verdict.items,
                negatives=verdict.negatives,
                negative_share=verdict.share,
                baseline_mean=verdict.mean,
                baseline_std=verdict.std,
                deviations=verdict.deviations,
                created_at=now,
            )
            if isinstance(subject, Topic):
                alert.topic_id, alert.topic = subject.id, subject.name
            else:
                alert.entity_id, alert.ticker = subject.id, subject.ticker
            session.add(alert)
            session.flush()
            subject.open_alert_id = alert.id
            opened.append(alert)
        elif subject.open_alert_id is not None and verdict.ends:
            ending = session.get(Alert, subject.open_alert_id)
            if ending is not None:
                ending.ended_at = now
            subject.open_alert_id = None
    session.flush()
    return opened


def list_alerts(
    session: Session, tenant: str | None = None, ticker: str | None = None, limit: int = 100, topic: str | None = None
) -> list[Alert]:
    q = select(Alert).order_by(Alert.created_at.desc(), Alert.id.desc()).limit(limit)
    if tenant:
        q = q.where(Alert.tenant == tenant)
    if ticker:
        q = q.where(Alert.ticker == ticker.strip().lstrip("$").upper())
    if topic:
        q = q.where(Alert.topic == topic)
    return list(session.scalars(q))


def alert_record(alert: Alert, names: list[str] | None = None) -> dict:
    """The JSON an alert is listed and POSTed as."""

    def iso(value):
        return value.isoformat() if value else None

    return {
        "id": alert.id,
        "kind": "topic_negative_share_spike" if alert.topic_id is not None else "negative_share_spike",
        "tenant": alert.tenant,
        "entity": alert.ticker,
        "topic": alert.topic,
        "names": names or [],
        "episode": alert.episode,
        "window_start": iso(alert.window_start),
        "window_end": iso(alert.window_end),
        "items": alert.items,
        "negatives": alert.negatives,
        "negative_share": alert.negative_share,
        "baseline_mean": alert.baseline_mean,
        "baseline_std": alert.baseline_std,
        "deviations": alert.deviations,
        "created_at": iso(alert.created_at),
        "ended_at": iso(alert.ended_at),
    }


def _hour_start(hour: int) -> datetime:
    return datetime.fromtimestamp(hour * 3600, tz=UTC)
