"""Model registry tables: trained classifiers, which one is live per (tenant, task), promotion history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.store.models import Base, utcnow


class ModelRecord(Base):
    __tablename__ = "models"
    __table_args__ = (Index("ix_models_tenant_task", "tenant", "task"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128))
    task: Mapped[str] = mapped_column(String(64))  # e.g. "topic", "sentiment"
    base_model: Mapped[str] = mapped_column(String(512))
    labels: Mapped[list] = mapped_column(default=list)  # index i is class i of the head
    augment: Mapped[str] = mapped_column(String(16), default="none")  # none | concat | fusion
    neighbours: Mapped[int] = mapped_column(default=0)
    data_hash: Mapped[str] = mapped_column(String(64))
    index_version: Mapped[str | None] = mapped_column(String(128))  # where the neighbours came from
    metrics: Mapped[dict] = mapped_column(default=dict)  # {"retrieval": {...}, "baseline": {...}}
    params: Mapped[dict] = mapped_column(default=dict)  # epochs, lr, max lengths, seed ...
    artefact_path: Mapped[str | None] = mapped_column(String(2048))
    status: Mapped[str] = mapped_column(String(16), default="training")  # training | ready | failed
    error: Mapped[str | None] = mapped_column(Text)
    live: Mapped[bool] = mapped_column(default=False)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelPromotion(Base):
    """Every promotion, so `rollback` can return to the model that was live before."""

    __tablename__ = "model_promotions"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(128))
    task: Mapped[str] = mapped_column(String(64))
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    promoted_at: Mapped[datetime] = mapped_column(default=utcnow)


class Prediction(Base):
    """A document's latest label for a task: written by classify jobs, mirrored on its chunks in Elasticsearch."""

    __tablename__ = "predictions"
    __table_args__ = (Index("ix_predictions_tenant_task_label", "tenant", "task", "label"),)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    task: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128))
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), index=True)
    label: Mapped[str] = mapped_column(String(128))
    score: Mapped[float]  # probability of `label`
    scores: Mapped[dict] = mapped_column(default=dict)  # label -> probability
    content_hash: Mapped[str] = mapped_column(String(64))  # the text version the label was computed from
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)  # reindex label catch-up
