"""A simulated week of feed items: one entity gets a negative burst and raises exactly one alert, whose
webhook gets it once (after a retry); a steady entity raises none. Real SQL (SQLite or PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from pipeline.monitor import LexiconScorer, alert_record, deliver, evaluate, score_documents, series, watchlist
from pipeline.store.db import session_scope
from pipeline.store.models import Document
from pipeline.store.models_monitor import Alert, DocumentSentiment, EntityMention
from tests.hooks import Hook
from tests.monitor_support import (
    BURST,
    RULE,
    WEEK_START,
    assert_burst_alert,
    assert_burst_days,
    deliver_to,
    simulate_week,
)

pytestmark = pytest.mark.integration

NEGATIVE = [
    "{n} shares plunged after losses and a lawsuit.",
    "{n} falls as weak demand hurts results.",
    "Analysts warn of a decline at {n} after the failed merger.",
]
OTHER = [
    "{n} will hold its annual meeting on Tuesday.",
    "{n} reported record profit and improved margins.",
    "{n} opened a new office in the city centre.",
]


def items_for(hour: int) -> list[tuple[str, str, bool]]:
    """(ticker, mention, negative?) for one hour: two items per entity, a few negative by a fixed pattern;
    during the burst Apple gets five items, four negative."""
    out = []
    for k in range(2):
        out.append(("MSFT", "Microsoft" if k else "$MSFT", (hour * 2 + k) % 9 == 0))
        out.append(("AAPL", "Apple" if k else "$AAPL", (hour * 2 + k) % 7 == 0))
    if hour in BURST:
        out = [o for o in out if o[0] != "AAPL"] + [("AAPL", "Apple Inc", i < 4) for i in range(5)]
    return out


def texts_for(hour: int) -> list[str]:
    return [
        (NEGATIVE if negative else OTHER)[(hour + i) % 3].format(n=mention)
        for i, (_, mention, negative) in enumerate(items_for(hour))
    ]


def test_a_week_with_one_negative_burst_raises_one_alert(own_sql_url):
    tenant = f"t-week-{uuid.uuid4().hex[:6]}"
    scorer = LexiconScorer(0.2)
    with session_scope(own_sql_url) as s:
        apple = watchlist.add(s, tenant, "AAPL", "Apple,Apple Inc").id
        watchlist.add(s, tenant, "MSFT", "Microsoft")
    with Hook([500]) as hook:

        def each_hour(s, docs, now) -> None:
            for alert in evaluate(s, tenant, None, now, RULE):
                deliver_to(s, alert, alert_record(alert, ["Apple", "Apple Inc"]), hook.url)

        simulate_week(own_sql_url, tenant, texts_for, scorer, each_hour)

        with session_scope(own_sql_url) as s:
            alerts = list(s.scalars(select(Alert).where(Alert.tenant == tenant)))
            assert [(a.ticker, a.episode) for a in alerts] == [("AAPL", 1)]
            alert = alerts[0]
            assert_burst_alert(s, alert, hook.url)
            assert alert.negative_share >= alert.baseline_mean + 3 * max(alert.baseline_std, 0.05) - 1e-3
            # the webhook got it once: one refused POST, then the retry it accepted
            assert [(status, body["id"], body["entity"]) for status, body, _ in hook.received] == [
                (500, alert.id, "AAPL"),
                (200, alert.id, "AAPL"),
            ]

            # doing everything again changes nothing: no rescoring, no new alert, no new POST
            scored_at = s.scalar(select(DocumentSentiment.scored_at).where(DocumentSentiment.tenant == tenant).limit(1))
            docs = list(s.scalars(select(Document).where(Document.tenant == tenant)))
            score_documents(s, docs, scorer, watchlist.matcher(s, tenant))
            assert (
                s.scalar(select(DocumentSentiment.scored_at).where(DocumentSentiment.tenant == tenant).limit(1))
                == scored_at
            )
            assert evaluate(s, tenant, None, WEEK_START + timedelta(days=7), RULE) == []
            assert deliver(s, alert.id, alert_record(alert), [hook.url]) == []
        assert len(hook.received) == 2

    with session_scope(own_sql_url) as s:
        mentions = s.scalar(select(EntityMention.document_id).where(EntityMention.entity_id == apple).limit(1))
        assert mentions is not None
        days = series(s, watchlist.get(s, tenant, "AAPL"), "day")
        hours = series(
            s,
            watchlist.get(s, tenant, "MSFT"),
            "hour",
            since=WEEK_START + timedelta(days=1),
            until=WEEK_START + timedelta(days=2),
        )
    assert_burst_days(days, [48] * 5 + [48 + 8 * 3] + [48])
    assert days[5]["mean_sentiment"] < min(d["mean_sentiment"] for d in days[:5])
    assert len(hours) == 24 and all(h["items"] == 2 for h in hours)
