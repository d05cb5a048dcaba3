"""The extract use case: the live NER model's entities for a tenant's documents, into SQL and the index.

Every indexed chunk of a document is tagged (batched by token budget through the inference engine); an
entity's offsets are moved into the document's text, and one found twice where chunks overlap counts
once (the higher score). A document's entity rows are replaced as a whole and its extraction row says
which model tagged which text version, so running a job again leaves the same rows. Each chunk gets, by
partial update, the keyword fields `entities` ("ORG:Acme Corp") and `entity_text` ("Acme Corp") of the
entities inside it (empty lists when none), which search filters and facets read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from pipeline.errors import PermanentError
from pipeline.index import refresh, write_chunks
from pipeline.index.guard import guard
from pipeline.index.mapping import ENTITY_PROPERTIES
from pipeline.infer.classify_job import count_scope
from pipeline.infer.ner_inputs import NER_TASK, Span
from pipeline.infer.ner_model import Tagger
from pipeline.neighbours import LeakRule, retrieve
from pipeline.reindex import search_target
from pipeline.store import model_registry, repo
from pipeline.store.models import Document, DocumentStatus, Job, JobDocument, JobState
from pipeline.store.models_entities import EntityExtraction, EntityRow, fold_name
from pipeline.store.models_ml import ModelRecord
from pipeline.types import utcnow

EncoderFor = Callable[[str, str], object]  # model path, encoder variant -> query encoder
MAX_TEXT = 512  # the entities.text column


@dataclass(frozen=True)
class ExtractSettings:
    index_prefix: str
    encoder_path: str  # the index's model when no version records one
    docs_per_batch: int
    allow_undated_neighbours: bool


@dataclass
class ExtractReport:
    documents: int = 0
    chunks: int = 0
    entities: int = 0
    es_failures: list[dict] = field(default_factory=list)
    padding: dict = field(default_factory=dict)


def normalise_text(text: str) -> str:
    return " ".join(text.split())[:MAX_TEXT]


def entity_key(kind: str, text: str) -> str:
    """The `entities` keyword of an entity: its type and its text, e.g. ORG:Acme Corp."""
    return f"{kind}:{normalise_text(text)}"


def entity_filter(values: list[str]) -> list[dict]:
    """Filter clauses for chunks mentioning any of `values` ("ORG:Acme Corp", or a bare "Acme Corp")."""
    keyed = [v for v in values if ":" in v]
    bare = [v for v in values if ":" not in v]
    should = ([{"terms": {"entities": keyed}}] if keyed else []) + ([{"terms": {"entity_text": bare}}] if bare else [])
    return [{"bool": {"should": should, "minimum_should_match": 1}}] if should else []


def entity_facets(es, index: str, tenant: str, size: int = 20, filters: list[dict] | None = None) -> list[dict]:
    """The tenant's most frequent entities ({value, chunks}) among the chunks the filters keep."""
    query = {"bool": {"filter": [{"term": {"tenant": tenant}}, *(filters or [])]}}
    with guard("entity facets"):
        resp = es.search(
            index=index, query=query, size=0, aggs={"entities": {"terms": {"field": "entities", "size": size}}}
        )
    return [{"value": b["key"], "chunks": b["doc_count"]} for b in resp["aggregations"]["entities"]["buckets"]]


def ensure_entity_fields(es, index: str) -> None:
    """Map the entity fields on an index built before they existed (adding fields is allowed in place)."""
    with guard("entity fields mapping"):
        es.indices.put_mapping(index=index, properties=ENTITY_PROPERTIES)


def _scope(tenant: str, source_job: str | None, not_in_job: str | None):
    q = select(Document).where(
        Document.tenant == tenant, Document.status == DocumentStatus.INDEXED, Document.chunk_count > 0
    )
    if source_job:
        q = q.where(Document.id.in_(select(JobDocument.document_id).where(JobDocument.job_id == source_job)))
    if not_in_job:
        q = q.where(~Document.id.in_(select(EntityExtraction.document_id).where(EntityExtraction.job_id == not_in_job)))
    return q


def scope_documents(session: Session, tenant: str, source_job: str | None, not_in_job: str, limit: int):
    return list(session.scalars(_scope(tenant, source_job, not_in_job).order_by(Document.id).limit(limit)))


def pin_model(session: Session, job: Job, cfg: ExtractSettings) -> str | None:
    """Pin the live NER model at the start (a promotion meanwhile does not change a running job); an error
    when there is none."""
    opts = dict(job.options or {})
    model = model_registry.live_model(session, job.tenant, NER_TASK)
    if model is None:
        return (
            f"no live NER model for tenant {job.tenant}: train one with `docpipe train --task ner DATA` and "
            "promote it with `docpipe models promote ID`"
        )
    opts.update(model_id=model.id, artefact=model.artefact_path)
    job.options = opts
    job.total = count_scope(session, job.tenant, opts.get("source_job"))
    return None


def document_entities(doc: Document, chunks, spans: list[list[Span]]) -> list[tuple[str, Span]]:
    """(chunk id, span in document offsets) of one document, each entity once, in text order."""
    best: dict[tuple[int, int, str], tuple[str, Span]] = {}
    for chunk, found in zip(chunks, spans):
        for s in found:
            start, end = chunk.char_start + s.start, chunk.char_start + s.end
            key = (start, end, s.type)
            if key not in best or s.score > best[key][1].score:
                chunk_id = best[key][0] if key in best else chunk.id
                best[key] = (chunk_id, Span(start, end, s.type, s.score, doc.text[start:end]))
    return [best[k] for k in sorted(best)]


