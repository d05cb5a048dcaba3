"""The ingest use case: read → clean → dedup → chunk into SQL, then embed → index into Elasticsearch.

Functions here get an open session and clients from their caller (a Celery task or the benchmark);
they never open sessions, commit, or know about queues.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from elastic_transport import TransportError
from elasticsearch import ApiError
from sqlalchemy import select
from sqlalchemy.exc import DataError, SQLAlchemyError
from sqlalchemy.orm import Session

from pipeline.chunk import Chunker
from pipeline.clean import clean
from pipeline.config import DedupSettings, defaults
from pipeline.dedup import Deduplicator, content_hash
from pipeline.embed import Encoder
from pipeline.encoders.token_ids import pack as pack_ids
from pipeline.encoders.token_ids import tokenizer_info
from pipeline.encoders.token_ids import unpack as unpack_ids
from pipeline.errors import Reason, RetryableError, as_input_error
from pipeline.formats import read_path
from pipeline.formats.files import source_of
from pipeline.index import chunk_action, chunk_source, delete_stale_chunks, write_chunks
from pipeline.jobs.stats import JobStats, StageRecorder, add_job_stats
from pipeline.language import detect_language, tenant_language
from pipeline.metadata import check_metadata, path_parts
from pipeline.store import repo
from pipeline.store.dedupstore import SqlDedupStore, is_canonical, pack_signature
from pipeline.store.models import Chunk, Document, DocumentStatus, Job, JobDocument, JobFile, Outcome
from pipeline.types import CleanDocument, RawDocument, Rejected, chunk_id, document_id, utcnow

# the dedup stage's drop reason for a document whose text is the one already indexed or held as a duplicate
UNCHANGED = "unchanged"


@dataclass
class ReadSteps:
    """What the ingest queue needs: chunking and dedup settings (the tokenizer stays loaded)."""

    chunker: Chunker
    max_file_bytes: int
    dedup: DedupSettings = field(default_factory=lambda: defaults(DedupSettings))
    # A part of a file ends after this many items or seconds (0: no bound), at an item's boundary: the caller
    # commits each part, so a crash or a time limit costs one part of a large JSON, JSONL or CSV file, not all of it.
    part_items: int = 0
    part_seconds: float = 0.0

    def part_ended(self, items: int, began: float) -> bool:
        """Whether a part that stored `items` items since `began` (time.monotonic) ends; never before its first."""
        return items > 0 and bool(
            (self.part_items and items >= self.part_items)
            or (self.part_seconds and time.monotonic() - began >= self.part_seconds)
        )

    def deduplicator(self, session: Session) -> Deduplicator:
        return Deduplicator(
            SqlDedupStore(session),
            threshold=self.dedup.threshold,
            num_perm=self.dedup.minhash_perms,
            shingle_words=self.dedup.shingle_words,
        )


class FileItems:
    """The items (documents and refusals) of one file in order, read once across the parts a caller commits one by
    one; `position` counts those taken. A reader opened after `skip` items passes over (does not store) the items
    stored before a part, and does not even read an archive's members among them that hold one item each."""

    def __init__(self, path: str, max_bytes: int, skip: int = 0):
        self.path, self.position = path, skip
        self._items = iter(read_path(Path(path), max_bytes, skip=skip))

    def take(self) -> RawDocument | Rejected | None:
        item = next(self._items, None)
        self.position += item is not None
        return item


