"""SQL schema (SQLAlchemy 2.0 typed models). Alembic migrations in migrations/ must match it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pipeline.types import utcnow


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True), dict: JSON, list: JSON}


class JobState:
    QUEUED, RUNNING, SUCCEEDED, PARTIAL, FAILED, CANCELLED = (
        "queued",
        "running",
        "succeeded",
        "partial",
        "failed",
        "cancelled",
    )
    FINAL = frozenset({SUCCEEDED, PARTIAL, FAILED, CANCELLED})
    ALL = (QUEUED, RUNNING, SUCCEEDED, PARTIAL, FAILED, CANCELLED)


class DocumentStatus(StrEnum):
    """Where a stored document stands: chunked, then indexed; or a duplicate (never indexed), failed (the
    index refused it), pending (a folder sync asks for it to be read again) or deleted (gone from its source)."""

    PENDING = "pending"
    CHUNKED = "chunked"
    INDEXED = "indexed"
    DUPLICATE = "duplicate"
    FAILED = "failed"
    DELETED = "deleted"


class Outcome:
    """What a job did with one document."""

    PENDING, INDEXED, UNCHANGED, DUPLICATE, FAILED = "pending", "indexed", "unchanged", "duplicate", "failed"


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(32), default="ingest")
    state: Mapped[str] = mapped_column(String(16), index=True, default=JobState.QUEUED)
    inputs: Mapped[list] = mapped_column(default=list)
    options: Mapped[dict] = mapped_column(default=dict)
    total: Mapped[int] = mapped_column(default=0)
    done: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    chunks: Mapped[int] = mapped_column(default=0)
    metrics: Mapped[dict] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    # the worker (host:pid) that holds a long-running job, and until when its lease runs without a heartbeat
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]

    def counters(self) -> dict[str, int]:
        """The job's counters by name, as every record and log line of the job shows them."""
        return {name: getattr(self, name) for name in ("total", "done", "unchanged", "skipped", "failed", "chunks")}


class JobStage(Base):
    """One stage's accounts for a job, summed over all its batches (pipeline/jobs/stats.py adds to them)."""

    __tablename__ = "job_stages"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    stage: Mapped[str] = mapped_column(String(16), primary_key=True)
    seconds: Mapped[float] = mapped_column(default=0.0)
    items_in: Mapped[int] = mapped_column(default=0)
    items_out: Mapped[int] = mapped_column(default=0)
    dropped: Mapped[dict] = mapped_column(default=dict)  # reason code -> items dropped for it


class JobFile(Base):
    """One input file of a job; `status` says whether its records were read."""

    __tablename__ = "job_files"
    __table_args__ = (UniqueConstraint("job_id", "path"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(2048))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    records: Mapped[int] = mapped_column(default=0)
    # items (records and refused records) already stored, in the same commits as their documents: a multi-record
    # file is read in parts, and a task that takes it again goes on after them (migration 0021)
    read_items: Mapped[int] = mapped_column(default=0)
    # Ownership (migration 0009): the task process (host:pid) reading the file, or indexing its documents once
    # read, and since when; reclaimed when that process's heartbeat stops (pipeline/jobs/reclaim.py).
    owner: Mapped[str | None] = mapped_column(String(200), index=True)
    claimed_at: Mapped[datetime | None]
    # how many times a task began reading the file / indexing its documents without finishing (poison control)
    deliveries: Mapped[int] = mapped_column(default=0)
    index_deliveries: Mapped[int] = mapped_column(default=0)


class WorkerBeat(Base):
    """A task process's heartbeat: its work is reclaimed once `seen_at` is older than the heartbeat TTL."""

    __tablename__ = "worker_beats"
    worker: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid
    name: Mapped[str] = mapped_column(String(200), default="")  # the Celery node it belongs to
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("tenant", "source"),
        Index("ix_documents_tenant_hash", "tenant", "content_hash"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(2048))
    content_type: Mapped[str] = mapped_column(String(16))
    title: Mapped[str | None] = mapped_column(Text)
    published: Mapped[datetime | None]
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict] = mapped_column(default=dict)
    content_hash: Mapped[str] = mapped_column(String(64))
    signature: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), index=True)  # a DocumentStatus
    duplicate_of: Mapped[str | None] = mapped_column(String(32))
    duplicate_kind: Mapped[str | None] = mapped_column(String(8))
    similarity: Mapped[float | None]
    cluster_id: Mapped[str] = mapped_column(String(32), index=True)
    chunk_count: Mapped[int] = mapped_column(default=0)
    # content hash whose chunks are in Elasticsearch; differs from content_hash while re-indexing
    indexed_hash: Mapped[str | None] = mapped_column(String(64))
    last_job_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # migration 0013: ISO 639-1 code, detected or fixed by the tenant (pipeline/language.py); None when unknown
    language: Mapped[str | None] = mapped_column(String(8))
    # where page n+1 starts in `text` (PDFs only): chunks know their pages from it (pipeline/chunk.py pages_of)
    page_starts: Mapped[list | None]


