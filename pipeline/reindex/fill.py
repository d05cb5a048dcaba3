"""Writing documents into (and out of) a version under construction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, cast

import numpy as np
from elasticsearch import Elasticsearch
from sqlalchemy import Table, and_, bindparam, select, update
from sqlalchemy.orm import Session

from pipeline.errors import PermanentError
from pipeline.index import chunk_action, chunk_source, refresh, write_chunks
from pipeline.index.guard import guard
from pipeline.reindex import ledger
from pipeline.reindex.config import configured_encoder
from pipeline.reindex.live import indexed_variant
from pipeline.store import repo
from pipeline.store.models import Document, IndexVersion
from pipeline.store.models_monitor import ReindexLedger
from pipeline.types import chunk_id, utcnow

if TYPE_CHECKING:
    from pipeline.chunk import Chunker
    from pipeline.embed import Encoder
    from pipeline.index import IndexLayout


@dataclass
class Tools:
    """What a build needs from its process: clients, loaded models (cached there) and sizes."""

    layout: IndexLayout
    encoder_for: Callable[[str, str], Encoder]  # model path, encoder variant -> its encoder
    chunker_for: Callable[[str, int, int], Chunker]  # model path, tokens, overlap -> a chunker
    default_model: str  # settings.encoder_path: a version that records no model was made with it
    default_tokens: int
    default_overlap: int
    configured_model: str | None = None  # DOCPIPE_ENCODER_MODEL when set: the model a reindex converges to
    # the variant DOCPIPE_ENCODER_* name: what a reindex builds with (and see variant_of)
    default_encoder: str = field(default_factory=configured_encoder)
    batch_docs: int = 64
    bulk_chunk_size: int = 500
    bulk_max_retries: int = 5
    keep_retired: int = 2
    clock_skew_seconds: float = 120.0

    @property
    def es(self) -> Elasticsearch:
        return self.layout.es

    def model_of(self, row: IndexVersion) -> tuple[str, int, int]:
        return (
            row.model_path or self.default_model,
            row.chunk_tokens or self.default_tokens,
            row.chunk_overlap if row.chunk_overlap is not None else self.default_overlap,
        )

    def variant_of(self, row: IndexVersion) -> str:
        """The variant `row` records; a row from before migration 0020 has its index's, or the settings'."""
        return row.encoder or indexed_variant(self.layout, row.name) or self.default_encoder

    def encoder_of(self, row: IndexVersion) -> Encoder:
        """The encoder that computes `row`'s vectors: its model, run as the variant it records."""
        return self.encoder_for(self.model_of(row)[0], self.variant_of(row))


def write_documents(session: Session, tools: Tools, build: IndexVersion, docs: list[Document], keep_spans: bool) -> int:
    """Chunk, embed and upsert the documents into the build; return the chunks written."""
    if not docs:
        return 0
    model_path, tokens, overlap = tools.model_of(build)
    chunker = tools.chunker_for(model_path, tokens, overlap)
    spans = chunker.chunk_many([d.text for d in docs], [d.language for d in docs])
    texts = [d.text[s.start : s.end] for d, doc_spans in zip(docs, spans) for s in doc_spans]
    vectors = encode_spans(tools.encoder_of(build), chunker, texts, [s for ds in spans for s in ds])
    labels = _labels(session, docs)
    now, actions, row = utcnow().isoformat(), [], 0
    for d, doc_spans in zip(docs, spans):
        for s in doc_spans:
            actions.append(
                chunk_action(
                    build.name,
                    {
                        **chunk_source(
                            d, s.ordinal, s.start, s.end, texts[row], vectors[row], now, ledger.held_hash(d)
                        ),
                        **labels.get(d.id, {}),
                    },
                )
            )
            row += 1
    _write(tools, build, actions, "")
    _drop_stale(tools.es, build.name, docs)
    ledger.record(
        session,
        build.name,
        [
            (d.id, ledger.held_hash(d), [[s.start, s.end, s.token_count] for s in doc_spans] if keep_spans else None)
            for d, doc_spans in zip(docs, spans)
        ],
    )
    return len(actions)