def read_file(
    session: Session,
    job: Job,
    jobfile: JobFile,
    steps: ReadSteps,
    es=None,
    alias: str = "",
    items: FileItems | None = None,
) -> JobStats:
    """Turn the next part of one input file into document rows with chunks, outcomes and dead letters; the part's
    read, clean, dedup and chunk accounts are added to the job's and returned.

    A part begins after the `jobfile.read_items` items stored before and ends where `steps.part_ended` says: the
    file stays pending with `read_items` moved on (the caller commits, then reads the next part with the same
    `items`), or is done. `items`: the file's reader left where the previous part ended; None opens one."""
    recorder = StageRecorder()
    dedup = steps.deduplicator(session)
    fixed_language = tenant_language(session, job.tenant)  # None: each document's own is detected
    folders = path_parts(job.inputs or [], jobfile.path)  # metadata `path`: the folders below the one ingested
    given = (job.options or {}).get("metadata") or {}
    t = recorder.mark()
    if items is None or items.path != jobfile.path or items.position != jobfile.read_items:
        items = FileItems(jobfile.path, steps.max_file_bytes, skip=jobfile.read_items)
    began, stored = time.monotonic(), 0
    while not steps.part_ended(stored, began):
        item = items.take()
        t = recorder.lap("read", t)
        if item is None:
            jobfile.status = "done"
            break
        stored += 1
        if isinstance(item, Rejected):
            recorder["read"].drop(item.reason)
            repo.add_dead_letter(session, job, item, jobfile.path)
            continue
        recorder["read"].passed()
        if folders:
            item.metadata.setdefault("path", folders)
        for key, value in given.items():  # an upload's form metadata fills what the file does not say itself
            item.metadata.setdefault(key, value)
        cleaned = _clean(item)
        t = recorder.lap("clean", t)
        if isinstance(cleaned, Rejected):
            recorder["clean"].drop(cleaned.reason)
            repo.add_dead_letter(session, job, cleaned, jobfile.path)
            continue
        recorder["clean"].passed()
        cleaned.language = fixed_language or cleaned.language
        _store_document(session, job, jobfile, cleaned, steps, dedup, es, alias, recorder)
        t = recorder.mark()
    jobfile.read_items = items.position
    if jobfile.status == "done":
        jobfile.records = items.position
    add_job_stats(session, job.id, recorder.stats)
    return recorder.stats


def _clean(item: RawDocument) -> CleanDocument | Rejected:
    try:
        cleaned = clean(item)
        if isinstance(cleaned, CleanDocument):
            # normal form and limits (docs/metadata.md): over-limit metadata is this item's dead letter
            cleaned.metadata = check_metadata(cleaned.metadata)
        return cleaned
    except Exception as exc:  # noqa: BLE001 - markup parsers' failures are this record's dead letter
        error = as_input_error(exc)
        return Rejected(item.source, "clean", error.reason.value, error.message)


def is_infrastructure(exc: BaseException) -> bool:
    """Whether `exc` is a failure of a service the read uses (the database, Elasticsearch), not of the file:
    the task retries those; anything else that escapes a file's read becomes that file's dead letter."""
    if isinstance(exc, DataError):
        return False  # the database refused a value taken from this file
    return isinstance(exc, (RetryableError, SQLAlchemyError, ApiError, TransportError, ConnectionError, TimeoutError))


def reject_file(session: Session, job: Job, file_id: int, exc: BaseException) -> JobStats | None:
    """The last resort of read_file: `exc` escaped the read of one file, whose transaction was rolled back. In a
    fresh transaction the file becomes one dead letter with the exception's reason, and is done; the job goes on.
    None when the file is not this job's pending file (another task finished it meanwhile)."""
    jobfile = session.get(JobFile, file_id)
    if jobfile is None or jobfile.job_id != job.id or jobfile.status != "pending":
        return None
    error = as_input_error(exc)
    source = source_of(Path(jobfile.path))  # the source read_path gives the file's own rejections
    repo.add_dead_letter(session, job, Rejected(source, "read", error.reason.value, error.message), jobfile.path)
    recorder = StageRecorder()
    recorder["read"].drop(error.reason.value)
    jobfile.status = "done"
    add_job_stats(session, job.id, recorder.stats)
    return recorder.stats


def _store_document(
    session: Session,
    job: Job,
    jobfile: JobFile,
    item: CleanDocument,
    steps: ReadSteps,
    dedup: Deduplicator,
    es,
    alias: str,
    recorder: StageRecorder,
) -> None:
    # One flush per document, at the end: no query here needs this document's own pending row, and
    # autoflushing before each of them cost more than the queries.
    with session.no_autoflush:
        _place_document(session, job, jobfile, item, steps, dedup, es, alias, recorder)
        session.flush()


def _duplicates_a_canonical(session: Session, doc: Document) -> bool:
    """A duplicate stays one while its original is indexed or being indexed; one whose original a failed or
    cancelled job left unindexed (or that was deleted) is checked again and may become the original itself."""
    return (
        doc.status == DocumentStatus.DUPLICATE
        and doc.duplicate_of is not None
        and is_canonical(session, doc.duplicate_of)
    )