def extract_documents(
    session: Session,
    es,
    index: str,
    tagger: Tagger,
    model: ModelRecord,
    docs: list[Document],
    job_id: str | None = None,
    encoder=None,
    allow_undated: bool = True,
) -> ExtractReport:
    report = ExtractReport(documents=len(docs))
    chunks = repo.chunk_rows(session, [d.id for d in docs])
    docs = [d for d in docs if chunks[d.id]]
    if not docs:
        return report
    texts = [d.text[c.char_start : c.char_end] for d in docs for c in chunks[d.id]]
    passages = None
    if tagger.needs_neighbours:  # the same leak rules as training: never itself, its cluster, or later news
        rules = [LeakRule({d.id}, {d.cluster_id}, d.published) for d in docs]
        k = tagger.config.neighbours
        found = retrieve(session, es, index, model.tenant, encoder, [d.text for d in docs], rules, k, allow_undated)
        passages = [found.passages(i) for i, d in enumerate(docs) for _ in chunks[d.id]]
    spans = tagger.tag(texts, passages)
    report.chunks, report.padding = len(texts), tagger.engine.last_report.as_dict()
    ids = [d.id for d in docs]
    session.execute(delete(EntityRow).where(EntityRow.document_id.in_(ids)))
    actions, at = [], 0
    for doc in docs:
        own = chunks[doc.id]
        entities = document_entities(doc, own, spans[at : at + len(own)])
        at += len(own)
        now = utcnow()
        for chunk_id, s in entities:
            text = normalise_text(s.text)
            session.add(
                EntityRow(
                    tenant=doc.tenant,
                    document_id=doc.id,
                    chunk_id=chunk_id,
                    type=s.type,
                    text=text,
                    norm=fold_name(text)[:MAX_TEXT],
                    char_start=s.start,
                    char_end=s.end,
                    score=s.score,
                    model_id=model.id,
                    created_at=now,
                )
            )
        row = session.get(EntityExtraction, doc.id)
        if row is None:
            row = EntityExtraction(document_id=doc.id, tenant=doc.tenant)
            session.add(row)
        row.model_id, row.job_id, row.content_hash = model.id, job_id, doc.content_hash
        row.entities, row.extracted_at = len(entities), now
        report.entities += len(entities)
        for c in own:
            inside = [s for _, s in entities if c.char_start <= s.start and s.end <= c.char_end]
            fields = {
                "entities": sorted({entity_key(s.type, s.text) for s in inside}),
                "entity_text": sorted({normalise_text(s.text) for s in inside}),
            }
            actions.append({"_op_type": "update", "_index": index, "_id": c.id, "doc": fields})
    session.flush()
    report.es_failures = write_chunks(es, actions).failures
    return report


def extracted_documents(session: Session, job_id: str) -> int:
    return (
        session.scalar(select(func.count()).select_from(EntityExtraction).where(EntityExtraction.job_id == job_id)) or 0
    )


def record_batch(job: Job, report: ExtractReport, seconds: float) -> None:
    metrics = dict(job.metrics or {})
    run = {"documents": 0, "chunks": 0, "entities": 0, "seconds": 0.0, "real_tokens": 0, "padded_tokens": 0}
    run.update(metrics.get("extract", {}))
    run["documents"] += report.documents
    run["chunks"] += report.chunks
    run["entities"] += report.entities
    run["seconds"] = round(run["seconds"] + seconds, 3)
    run["real_tokens"] += report.padding.get("real_tokens", 0)
    run["padded_tokens"] += report.padding.get("padded_tokens", 0)
    metrics["extract"] = run
    metrics["es_failures"] = metrics.get("es_failures", 0) + len(report.es_failures)
    job.metrics = metrics


def finish(session: Session, job: Job) -> None:
    """Close the job: succeeded, or partial with the count of chunk updates Elasticsearch refused."""
    job.done = extracted_documents(session, job.id)
    failures = (job.metrics or {}).get("es_failures", 0)
    job.failed = failures
    job.state = JobState.PARTIAL if failures else JobState.SUCCEEDED
    if failures:
        job.error = f"{failures} chunk update(s) failed in Elasticsearch (chunks gone meanwhile?)"
    job.finished_at = job.heartbeat_at = utcnow()


def extract_next_batch(
    session: Session, es, job: Job, tagger: Tagger, cfg: ExtractSettings, encoder_for: EncoderFor
) -> list[Document] | None:
    """Tag the job's next documents and return them, or finish the job and return None."""
    opts = job.options
    index, index_model, index_encoder = search_target(session, cfg.index_prefix, cfg.encoder_path)
    docs = scope_documents(session, job.tenant, opts.get("source_job"), job.id, cfg.docs_per_batch)
    if not docs:
        finish(session, job)
        if job.done:
            refresh(es, index)  # entity filters and facets see the new fields from now on
        return None
    if not opts.get("mapped"):
        ensure_entity_fields(es, index)
        job.options = {**opts, "mapped": index}
    model = session.get(ModelRecord, opts["model_id"])
    if model is None:
        raise PermanentError(f"model {opts['model_id']} was deleted while the job ran")
    encoder = encoder_for(index_model, index_encoder) if tagger.needs_neighbours else None
    started, before = time.perf_counter(), job.done
    report = extract_documents(session, es, index, tagger, model, docs, job.id, encoder, cfg.allow_undated_neighbours)
    record_batch(job, report, time.perf_counter() - started)
    job.done, job.heartbeat_at = extracted_documents(session, job.id), utcnow()
    if job.done == before:  # nothing recorded: the same batch would come back forever
        raise PermanentError(f"{len(docs)} document(s) could not be tagged (chunks missing in SQL)")
    return docs
