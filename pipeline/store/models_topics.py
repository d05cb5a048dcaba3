"""Tables of topic monitoring: the topics a tenant's items fall into, and each item's topic with its sentiment."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.store.models import Base, utcnow


class Topic(Base):
    """A topic of a tenant: made when the classifier first names it, or by hand with the terms that
    decide it when no topic model is live. It carries the spike state, as a watched entity does."""

    __tablename__ = "topics"
    __table_args__ = (UniqueConstraint("tenant", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(64))
    terms: Mapped[list] = mapped_column(default=list)
    episodes: Mapped[int] = mapped_column(default=0)
    open_alert_id: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DocumentTopic(Base):
    """An item's topic, with its sentiment copied in for the series (one topic per item: its best)."""

    __tablename__ = "document_topics"
    __table_args__ = (Index("ix_document_topics_topic_hour", "topic_id", "hour"),)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("topics.id", ondelete="CASCADE"))
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    confidence: Mapped[float]
    classifier: Mapped[str] = mapped_column(String(128))  # terms | model:<id>
    content_hash: Mapped[str] = mapped_column(String(64))  # the text that was classified
    at: Mapped[datetime]  # published, else ingested
    hour: Mapped[int]  # whole hours since the epoch, as entity mentions
    label: Mapped[str] = mapped_column(String(16))
    score: Mapped[float]
