"""A simulated week of feed items: one entity gets a negative burst and raises exactly one alert, whose
webhook gets it once (after a retry); a steady entity raises none. Real SQL (SQLite or PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from pipeline.monitor import (
    LexiconScorer,
    SpikeRule,
    alert_record,
    deliver,
    evaluate,
    score_documents,
    series,
    watchlist,
)
from pipeline.store.db import session_scope
from pipeline.store.models import Document
from pipeline.store.models_monitor import Alert, AlertDelivery, DocumentSentiment, EntityMention
from tests.conftest import migrated_database
from tests.hooks import Hook
from tests.monitor_support import news_item

pytestmark = pytest.mark.integration

START = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday
BURST = range(5 * 24 + 9, 5 * 24 + 17)  # Saturday 09:00-17:00
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
RULE = SpikeRule(window_hours=6, baseline_hours=72, sigma=3.0, min_items=5, min_baseline_windows=4, std_floor=0.05)


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


def make_docs(tenant: str, hour: int) -> list[Document]:
    docs = []
    for i, (_, mention, negative) in enumerate(items_for(hour)):
        text = (NEGATIVE if negative else OTHER)[(hour + i) % 3].format(n=mention)
        published = START + timedelta(hours=hour, minutes=5 * i)
        docs.append(news_item(tenant, f"https://news.example/{hour}/{i}", text, published))
    return docs


@pytest.fixture
def sql_url(tmp_path):
    """A database of the test's own: its documents say "indexed" but have no chunks anywhere, which a
    reindex or a verify of the shared stack would rightly count as drift."""
    with migrated_database(tmp_path) as url:
        yield url


def test_a_week_with_one_negative_burst_raises_one_alert(sql_url):
    tenant = f"t-week-{uuid.uuid4().hex[:6]}"
    scorer = LexiconScorer(0.2)
    with session_scope(sql_url) as s:
        apple = watchlist.add(s, tenant, "AAPL", "Apple,Apple Inc").id
        watchlist.add(s, tenant, "MSFT", "Microsoft")
    with Hook([500]) as hook:
        for hour in range(7 * 24):
            with session_scope(sql_url) as s:
                docs = make_docs(tenant, hour)
                s.add_all(docs)
                s.flush()
                score_documents(s, docs, scorer, watchlist.matcher(s, tenant))
                opened = evaluate(s, tenant, None, START + timedelta(hours=hour, minutes=59), RULE)
                for alert in opened:
                    failed = deliver(
                        s,
                        alert.id,
                        alert_record(alert, ["Apple", "Apple Inc"]),
                        [hook.url],
                        timeout=5,
                        attempts=3,
                        backoff=0.05,
                    )
                    assert failed == []

        with session_scope(sql_url) as s:
            alerts = list(s.scalars(select(Alert).where(Alert.tenant == tenant)))
            assert [(a.ticker, a.episode) for a in alerts] == [("AAPL", 1)]
            alert = alerts[0]
            assert alert.window_end.replace(tzinfo=UTC) > START + timedelta(hours=BURST[0])
            assert alert.window_end.replace(tzinfo=UTC) <= START + timedelta(hours=BURST[-1] + 1)
            assert alert.deviations >= 3 and alert.ended_at is not None  # the episode closed after the burst
            assert alert.negative_share >= alert.baseline_mean + 3 * max(alert.baseline_std, 0.05) - 1e-3
            delivery = s.get(AlertDelivery, (alert.id, hook.url))
            assert (delivery.status, delivery.attempts) == ("delivered", 2)
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
            assert evaluate(s, tenant, None, START + timedelta(days=7), RULE) == []
            assert deliver(s, alert.id, alert_record(alert), [hook.url]) == []
        assert len(hook.received) == 2

    with session_scope(sql_url) as s:
        mentions = s.scalar(select(EntityMention.document_id).where(EntityMention.entity_id == apple).limit(1))
        assert mentions is not None
        days = series(s, watchlist.get(s, tenant, "AAPL"), "day")
        hours = series(
            s,
            watchlist.get(s, tenant, "MSFT"),
            "hour",
            since=START + timedelta(days=1),
            until=START + timedelta(days=2),
        )
    assert [d["start"][:10] for d in days] == [f"2024-03-{4 + i:02d}" for i in range(7)]
    assert [d["items"] for d in days] == [48] * 5 + [48 + 8 * 3] + [48]
    shares = [d["negative_share"] for d in days]
    assert max(shares) == shares[5] and shares[5] > 2 * max(shares[:5])
    assert days[5]["mean_sentiment"] < min(d["mean_sentiment"] for d in days[:5])
    assert len(hours) == 24 and all(h["items"] == 2 for h in hours)
