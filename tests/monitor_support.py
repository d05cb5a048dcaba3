"""Shared pieces of the monitor tests: feed items as stored documents that say "indexed", and a simulated week
of them with a burst on Saturday."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pipeline.monitor import SpikeRule, deliver, score_documents, watchlist
from pipeline.store.db import session_scope
from pipeline.store.models import Document
from pipeline.store.models_monitor import AlertDelivery
from pipeline.types import document_id


def news_item(tenant: str, link: str, text: str, published: datetime) -> Document:
    """A feed item as the ingest leaves it (indexed, its own cluster), with no chunks anywhere."""
    doc_id = document_id(tenant, link)
    return Document(
        id=doc_id,
        tenant=tenant,
        source=link,
        content_type="json",
        title=None,
        published=published,
        text=text,
        meta={},
        content_hash=hashlib.sha256(f"{link}{text}".encode()).hexdigest(),
        status="indexed",
        cluster_id=doc_id,
        chunk_count=1,
        indexed_hash=None,
        created_at=published,
    )


WEEK_START = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday
BURST = range(5 * 24 + 9, 5 * 24 + 17)  # Saturday 09:00-17:00
RULE = SpikeRule(window_hours=6, baseline_hours=72, sigma=3.0, min_items=5, min_baseline_windows=4, std_floor=0.05)


def simulate_week(
    sql_url: str,
    tenant: str,
    texts_for: Callable[[int], list[str]],
    scorer,
    each_hour: Callable,
) -> None:
    """Seven days of feed items, an hour per transaction: texts_for(hour) five minutes apart, stored and scored
    (sentiment, watched entities), then each_hour(session, docs, now), now being the hour's last minute."""
    for hour in range(7 * 24):
        with session_scope(sql_url) as s:
            docs = [
                news_item(
                    tenant, f"https://news.example/{hour}/{i}", text, WEEK_START + timedelta(hours=hour, minutes=5 * i)
                )
                for i, text in enumerate(texts_for(hour))
            ]
            s.add_all(docs)
            s.flush()
            score_documents(s, docs, scorer, watchlist.matcher(s, tenant))
            each_hour(s, docs, WEEK_START + timedelta(hours=hour, minutes=59))


def deliver_to(session, alert, record: dict, url: str) -> None:
    """Deliver an alert at once, retrying quickly; every POST succeeds within three attempts."""
    assert deliver(session, alert.id, record, [url], timeout=5, attempts=3, backoff=0.05) == []


def assert_burst_alert(session, alert, url: str) -> None:
    """The alert's window ends inside the burst, its episode closed after it, and its delivery to url was
    refused once then accepted."""
    assert WEEK_START + timedelta(hours=BURST[0]) < alert.window_end.replace(tzinfo=UTC)
    assert alert.window_end.replace(tzinfo=UTC) <= WEEK_START + timedelta(hours=BURST[-1] + 1)
    assert alert.deviations >= 3 and alert.ended_at is not None  # the episode closed after the burst
    delivery = session.get(AlertDelivery, (alert.id, url))
    assert (delivery.status, delivery.attempts) == ("delivered", 2)


def assert_burst_days(days: list[dict], items: list[int]) -> list[float]:
    """A daily series over the week with these item counts, Saturday's negative share standing out; the shares."""
    assert [d["start"][:10] for d in days] == [f"2024-03-{4 + i:02d}" for i in range(7)]
    assert [d["items"] for d in days] == items
    shares = [d["negative_share"] for d in days]
    assert max(shares) == shares[5] and shares[5] > 2 * max(shares[:5])
    return shares
