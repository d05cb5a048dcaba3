"""Topics: what each feed item is about, with its sentiment, so that a topic's negative share can spike.

The tenant's live `topic` model decides an item's topic when one is promoted; otherwise the topics the
tenant defined with terms do (the topic whose terms occur most often in the item). Topics a model names
are made on first sight. Written so that doing it twice changes nothing, like entity tags.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pipeline.monitor.scoring import epoch_hour, item_text, item_time
from pipeline.store.models import Document
from pipeline.store.models_monitor import DocumentSentiment
from pipeline.store.models_topics import DocumentTopic, Topic

TOPIC_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
# labels a topic model may use for "about none of them"
NO_TOPIC = frozenset({"other", "none", "no_topic"})


@dataclass(frozen=True)
class TopicOf:
    topic: str | None  # None: the item is about none of the topics
    confidence: float


class TopicClassifier(Protocol):
    name: str  # recorded with every decision, so a changed classifier decides again

    def classify(self, texts: list[str]) -> list[TopicOf]: ...


def normalise_topic(name: str) -> str:
    topic = "_".join(str(name).strip().lower().split())
    if not TOPIC_NAME.fullmatch(topic):
        raise ValueError(
            f"topic {name!r}: use up to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return topic


class TermTopics:
    """Each topic's terms (words or phrases, any case) counted in the item; the most frequent topic wins."""

    name = "terms"

    def __init__(self, topics: Sequence[tuple[str, Sequence[str]]]):
        self._patterns = [
            (
                topic,
                re.compile(
                    r"\b(?:" + "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)) + r")\b", re.I
                ),
            )
            for topic, terms in sorted(topics)
            if terms
        ]

    def __bool__(self) -> bool:
        return bool(self._patterns)

    def classify(self, texts: list[str]) -> list[TopicOf]:
        out = []
        for text in texts:
            # max keeps the first of equals: ties go to the topic first in name order
            hits, topic = max(
                ((len(p.findall(text or "")), t) for t, p in self._patterns), key=lambda c: c[0], default=(0, "")
            )
            # more matching terms, more evidence; one term gives 1/3
            out.append(TopicOf(topic, round(hits / (hits + 2), 4)) if hits else TopicOf(None, 0.0))
        return out


class ModelTopics:
    """A promoted classifier of task `topic`: its best label is the item's topic."""

    def __init__(self, model_id: str, predictor):
        self.name = f"model:{model_id}"
        self.predictor = predictor
        self.labels = [str(label) for label in predictor.labels]

    def classify(self, texts: list[str]) -> list[TopicOf]:
        if not texts:
            return []
        out = []
        for row in np.asarray(self.predictor.predict(texts)):
            best = int(row.argmax())
            label = self.labels[best]
            topic = None if label.lower() in NO_TOPIC else normalise_topic(label)
            out.append(TopicOf(topic, round(float(row[best]), 4)))
        return out


def live_topic_classifier(
    session: Session, tenant: str, device: str = "auto", compile: bool = False
) -> TopicClassifier | None:
    """The tenant's promoted topic model, else its term-defined topics, else None (no topics)."""
    from pipeline.store.model_registry import live_model

    record = live_model(session, tenant, "topic")
    if record is not None and record.status == "ready" and record.artefact_path:
        from pipeline.infer.agreement import serving_predictor

        return ModelTopics(record.id, serving_predictor(session, record, device, compile))
    terms = TermTopics([(t.name, t.terms) for t in topics(session, tenant)])
    return terms or None


def has_live_topic_model(session: Session, tenant: str) -> bool:
    from pipeline.store.model_registry import live_model

    record = live_model(session, tenant, "topic")
    return record is not None and record.status == "ready" and bool(record.artefact_path)


def add(session: Session, tenant: str, name: str, terms: str | Sequence[str] | None = None) -> Topic:
    """Define a topic (or replace its terms). ValueError for a bad name."""
    name = normalise_topic(name)
    items = terms.split(",") if isinstance(terms, str) else list(terms or [])
    cleaned = list(dict.fromkeys(" ".join(t.split()) for t in items if t and t.strip()))
    row = get(session, tenant, name)
    if row is None:
        row = Topic(tenant=tenant, name=name, terms=cleaned, episodes=0)
        session.add(row)
    else:
        row.terms = cleaned
    session.flush()
    return row


def get(session: Session, tenant: str, name: str) -> Topic | None:
    try:
        name = normalise_topic(name)
    except ValueError:
        return None
    return session.scalar(select(Topic).where(Topic.tenant == tenant, Topic.name == name))


def topics(session: Session, tenant: str) -> list[Topic]:
    return list(session.scalars(select(Topic).where(Topic.tenant == tenant).order_by(Topic.name)))


def remove(session: Session, tenant: str, name: str) -> bool:
    """Forget a topic: its item tags and alerts go with it."""
    row = get(session, tenant, name)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def score_topics(session: Session, docs: list[Document], classifier: TopicClassifier | None) -> set[int]:
    """Give each document its topic (new or changed text, or another classifier) and copy its sentiment in;
    return the ids of the topics that got items. Sentiments must be scored first (score_documents)."""
    if not docs or classifier is None:
        return set()
    ids = [d.id for d in docs]
    sentiments = {
        s.document_id: s
        for s in session.scalars(select(DocumentSentiment).where(DocumentSentiment.document_id.in_(ids)))
    }
    known = {t.document_id: t for t in session.scalars(select(DocumentTopic).where(DocumentTopic.document_id.in_(ids)))}
    todo = [
        d
        for d in docs
        if d.id in sentiments
        and (
            d.id not in known or known[d.id].content_hash != d.content_hash or known[d.id].classifier != classifier.name
        )
    ]
    decided = dict(zip([d.id for d in todo], classifier.classify([item_text(d) for d in todo])))
    by_name: dict[str, Topic] = {}
    touched: set[int] = set()
    for doc in docs:
        sentiment = sentiments.get(doc.id)
        row = known.get(doc.id)
        if doc.id in decided:
            verdict = decided[doc.id]
            if verdict.topic is None:
                if row is not None:
                    session.execute(delete(DocumentTopic).where(DocumentTopic.document_id == doc.id))
                continue
            topic = by_name.get(verdict.topic) or _topic(session, doc.tenant, verdict.topic)
            by_name[verdict.topic] = topic
            if row is None:
                row = DocumentTopic(document_id=doc.id, tenant=doc.tenant)
                session.add(row)
            at = item_time(doc)
            row.topic_id, row.confidence, row.classifier = topic.id, verdict.confidence, classifier.name
            row.content_hash, row.at, row.hour = doc.content_hash, at, epoch_hour(at)
        if row is None or sentiment is None:
            continue
        # the sentiment may have been scored again (another model) with the topic unchanged
        row.label, row.score = sentiment.label, sentiment.score
        touched.add(row.topic_id)
    session.flush()
    return touched


def _topic(session: Session, tenant: str, name: str) -> Topic:
    row = get(session, tenant, name)
    if row is None:
        # a concurrent task may make the same topic: the loser's flush fails and its task is retried
        row = Topic(tenant=tenant, name=name, terms=[], episodes=0)
        session.add(row)
        session.flush()
    return row
