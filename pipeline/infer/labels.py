"""Labels for search: the filter that selects a label (a rebuilt index carries labels: pipeline.reindex.fill)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.errors import PermanentError
from pipeline.store.models_ml import ModelRecord


class UnknownLabel(PermanentError, ValueError):
    """No model of the tenant knows the label asked for; the CLI and the API answer with its message."""


def known_labels(session: Session, tenant: str, task: str | None = None) -> set[str]:
    q = select(ModelRecord.labels).where(ModelRecord.tenant == tenant, ModelRecord.status == "ready")
    if task:
        q = q.where(ModelRecord.task == task)
    return {str(label) for labels in session.scalars(q) for label in labels or []}


def label_filter(session: Session, tenant: str, label: str, task: str | None = None) -> list[dict]:
    """Filter clauses for pipeline.retrieve.search(filters=...): chunks whose document has `label`.

    Raises UnknownLabel (with the labels that exist) for a label no trained model of the tenant has,
    so a typo is an error rather than an empty result.
    """
    known = known_labels(session, tenant, task)
    if label not in known:
        hint = ", ".join(sorted(known)) if known else "none: train and run `docpipe classify` first"
        raise UnknownLabel(f"unknown label {label!r} for tenant {tenant}; known labels: {hint}")
    return [{"term": {"label": label}}]


def labels_filter(session: Session, tenant: str, labels: Iterable[str], task: str | None = None) -> list[dict]:
    """Filter clauses for chunks whose document has any of `labels` ([] when none is asked for).

    Every label must be known (UnknownLabel otherwise), whether it comes from the CLI or the API.
    """
    each = [label_filter(session, tenant, label, task) for label in dict.fromkeys(labels)]
    if len(each) <= 1:
        return each[0] if each else []
    return [{"bool": {"should": [{"bool": {"filter": clauses}} for clauses in each], "minimum_should_match": 1}}]
