"""Model registry: register, promote, roll back, find the live model of a (tenant, task)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pipeline.store.models_ml import ModelPromotion, ModelRecord
from pipeline.types import utcnow


def live_model(session: Session, tenant: str, task: str) -> ModelRecord | None:
    return session.scalar(
        select(ModelRecord).where(ModelRecord.tenant == tenant, ModelRecord.task == task, ModelRecord.live.is_(True))
    )


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
    session.execute(
        update(ModelRecord)
        .where(ModelRecord.tenant == model.tenant, ModelRecord.task == model.task, ModelRecord.id != model.id)
        .values(live=False)
    )
    model.live = True
    session.add(ModelPromotion(tenant=model.tenant, task=model.task, model_id=model.id, promoted_at=utcnow()))
    session.flush()


def rollback(session: Session, tenant: str, task: str, usable=None) -> ModelRecord | None:
    """Return to the model promoted before the live one; None when there is none to return to.

    `usable(model) -> bool` can veto a candidate (e.g. its folder no longer loads); the next older one is tried.
    """
    history = list(
        session.scalars(
            select(ModelPromotion)
            .where(ModelPromotion.tenant == tenant, ModelPromotion.task == task)
            .order_by(ModelPromotion.promoted_at.desc(), ModelPromotion.id.desc())
        )
    )
    current = live_model(session, tenant, task)
    for entry in history:
        if current is None or entry.model_id != current.id:
            previous = session.get(ModelRecord, entry.model_id)
            if previous is not None and previous.status == "ready" and (usable is None or usable(previous)):
                promote(session, previous)
                return previous
    return None


# --- training jobs and predictions ---------------------------------------------------------------


def model_for_job(session: Session, job_id: str) -> ModelRecord | None:
    return session.scalar(select(ModelRecord).where(ModelRecord.job_id == job_id))


def start_model(
    session: Session, job_id: str, tenant: str, task: str, base_model: str, augment: str, neighbours: int, params: dict
) -> ModelRecord:
    """The job's model row (status training); a redelivered task finds the one it made before."""
    from pipeline.store.repo import new_id

    row = model_for_job(session, job_id)
    if row is None:
        row = ModelRecord(
            id=new_id(),
            tenant=tenant,
            task=task,
            base_model=base_model,
            augment=augment,
            neighbours=neighbours,
            data_hash="",
            params=params,
            labels=[],
            metrics={},
            status="training",
            live=False,
            job_id=job_id,
            created_at=utcnow(),
        )
        session.add(row)
        session.flush()
    return row


def fail_model(session: Session, job_id: str, error: str) -> None:
    """A job that failed leaves its model row failed with the reason; the live model is not touched."""
    row = model_for_job(session, job_id)
    if row is not None and row.status == "training":
        row.status, row.error = "failed", error[:4000]


def labelled_documents(session: Session, job_id: str) -> int:
    from sqlalchemy import func

    from pipeline.store.models_ml import Prediction

    return session.scalar(select(func.count()).select_from(Prediction).where(Prediction.job_id == job_id)) or 0