class Chunk(Base):
    __tablename__ = "chunks"
    id: Mapped[str] = mapped_column(String(48), primary_key=True)  # Elasticsearch _id
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    ordinal: Mapped[int]
    char_start: Mapped[int]
    char_end: Mapped[int]
    token_count: Mapped[int]
    # the chunk's content token ids, kept by chunking so the gpu queue need not tokenise again (tokenise once;
    # layout in pipeline/encoders/token_ids.py); None for rows written before, or by a tokenizer that cannot keep them
    token_ids: Mapped[bytes | None] = mapped_column(LargeBinary)


class JobDocument(Base):
    __tablename__ = "job_documents"
    # a job's counters group its rows by outcome, and whether it is done counts its pending ones (repo.py)
    __table_args__ = (Index("ix_job_documents_job_outcome", "job_id", "outcome"),)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    document_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # the job_files row it was read from: the embed task picks up a file's documents by it
    file_id: Mapped[int | None] = mapped_column(index=True)
    outcome: Mapped[str] = mapped_column(String(16), default=Outcome.PENDING)


class LshBucket(Base):
    """Persistent MinHash LSH: a canonical document's key in each band, per tenant."""

    __tablename__ = "lsh_buckets"
    tenant: Mapped[str] = mapped_column(String(128), primary_key=True)
    band: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[str] = mapped_column(String(32), primary_key=True)
    document_id: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)


class DeadLetter(Base):
    __tablename__ = "dead_letters"
    __table_args__ = (UniqueConstraint("job_id", "source", "stage"),)
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    tenant: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(2048))
    path: Mapped[str | None] = mapped_column(String(2048))  # the input file to replay from
    stage: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    replayed_at: Mapped[datetime | None]
    replay_job_id: Mapped[str | None] = mapped_column(String(32))


class IndexVersion(Base):
    __tablename__ = "index_versions"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    version: Mapped[int]
    config_hash: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(512))
    dims: Mapped[int]
    state: Mapped[str] = mapped_column(String(16), default="building")  # building | live | retired
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[datetime | None]
    # reindexing (migration 0004): enough to load this version's encoder and chunker, and its build job.
    # state also takes discarded (a build given up) and dropped (an old version deleted from Elasticsearch).
    model_path: Mapped[str | None] = mapped_column(String(2048))
    chunk_tokens: Mapped[int | None]
    chunk_overlap: Mapped[int | None]
    job_id: Mapped[str | None] = mapped_column(String(32))
    retired_at: Mapped[datetime | None]
    # the encoder variant that computes its vectors, for ingest and queries alike: torch, onnx, onnx-int8, openvino,
    # openvino-int8 (pipeline/encoders; migration 0020). None on rows written before, until a worker records the
    # one in the index's _meta (pipeline/reindex/live.py: record_encoder).
    encoder: Mapped[str | None] = mapped_column(String(32))