def encode_spans(encoder: Encoder, chunker: Chunker, texts: list[str], spans: list) -> np.ndarray:
    """The chunks' vectors, fed the token ids chunking kept (tokenise once, as ingest does) when the encoder's
    tokenizer is the chunker's (same tag); otherwise from the texts."""
    from pipeline.encoders.token_ids import tokenizer_info

    ids = [s.token_ids for s in spans]
    tag = getattr(encoder, "token_tag", None)
    if chunker.keeps_ids and tag is not None and tag == tokenizer_info(chunker.tokenizer).tag:
        return encoder.encode(texts, ids)
    return encoder.encode(texts)


def _labels(session: Session, docs: list[Document]) -> dict[str, dict]:
    """The classifier labels the ml feature mirrors onto chunks, from its SQL predictions: a rebuilt
    chunk keeps the label its document has for its current text (the latest classification wins,
    as it does on the chunks themselves)."""
    from pipeline.store.models_ml import Prediction

    held = {d.id: ledger.held_hash(d) for d in docs}
    out: dict[str, dict] = {}
    for p in session.scalars(
        select(Prediction).where(Prediction.document_id.in_(list(held))).order_by(Prediction.created_at)
    ):
        if p.content_hash == held[p.document_id]:
            out[p.document_id] = {
                "label": p.label,
                "label_scores": p.scores,
                "label_task": p.task,
                "label_model": p.model_id,
            }
    return out


def catch_up_labels(session: Session, tools: Tools, build: IndexVersion, job) -> int:
    """Put on the build's chunks the labels predicted since the last call (the first: since the build
    began); returns the chunks updated.

    A classify job that runs while a version is built writes its labels into the live version and
    SQL only: documents the build copied or wrote before then would swap in with their old labels.
    The window reaches back by the clock skew allowance, so a prediction whose transaction committed
    after the previous look (its time is taken before the commit) is not missed; updates are idempotent.
    """
    started = utcnow()
    mark = (job.options or {}).get("labels_since")
    since = datetime.fromisoformat(mark) if mark else build.created_at
    since = (since if since.tzinfo else since.replace(tzinfo=UTC)) - timedelta(seconds=tools.clock_skew_seconds)
    updated = _relabel(session, tools, build, since)
    job.options = {**(job.options or {}), "labels_since": started.isoformat()}  # reassigned: JSON columns
    return updated


def _relabel(session: Session, tools: Tools, build: IndexVersion, since: datetime, batch: int = 500) -> int:
    from pipeline.store.models_ml import Prediction

    held = and_(
        ReindexLedger.index_name == build.name,
        ReindexLedger.document_id == Document.id,
        ReindexLedger.content_hash == ledger.HELD_HASH,
    )  # a document held with another text is rewritten
    recent = select(Prediction.document_id).where(Prediction.created_at >= since)
    after, updated = "", 0
    while True:
        rows = session.execute(
            select(Document, ReindexLedger.spans)
            .join(ReindexLedger, held)
            .where(Document.status == ledger.INDEXED, Document.id.in_(recent), Document.id > after)
            .order_by(Document.id)
            .limit(batch)
        ).all()
        if not rows:
            return updated
        after = rows[-1][0].id
        labels = _labels(session, [d for d, _ in rows])
        actions = []
        for d, spans in rows:
            if d.id in labels:
                # spans are recorded when the build chunks anew; otherwise SQL's chunk rows are its chunks
                chunks = len(spans) if spans is not None else d.chunk_count
                actions += [
                    {
                        "_op_type": "update",
                        "_index": build.name,
                        "_id": chunk_id(d.tenant, d.id, ordinal),
                        "doc": labels[d.id],
                    }
                    for ordinal in range(chunks)
                ]
        _write(tools, build, actions, "the labels of ")
        updated += len(actions)


