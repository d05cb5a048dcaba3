"""The classify use case: the live model's labels for a tenant's documents, into SQL and Elasticsearch.

Each indexed chunk of a document is classified (batched by token budget); the document's label comes
from its chunks' probabilities weighted by their token counts, and is written to the predictions table
and, by partial updates, onto every one of its chunks. Writing the same label again changes nothing.
Augmented models get their neighbours at serving time under the same leak rules as in training:
never the document itself, its near-duplicate cluster, or (when it has a date) anything published later.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.index import write_chunks
from pipeline.infer.predictor import Predictor
from pipeline.neighbours import LeakRule, neighbour_vectors, retrieve
from pipeline.store import repo
from pipeline.store.models import Document, DocumentStatus, JobDocument
from pipeline.store.models_ml import ModelRecord, Prediction
from pipeline.types import utcnow


@dataclass
class ClassifyReport:
    documents: int = 0
    chunks: int = 0
    es_failures: list[dict] = field(default_factory=list)
    padding: dict = field(default_factory=dict)


def _scope(tenant: str, job_id: str | None, doc_ids: list[str] | None, not_in_job: str | None):
    q = select(Document).where(
        Document.tenant == tenant, Document.status == DocumentStatus.INDEXED, Document.chunk_count > 0
    )
    if job_id:
        q = q.where(Document.id.in_(select(JobDocument.document_id).where(JobDocument.job_id == job_id)))
    if doc_ids is not None:
        q = q.where(Document.id.in_(doc_ids))
    if not_in_job:
        q = q.where(~Document.id.in_(select(Prediction.document_id).where(Prediction.job_id == not_in_job)))
    return q


def scope_documents(
    session: Session,
    tenant: str,
    job_id: str | None = None,
    doc_ids: list[str] | None = None,
    not_in_job: str | None = None,
    limit: int | None = None,
) -> list[Document]:
    """Indexed documents of the tenant (all, those of a job, or given ids) not yet labelled by `not_in_job`."""
    return list(session.scalars(_scope(tenant, job_id, doc_ids, not_in_job).order_by(Document.id).limit(limit)))


def count_scope(session: Session, tenant: str, job_id: str | None = None, doc_ids: list[str] | None = None) -> int:
    from sqlalchemy import func

    inner = _scope(tenant, job_id, doc_ids, None).with_only_columns(Document.id).subquery()
    return session.scalar(select(func.count()).select_from(inner)) or 0


def classify_documents(
    session: Session,
    es,
    index: str,
    predictor: Predictor,
    model: ModelRecord,
    docs: list[Document],
    job_id: str | None = None,
    encoder=None,
    allow_undated: bool = True,
) -> ClassifyReport:
    report = ClassifyReport(documents=len(docs))
    if not docs:
        return report
    chunks = repo.chunk_rows(session, [d.id for d in docs])
    docs = [d for d in docs if chunks[d.id]]
    owner = [i for i, d in enumerate(docs) for _ in chunks[d.id]]  # chunk row -> document position
    starts = np.cumsum([0] + [len(chunks[d.id]) for d in docs])
    texts = [d.text[c.char_start : c.char_end] for d in docs for c in chunks[d.id]]
    passages = vectors = mask = None
    if predictor.needs_neighbours:
        k = predictor.config.neighbours
        rules = [LeakRule({d.id}, {d.cluster_id}, d.published) for d in docs]
        found = retrieve(session, es, index, model.tenant, encoder, [d.text for d in docs], rules, k, allow_undated)
        passages = [found.passages(i) for i in owner]
        if predictor.config.augment == "fusion":
            v, m = neighbour_vectors(es, index, found, int(predictor.config.neighbour_dims or 0))
            vectors, mask = v[owner], m[owner]
    probs = predictor.predict(texts, passages, vectors, mask)
    report.chunks, report.padding = len(texts), predictor.engine.last_report.as_dict()
    weights = np.array([c.token_count or 1 for d in docs for c in chunks[d.id]], dtype=np.float64)
    labels = predictor.labels
    actions = []
    for i, doc in enumerate(docs):
        rows = slice(starts[i], starts[i + 1])
        p = np.average(probs[rows], axis=0, weights=weights[rows])
        best = int(np.argmax(p))
        scores = {label: round(float(x), 6) for label, x in zip(labels, p)}
        _upsert(session, doc, model, job_id, labels[best], float(p[best]), scores)
        fields = {"label": labels[best], "label_scores": scores, "label_task": model.task, "label_model": model.id}
        actions += [{"_op_type": "update", "_index": index, "_id": c.id, "doc": fields} for c in chunks[doc.id]]
    report.es_failures = write_chunks(es, actions).failures
    return report


def _upsert(
    session: Session, doc: Document, model: ModelRecord, job_id: str | None, label: str, score: float, scores: dict
) -> None:
    row = session.get(Prediction, (doc.id, model.task))
    if row is None:
        row = Prediction(document_id=doc.id, task=model.task, tenant=doc.tenant)
        session.add(row)
    row.model_id, row.job_id, row.label, row.score, row.scores = model.id, job_id, label, score, scores
    row.content_hash, row.created_at = doc.content_hash, utcnow()