def _repeated_identity(
    session: Session,
    job: Job,
    jobfile: JobFile,
    item: CleanDocument,
    doc: Document | None,
    digest: str,
    first: JobDocument,
    recorder: StageRecorder,
) -> None:
    """A record whose url or id a record read before in this job already has. The same text again is that
    record repeated (dropped as `repeated`); another text is a `duplicate_id` dead letter, so that the first
    record's text stays and the job says that the second was not taken."""
    if doc is not None and doc.content_hash == digest:
        recorder["dedup"].drop("repeated")
        return
    recorder["dedup"].drop(Reason.DUPLICATE_ID.value)
    earlier = session.get(JobFile, first.file_id) if first.file_id is not None else None
    where = f" (read from {earlier.path})" if earlier is not None else ""
    detail = (
        f"url/id {item.source!r} already names another record of this job{where}: give each record its own "
        "url or id, or ingest the newer version in a job of its own to replace the older"
    )
    rejected = Rejected(item.origin or item.source, "dedup", Reason.DUPLICATE_ID.value, detail)
    repo.add_dead_letter(session, job, rejected, jobfile.path)


def _place_document(
    session: Session,
    job: Job,
    jobfile: JobFile,
    item: CleanDocument,
    steps: ReadSteps,
    dedup: Deduplicator,
    es,
    alias: str,
    recorder: StageRecorder,
) -> None:
    t = recorder.mark()
    doc_id = document_id(job.tenant, item.source)
    doc = session.get(Document, doc_id)
    digest = content_hash(item.text)
    first = session.get(JobDocument, (job.id, doc_id))
    if first is not None:  # another record of this job has this identity: neither may silently replace the other
        _repeated_identity(session, job, jobfile, item, doc, digest, first, recorder)
        recorder.lap("dedup", t)
        return
    if (
        doc is not None
        and doc.content_hash == digest
        and (doc.status == DocumentStatus.INDEXED or _duplicates_a_canonical(session, doc))
    ):
        repo.add_outcome(session, job.id, doc_id, Outcome.UNCHANGED, jobfile.id)
        recorder.lap("dedup", t)
        recorder["dedup"].drop(UNCHANGED)
        return
    verdict = dedup.check(job.tenant, doc_id, item.text)
    t = recorder.lap("dedup", t)
    if verdict.duplicate_of:
        recorder["dedup"].drop(f"{verdict.kind}_duplicate")
    else:
        recorder["dedup"].passed()
    new = doc is None
    if doc is None:
        doc = Document(
            id=doc_id,
            tenant=job.tenant,
            source=item.source,
            status=DocumentStatus.CHUNKED,
            cluster_id=doc_id,
            created_at=utcnow(),
        )
        session.add(doc)
    was_indexed = doc.indexed_hash
    doc.content_type, doc.title, doc.published = item.content_type, item.title, item.published
    doc.text, doc.meta, doc.content_hash = item.text, _jsonable(item.metadata), verdict.content_hash
    doc.signature = pack_signature(verdict.signature)
    doc.language = item.language or detect_language(item.text)
    doc.page_starts = item.page_starts
    doc.last_job_id = job.id
    if not new:  # a new document has no chunk rows yet (they reference it)
        repo.drop_chunks(session, [doc_id])
    if verdict.duplicate_of:
        doc.status, doc.duplicate_of, doc.duplicate_kind = DocumentStatus.DUPLICATE, verdict.duplicate_of, verdict.kind
        doc.similarity, doc.chunk_count = verdict.similarity, 0
        doc.cluster_id = verdict.cluster_id or verdict.duplicate_of
        dedup.store.remove(job.tenant, doc_id)
        if was_indexed and es is not None:
            delete_stale_chunks(es, alias, job.tenant, doc_id, None)  # it now duplicates another doc
            doc.indexed_hash = None
        repo.add_outcome(session, job.id, doc_id, Outcome.DUPLICATE, jobfile.id)
        return
    doc.status, doc.duplicate_of, doc.duplicate_kind, doc.similarity = DocumentStatus.CHUNKED, None, None, None
    doc.cluster_id = verdict.cluster_id or doc_id
    dedup.register(job.tenant, doc_id, verdict)
    spans = steps.chunker.chunk(item.text, doc.language)
    tag = tokenizer_info(steps.chunker.tokenizer).tag if steps.chunker.keeps_ids else b""
    doc.chunk_count = len(spans)
    repo.add_outcome(session, job.id, doc_id, Outcome.PENDING, jobfile.id)
    session.flush()  # the chunk rows below reference the document row
    repo.add_chunks(
        session,
        [
            {
                "id": chunk_id(job.tenant, doc_id, s.ordinal),
                "document_id": doc_id,
                "ordinal": s.ordinal,
                "char_start": s.start,
                "char_end": s.end,
                "token_count": s.token_count,
                # tokenise once: the gpu queue feeds these to the model instead of tokenising the text again
                "token_ids": pack_ids(s.token_ids, tag) if tag and s.token_ids is not None else None,
            }
            for s in spans
        ],
    )
    recorder.lap("chunk", t)
    recorder["chunk"].items_in += 1
    recorder["chunk"].items_out += len(spans)


