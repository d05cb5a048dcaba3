"""Tables of the monitor feature: the reindex ledger, the watchlist, sentiments, mentions and alerts.

(IndexVersion, in models.py, carries the reindexing columns: model path, chunking, build job.)
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.store import models_topics  # noqa: F401  (alerts refer to topics: their table must be known)
from pipeline.store.models import Base, utcnow


class ReindexLedger(Base):
    """What an index version being built already holds: one row per document written into it.

    Documents whose SQL state differs from their row (no row, another content hash, no longer
    indexed) are exactly the ones a build still has to write or delete, whatever happened
    meanwhile: ingest, a killed worker, a redelivered task.
    """

    __tablename__ = "reindex_ledger"
    index_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    # no foreign key: the row of a document deleted meanwhile says which chunks to remove
    document_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    # [[start, end, tokens], ...] when the build changes chunking: the SQL chunk rows at the swap
    spans: Mapped[list | None]


class WatchEntity(Base):
    __tablename__ = "watch_entities"
    __table_args__ = (UniqueConstraint("tenant", "ticker"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(128))
    ticker: Mapped[str] = mapped_column(String(32))
    names: Mapped[list] = mapped_column(default=list)
    episodes: Mapped[int] = mapped_column(default=0)  # spike episodes so far: numbers the next alert
    open_alert_id: Mapped[int | None]  # set while a spike episode lasts, so it alerts once
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DocumentSentiment(Base):
    __tablename__ = "document_sentiments"
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    label: Mapped[str] = mapped_column(String(16))  # negative | neutral | positive
    score: Mapped[float]  # -1 (negative) .. 1 (positive)
    confidence: Mapped[float]
    scorer: Mapped[str] = mapped_column(String(128))  # lexicon:lm or model:<id>
    content_hash: Mapped[str] = mapped_column(String(64))  # the text that was scored
    scored_at: Mapped[datetime] = mapped_column(default=utcnow)


class EntityMention(Base):
    """A document mentioning a watched entity, with the document's sentiment copied in for the series."""

    __tablename__ = "entity_mentions"
    __table_args__ = (Index("ix_entity_mentions_entity_hour", "entity_id", "hour"),)
    entity_id: Mapped[int] = mapped_column(ForeignKey("watch_entities.id", ondelete="CASCADE"), primary_key=True)
    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    tenant: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime]  # published, else ingested
    # whole hours since the epoch: hourly and daily buckets by integer division, the same in every SQL
    hour: Mapped[int]
    label: Mapped[str] = mapped_column(String(16))
    score: Mapped[float]
    matched: Mapped[str] = mapped_column(String(128))  # the text that matched, e.g. "$AAPL"


class Alert(Base):
    """A spike of a watched entity's negative share, or of a topic's (pipeline/store/models_topics.py)."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("entity_id", "episode"), UniqueConstraint("topic_id", "episode"))
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    entity_id: Mapped[int | None] = mapped_column(ForeignKey("watch_entities.id", ondelete="CASCADE"))
    ticker: Mapped[str | None] = mapped_column(String(32))
    topic_id: Mapped[int | None] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"))
    topic: Mapped[str | None] = mapped_column(String(64))
    episode: Mapped[int]
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    items: Mapped[int]
    negatives: Mapped[int]
    negative_share: Mapped[float]
    baseline_mean: Mapped[float]
    baseline_std: Mapped[float]
    deviations: Mapped[float]  # (share - baseline mean) / baseline std
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]  # when the negative share came back within bounds


class AlertDelivery(Base):
    """One webhook's delivery of one alert: a retried task skips the hooks that already have it."""

    __tablename__ = "alert_deliveries"
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # delivered | failed
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