def _write(tools: Tools, build: IndexVersion, actions: list[dict], what: str) -> None:
    report = write_chunks(tools.es, actions, chunk_size=tools.bulk_chunk_size, max_retries=tools.bulk_max_retries)
    if report.failures:
        first = report.failures[0]
        # Retrying would meet the same refusal: the job fails and says why; fix, then resume or discard.
        raise PermanentError(
            f"{build.name} refused {what}{len(report.failures)} chunk(s), e.g. {first['_id']}: "
            f"{first['error']['type']}: {first['error']['reason']}"
        )


def _drop_stale(es: Elasticsearch, index: str, docs: list[Document]) -> None:
    """Remove chunks of an older text of these documents (a rewrite with fewer chunks, a rollback
    target that held an earlier edit): one delete for the batch, keeping each document's hash."""
    refresh(es, index)
    query = {
        "bool": {
            "minimum_should_match": 1,
            "should": [
                {
                    "bool": {
                        "filter": [{"term": {"doc_id": d.id}}],
                        "must_not": [{"term": {"content_hash": ledger.held_hash(d)}}],
                    }
                }
                for d in docs
            ],
        }
    }
    with guard(f"delete stale chunks in {index}"):
        es.delete_by_query(index=index, query=query, refresh=True, conflicts="proceed")


def drop_documents(session: Session, tools: Tools, build: IndexVersion, doc_ids: list[str]) -> None:
    """Remove documents that stopped being indexed (duplicate, deleted) from the build."""
    if not doc_ids:
        return
    refresh(tools.es, build.name)
    with guard(f"delete documents from {build.name}"):
        tools.es.delete_by_query(
            index=build.name, query={"terms": {"doc_id": doc_ids}}, refresh=True, conflicts="proceed"
        )
    ledger.forget(session, build.name, doc_ids)


def copy_live(session: Session, tools: Tools, build: IndexVersion, source: str) -> None:
    """Same model and chunking: copy the vectors with Elasticsearch's _reindex instead of embedding.

    The ledger gets the documents' hashes as SQL had them before the copy started; a document
    edited while the copy ran then differs from its row and is written again by the catch-up.
    """
    before = session.execute(select(Document.id, ledger.HELD_HASH).where(Document.status == ledger.INDEXED)).all()
    with guard(f"_reindex {source} into {build.name}"):
        resp = tools.es.options(request_timeout=3600).reindex(
            source={"index": source},
            dest={"index": build.name, "op_type": "index"},
            wait_for_completion=True,
            refresh=True,
            conflicts="proceed",
        )
    if resp.get("failures"):
        raise PermanentError(
            f"_reindex into {build.name} failed for {len(resp['failures'])} chunk(s): {resp['failures'][0]}"
        )
    for i in range(0, len(before), 1000):
        ledger.record(session, build.name, [(d, h, None) for d, h in before[i : i + 1000]])


def rewrite_chunk_rows(session: Session, index_name: str) -> int:
    """Make the SQL chunk rows those of the build (it changed chunking); returns the documents done.

    `updated_at` is set to itself: re-describing chunks is not a change of the document, and a
    later rollback tells changed documents by that column.
    """
    table, done = cast(Table, Document.__table__), 0
    for rows in ledger.with_spans(session, index_name):
        rows = [(doc_id, spans) for doc_id, spans in rows if spans is not None]
        if not rows:
            continue
        ids = [doc_id for doc_id, _ in rows]
        repo.drop_chunks(session, ids)
        repo.add_chunks(
            session,
            [
                {
                    "id": chunk_id("", doc_id, i),
                    "document_id": doc_id,
                    "ordinal": i,
                    "char_start": a,
                    "char_end": b,
                    "token_count": n,
                }
                for doc_id, spans in rows
                for i, (a, b, n) in enumerate(spans)
            ],
        )
        session.execute(
            update(table)
            .where(table.c.id == bindparam("doc"))
            .values(chunk_count=bindparam("n"), updated_at=table.c.updated_at),
            [{"doc": doc_id, "n": len(spans)} for doc_id, spans in rows],
        )
        done += len(rows)
    return done