@dataclass
class Embedded:
    """Vectors computed before the indexing transaction, so that no SQL lock is held while the model runs; keyed
    by what each was computed from (chunk id, character span, the document's content hash)."""

    vectors: dict[tuple[str, int, int, str], np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0
    encoder: str = ""  # which model and backend computed them: vectors of another are never used


def _chunk_key(doc: Document, chunk) -> tuple[str, int, int, str]:
    return (chunk.id, chunk.char_start, chunk.char_end, doc.content_hash or "")


ChunkItem = tuple[tuple[str, int, int, str], str, bytes | None]  # (key, text, stored token ids)


def chunk_texts(session: Session, docs: list[Document]) -> list[ChunkItem]:
    """(key, text, token ids) of every chunk of `docs`, read now so that embed_ahead can run with no transaction
    open."""
    chunks = repo.chunk_rows(session, [d.id for d in docs])
    blobs = _token_blobs(session, [d.id for d in docs])
    return [(_chunk_key(d, c), d.text[c.char_start : c.char_end], blobs.get(c.id)) for d in docs for c in chunks[d.id]]


def _token_blobs(session: Session, doc_ids: list[str]) -> dict[str, bytes]:
    """The token ids chunking stored for the documents' chunks (rows written before it stored them have none)."""
    rows = session.execute(
        select(Chunk.id, Chunk.token_ids).where(Chunk.document_id.in_(doc_ids), Chunk.token_ids.is_not(None))
    )
    return {row.id: row.token_ids for row in rows}


def _encode(encoder: Encoder, texts: list[str], blobs: list[bytes | None]) -> np.ndarray:
    """The texts' vectors; chunks whose stored ids come from the encoder's own tokenizer are not tokenised again."""
    tag = getattr(encoder, "token_tag", None) if any(blobs) else None  # an encoder without one takes texts
    ids = [unpack_ids(blob, tag) for blob in blobs] if tag else []
    if any(row is not None for row in ids):
        return encoder.encode(texts, ids)
    return encoder.encode(texts)


def embed_ahead(encoder: Encoder, items: list[ChunkItem]) -> Embedded:
    """Embed chunk texts read by chunk_texts; index_documents then uses the vectors of chunks still unchanged."""
    started = time.perf_counter()
    texts, blobs = [text for _, text, _ in items], [blob for _, _, blob in items]
    vectors = _encode(encoder, texts, blobs) if items else np.zeros((0, 0), dtype=np.float32)
    vectors_of = {key: vectors[i] for i, (key, _, _) in enumerate(items)}
    return Embedded(vectors_of, time.perf_counter() - started, _identity(encoder))


def _identity(encoder: Encoder) -> str:
    return f"{getattr(encoder, 'model_path', '')}|{getattr(encoder, 'variant', 'torch')}"


def _vectors(
    encoder: Encoder,
    keys: list,
    texts: list[str],
    ahead: Embedded | None,
    stored_ids: Callable[[], dict[str, bytes]] | None = None,
) -> np.ndarray:
    """Vectors of ahead where they were computed from the same chunk text, the rest embedded now (from the token
    ids stored_ids() gives per chunk id, where there are any)."""
    known = ahead.vectors if ahead is not None and ahead.encoder == _identity(encoder) else {}
    missing = [i for i, key in enumerate(keys) if key not in known]
    blobs = stored_ids() if missing and stored_ids is not None else {}
    if len(missing) == len(keys):
        return _encode(encoder, texts, [blobs.get(key[0]) for key in keys])
    fresh = iter(
        _encode(encoder, [texts[i] for i in missing], [blobs.get(keys[i][0]) for i in missing]) if missing else []
    )
    return np.stack([known[key] if key in known else next(fresh) for key in keys]).astype(np.float32, copy=False)


def index_documents(
    session: Session,
    job: Job,
    docs: list[Document],
    encoder: Encoder,
    es,
    alias: str,
    bulk_chunk_size: int = 500,
    max_retries: int = 5,
    last_try: bool = False,
    ahead: Embedded | None = None,
) -> JobStats:
    """Embed the documents' chunks and upsert them; per-item failures become dead letters. The batch's
    embed and index accounts are added to the job's and returned. On the task's `last_try`, chunks still
    refused with 429/5xx after every retry dead-letter their documents too, instead of failing the job.
    Vectors of `ahead` (embed_ahead) are used for the chunks whose text they were computed from."""
    recorder = StageRecorder()
    t = recorder.mark()
    chunks = repo.chunk_rows(session, [d.id for d in docs])
    keys = [_chunk_key(d, c) for d in docs for c in chunks[d.id]]
    texts = [d.text[c.char_start : c.char_end] for d in docs for c in chunks[d.id]]
    vectors = _vectors(encoder, keys, texts, ahead, lambda: _token_blobs(session, [d.id for d in docs]))
    t = recorder.lap("embed", t)
    if ahead is not None and ahead.vectors and ahead.encoder == _identity(encoder):
        recorder["embed"].seconds += ahead.seconds  # the model's time, spent before this transaction began
    recorder["embed"].items_in += len(texts)
    recorder["embed"].items_out += len(vectors)
    actions, row = [], 0
    now = utcnow().isoformat()
    for d in docs:
        for c in chunks[d.id]:
            actions.append(
                chunk_action(
                    alias,
                    {
                        **chunk_source(d, c.ordinal, c.char_start, c.char_end, texts[row], vectors[row], now),
                        "chunk_id": c.id,
                    },
                )
            )
            row += 1
    report = write_chunks(es, actions, chunk_size=bulk_chunk_size, max_retries=max_retries, give_up_retryable=last_try)
    failed: dict[str, str] = {}
    for failure in report.failures:
        failed.setdefault(failure["_id"].rsplit("-", 1)[0], f"{failure.get('status')}: {failure.get('error')}")
    for d in docs:
        if d.id in failed:
            delete_stale_chunks(es, alias, d.tenant, d.id, None)  # no half-indexed document stays behind
            d.status, d.indexed_hash = DocumentStatus.FAILED, None
            repo.add_dead_letter(
                session,
                job,
                Rejected(d.source, "index", Reason.INDEX_REJECTED, f"Elasticsearch rejected a chunk: {failed[d.id]}"),
                None,
            )
            repo.set_outcome(session, job.id, d.id, Outcome.FAILED)
            recorder["index"].drop(Reason.INDEX_REJECTED, len(chunks[d.id]))
            continue
        if d.indexed_hash and d.indexed_hash != d.content_hash:
            delete_stale_chunks(es, alias, d.tenant, d.id, d.content_hash)
        d.status, d.indexed_hash = DocumentStatus.INDEXED, d.content_hash
        repo.set_outcome(session, job.id, d.id, Outcome.INDEXED)
        recorder["index"].passed(len(chunks[d.id]))
    recorder.lap("index", t)
    add_job_stats(session, job.id, recorder.stats)
    return recorder.stats


def _jsonable(meta: dict) -> dict:
    return {
        k: (v.isoformat() if isinstance(v, datetime) else v)
        for k, v in (meta or {}).items()
        if isinstance(v, (str, int, float, bool, datetime, list)) or v is None  # lists: checked by check_metadata
    }
