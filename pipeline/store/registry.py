"""Model registry: register, promote, roll back, find the live model of a (tenant, task)."""
from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pipeline.store.models import utcnow
from pipeline.store.models_ml import ModelPromotion, ModelRecord


def live_model(session: Session, tenant: str, task: str) -> ModelRecord | None:
    return session.scalar(select(ModelRecord).where(
        ModelRecord.tenant == tenant, ModelRecord.task == task, ModelRecord.live.is_(True)))


def list_models(session: Session, tenant: str | None = None, task: str | None = None) -> list[ModelRecord]:
    q = select(ModelRecord).order_by(ModelRecord.created_at.desc())
    if tenant:
        q = q.where(ModelRecord.tenant == tenant)
    if task:
        q = q.where(ModelRecord.task == task)
    return list(session.scalars(q))


def get_model(session: Session, model_id: str) -> ModelRecord | None:
    row = session.get(ModelRecord, model_id)
    if row is None and len(model_id) < 32:
        rows = session.scalars(select(ModelRecord).where(ModelRecord.id.startswith(model_id)).limit(2)).all()
        row = rows[0] if len(rows) == 1 else None
    return row


def promote(session: Session, model: ModelRecord) -> None:
    """Make `model` the live one of its (tenant, task). Only a ready model can be promoted."""
    if model.status != "ready":
        raise ValueError(f"model {model.id} is {model.status}; only a ready model can be promoted")
    session.execute(update(ModelRecord).where(
        ModelRecord.tenant == model.tenant, ModelRecord.task == model.task, ModelRecord.id != model.id)
        .values(live=False))
    model.live = True
    session.add(ModelPromotion(tenant=model.tenant, task=model.task, model_id=model.id, promoted_at=utcnow()))
    session.flush()


def rollback(session: Session, tenant: str, task: str) -> ModelRecord | None:
    """Return to the model promoted before the live one; None when there is none to return to."""
    history = list(session.scalars(select(ModelPromotion).where(
        ModelPromotion.tenant == tenant, ModelPromotion.task == task)
        .order_by(ModelPromotion.promoted_at.desc(), ModelPromotion.id.desc())))
    current = live_model(session, tenant, task)
    for entry in history:
        if current is None or entry.model_id != current.id:
            previous = session.get(ModelRecord, entry.model_id)
            if previous is not None and previous.status == "ready":
                promote(session, previous)
                return previous
    return None
