"""A simulated week of feed items about three topics: bank regulation gets a negative burst and raises exactly
one topic alert, delivered once (after a retry); the steady topics raise none; items about none of the topics
get no topic. The topics are the tenant's term-defined ones (no topic model is promoted). Real SQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from pipeline.monitor import (
    LexiconScorer,
    alert_record,
    evaluate,
    evaluate_topics,
    live_topic_classifier,
    score_documents,
    score_topics,
    series,
    topics,
    watchlist,
)
from pipeline.store.db import session_scope
from pipeline.store.models import Document
from pipeline.store.models_monitor import Alert
from pipeline.store.models_topics import DocumentTopic
from tests.hooks import Hook
from tests.monitor_support import (
    BURST,
    RULE,
    WEEK_START,
    assert_burst_alert,
    assert_burst_days,
    deliver_to,
    news_item,
    simulate_week,
)

pytestmark = pytest.mark.integration

TERMS = {
    "bank_regulation": "regulator, capital rules, Basel",
    "earnings": "quarterly results, earnings",
    "rates": "interest rates, central bank",
}
NEGATIVE = {
    "bank_regulation": [
        "The regulator warned of losses and penalties under the new capital rules.",
        "Critics say the regulator failed to stop the damage from weak capital rules.",
        "Lenders face losses as the Basel breach brings penalties.",
    ],
    "earnings": ["Quarterly results fell short after losses and weak demand."],
    "rates": ["The central bank warned that interest rates will hurt borrowers and cause losses."],
}
OTHER = {
    "bank_regulation": [
        "The regulator will publish the Basel calendar on Tuesday.",
        "The regulator met lenders to discuss capital rules.",
    ],
    "earnings": ["Quarterly results will be published on Thursday."],
    "rates": ["The central bank kept interest rates unchanged."],
}
NO_TOPIC = "The city opened a new park near the station."


def items_for(hour: int) -> list[tuple[str | None, bool]]:
    """(topic, negative?) for one hour: two items per topic, a few negative by a fixed pattern, one item about
    nothing; during the burst bank regulation gets five items, four negative."""
    out: list[tuple[str | None, bool]] = [(None, False)]
    for k in range(2):
        out.append(("earnings", (hour * 2 + k) % 9 == 0))
        out.append(("rates", (hour * 2 + k) % 11 == 0))
        out.append(("bank_regulation", (hour * 2 + k) % 7 == 0))
    if hour in BURST:
        out = [o for o in out if o[0] != "bank_regulation"] + [("bank_regulation", i < 4) for i in range(5)]
    return out


def texts_for(hour: int) -> list[str]:
    texts = []
    for i, (topic, negative) in enumerate(items_for(hour)):
        if topic is None:
            texts.append(NO_TOPIC)
        else:
            choices = (NEGATIVE if negative else OTHER)[topic]
            texts.append(choices[(hour + i) % len(choices)])
    return texts


def test_a_week_with_one_negative_topic_burst_raises_one_topic_alert(own_sql_url):
    tenant = f"t-topics-{uuid.uuid4().hex[:6]}"
    scorer = LexiconScorer(0.2)
    with session_scope(own_sql_url) as s:
        for name, terms in TERMS.items():
            topics.add(s, tenant, name, terms)
    with Hook([500]) as hook:

        def each_hour(s, docs, now) -> None:
            touched = score_topics(s, docs, live_topic_classifier(s, tenant))
            assert evaluate(s, tenant, None, now, RULE) == []  # nobody watches an entity
            for alert in evaluate_topics(s, tenant, touched, now, RULE):
                deliver_to(s, alert, alert_record(alert), hook.url)

        simulate_week(own_sql_url, tenant, texts_for, scorer, each_hour)

        with session_scope(own_sql_url) as s:
            alerts = list(s.scalars(select(Alert).where(Alert.tenant == tenant)))
            assert [(a.topic, a.episode, a.entity_id) for a in alerts] == [("bank_regulation", 1, None)]
            assert_burst_alert(s, alerts[0], hook.url)
            assert [(status, body["kind"], body["topic"], body["entity"]) for status, body, _ in hook.received] == [
                (500, "topic_negative_share_spike", "bank_regulation", None),
                (200, "topic_negative_share_spike", "bank_regulation", None),
            ]

            # every item about a topic has it, the others have none
            tagged = dict(
                s.execute(
                    select(DocumentTopic.document_id, DocumentTopic.classifier).where(DocumentTopic.tenant == tenant)
                ).all()
            )
            docs = list(s.scalars(select(Document).where(Document.tenant == tenant)))
            assert {d.id for d in docs if d.text != NO_TOPIC} == set(tagged)
            assert set(tagged.values()) == {"terms"}

            # doing everything again changes nothing: no new rows, no new alert, no new POST
            before = s.scalar(select(func.count()).select_from(DocumentTopic).where(DocumentTopic.tenant == tenant))
            assert score_topics(s, docs, live_topic_classifier(s, tenant))
            after = s.scalar(select(func.count()).select_from(DocumentTopic).where(DocumentTopic.tenant == tenant))
            assert before == after
            assert evaluate_topics(s, tenant, None, WEEK_START + timedelta(days=7), RULE) == []
        assert len(hook.received) == 2

    with session_scope(own_sql_url) as s:
        days = series(s, topics.get(s, tenant, "bank_regulation"), "day")
        steady = series(s, topics.get(s, tenant, "rates"), "day")
    shares = assert_burst_days(days, [48] * 5 + [48 - 16 + 40] + [48])
    assert [d["items"] for d in steady] == [48] * 7
    assert max(d["negative_share"] for d in steady) < shares[5]


def test_a_topic_model_decides_topics_and_its_other_label_means_none(own_sql_url):
    """The live classifier's label is the topic (made on first sight); 'other' tags nothing."""
    from pipeline.monitor.topics import ModelTopics

    class Predictor:  # the predictor interface of pipeline.infer: labels and per-text probabilities
        labels = ["Bank Regulation", "other"]

        def predict(self, texts):
            return [[0.9, 0.1] if "regulator" in t.lower() else [0.2, 0.8] for t in texts]

    tenant = f"t-topicmodel-{uuid.uuid4().hex[:6]}"
    with session_scope(own_sql_url) as s:
        docs = [
            news_item(tenant, "https://news.example/a", OTHER["bank_regulation"][0], WEEK_START),
            news_item(tenant, "https://news.example/b", NO_TOPIC, WEEK_START),
        ]
        s.add_all(docs)
        s.flush()
        score_documents(s, docs, LexiconScorer(0.2), watchlist.matcher(s, tenant))
        touched = score_topics(s, docs, ModelTopics("m1", Predictor()))
        made = topics.get(s, tenant, "bank_regulation")
        assert made is not None and touched == {made.id}
        rows = list(s.scalars(select(DocumentTopic).where(DocumentTopic.tenant == tenant)))
        assert [(r.document_id, r.classifier, r.confidence) for r in rows] == [(docs[0].id, "model:m1", 0.9)]
