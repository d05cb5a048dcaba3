"""Response shapes of /v1 (they make the OpenAPI document), and the functions that fill them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from pipeline.jobs.record import job_record
from pipeline.jobs.stats import JobStats
from pipeline.store.models import Job


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every one docpipe stores is UTC, and the schema says date-time (with offset)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


Moment = Annotated[datetime, AfterValidator(_utc)]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list (api/pages.py)."""

    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page")


class Error(BaseModel):
    error: str
    message: str


class Problem(BaseModel):
    where: str  # e.g. "query.k" or "body.ids.0"
    problem: str


class InvalidRequest(Error):
    """The body of every 422: the first problem in `message`, all of them in `problems`."""

    problems: list[Problem] = []


class Counters(BaseModel):
    total: int
    done: int
    unchanged: int
    skipped: int
    failed: int
    chunks: int


class DeadLetterOut(BaseModel):
    id: int
    source: str
    stage: str
    reason: str
    detail: str
    created_at: Moment | None
    replayed: bool
    replay_job_id: str | None


class StageOut(BaseModel):
    """One stage's accounts for the job, summed over its batches. Units: documents for read, clean, dedup and
    classify; chunk takes documents in and gives chunks out; embed and index count chunks."""

    stage: str
    seconds: float
    items_in: int
    items_out: int
    dropped: dict[str, int]  # reason code -> items dropped for it


class JobOut(BaseModel):
    id: str
    tenant: str
    kind: str
    state: str
    counters: Counters
    progress: float  # finished items / total, 0..1; 0 while the total is unknown
    metrics: dict
    error: str | None
    created_at: Moment | None
    started_at: Moment | None
    finished_at: Moment | None
    heartbeat_at: Moment | None


class JobDetail(JobOut):
    stages: list[StageOut]  # in pipeline order: read, clean, dedup, chunk, embed, index (classify)
    dead_letters: list[DeadLetterOut]


class JobList(Page[JobOut]):
    """A page of jobs, newest first (api/pages.py)."""


class Accepted(BaseModel):
    job_id: str
    state: str
    files: list[str]  # upload names (a JSON batch is stored as one .jsonl file)
    documents: int | None = None  # records in a JSON batch


DocId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class DeleteIn(BaseModel):
    """Which of the tenant's documents to delete: exactly one of `source`, `job` and `ids`."""

    model_config = ConfigDict(extra="forbid")
    source: str | None = Field(
        None,
        min_length=1,
        max_length=2048,
        pattern=r"^[^\x00]*$",
        description="A source or an upload name, exactly; ending in '*', every source it begins",
    )
    job: DocId | None = Field(None, description="The documents this job read or last wrote")
    ids: list[DocId] | None = Field(None, min_length=1, max_length=10_000, description="Document ids")
    cascade_duplicates: bool = Field(
        False,
        description="Delete the documents' duplicates too; otherwise they stop being duplicates and wait, "
        "pending, for the next ingest of their source",
    )

    @model_validator(mode="after")
    def _one_selection(self):
        given = [name for name in ("source", "job", "ids") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"name exactly one of source, job and ids (got {', '.join(given) or 'none'})")
        return self


class DeleteAccepted(BaseModel):
    job_id: str
    state: str
    documents: int  # the documents that match now: the job deletes those that match when it runs


class DocumentOut(BaseModel):
    id: str
    source: str
    name: str  # the upload name for uploads, else the source
    content_type: str
    title: str | None
    published: Moment | None
    status: str
    chunk_count: int
    duplicate_of: str | None
    cluster_id: str
    last_job_id: str | None
    updated_at: Moment | None


class DocumentDetail(DocumentOut):
    text: str
    meta: dict


class MetadataPatch(BaseModel):
    """A JSON merge patch (RFC 7396) on the document as GET shows it; `meta` is the part that can change."""

    meta: dict = Field(
        description="Keys to set (string, number, boolean or a list of them) or to remove (null); docs/metadata.md",
        json_schema_extra={"example": {"desk": "rates", "reviewed": True, "draft": None}},
    )


class MetadataOut(BaseModel):
    id: str
    meta: dict
    indices: list[str] = Field(description="Index versions whose chunks now carry it")
    chunks: int = Field(description="Chunks updated, every index version together")


class DocumentList(Page[DocumentOut]):
    """A page of documents, newest first (api/pages.py)."""


class HitOut(BaseModel):
    rank: int
    score: float
    doc_id: str
    chunk_id: str
    source: str
    name: str
    title: str | None
    ordinal: int
    snippet: str
    highlights: list[str]  # HTML: escaped text with <mark> around query words
    pages: list[int] = Field(default_factory=list, description="PDF pages the passage lies on (1-based); [] otherwise")
    language: str | None = Field(None, description="ISO 639-1 code of the document's language, when known")


class FacetValue(BaseModel):
    value: str
    count: int = Field(description="Documents with this value among those the tenant's filters keep")


class SearchOut(BaseModel):
    query: str
    mode: str
    k: int
    hits: list[HitOut]
    facets: dict[str, list[FacetValue]] = Field(
        default_factory=dict, description="Per `facet` key asked for: its values, most documents first"
    )
    took: int = Field(0, description="The search server's own milliseconds (Elasticsearch `took`, summed)")
    search_ms: float = Field(0.0, description="Milliseconds the API waited for the search server (took + round trips)")


class ModelOut(BaseModel):
    id: str
    task: str
    base_model: str
    labels: list
    augment: str
    neighbours: int
    status: str
    live: bool
    metrics: dict
    index_version: str | None
    error: str | None
    created_at: Moment | None


class IndexVersionOut(BaseModel):
    name: str
    version: int
    model: str
    dims: int
    state: str  # building | live | retired | discarded | dropped
    live: bool
    config_hash: str  # of the model, chunking and mapping it was built with
    config: str  # the hash as `docpipe index versions` shows it
    chunk_tokens: int | None
    chunk_overlap: int | None
    reason: str | None
    job_id: str | None  # the reindex job that built it
    created_at: Moment | None
    activated_at: Moment | None
    retired_at: Moment | None


class Health(BaseModel):
    status: str
    checks: dict[str, str]
    failed: list[str]


def job_out(job: Job, letters=None, uploads: str = "", stages: JobStats | None = None) -> dict:
    """The job as /v1 shows it: the domain's record with its progress, upload names instead of server paths,
    and no inputs (those are server paths too)."""
    rec = job_record(job, letters, stages)
    del rec["inputs"]
    finished = job.done + job.unchanged + job.skipped + job.failed
    rec["progress"] = round(min(1.0, finished / job.total), 4) if job.total else 0.0
    for letter in rec.get("dead_letters", ()):
        letter["source"] = display_name(letter["source"], uploads)
    return rec


def display_name(source: str, uploads: str) -> str:
    """An upload's name instead of the server path it is stored under; other sources as they are.

    `uploads` is the uploads folder with a trailing slash; below it come `<tenant>/<name>`.
    """
    if uploads and source.startswith(uploads):
        return source[len(uploads) :].split("/", 1)[-1]
    return source


def document_out(doc, uploads: str, detail: bool = False) -> dict:
    rec = {
        "id": doc.id,
        "source": doc.source,
        "name": display_name(doc.source, uploads),
        "content_type": doc.content_type,
        "title": doc.title,
        "published": doc.published,
        "status": doc.status,
        "chunk_count": doc.chunk_count,
        "duplicate_of": doc.duplicate_of,
        "cluster_id": doc.cluster_id,
        "last_job_id": doc.last_job_id,
        "updated_at": doc.updated_at,
    }
    if detail:
        rec.update(text=doc.text, meta=doc.meta or {})
    return rec


def model_out(m) -> dict:
    return {
        "id": m.id,
        "task": m.task,
        "base_model": m.base_model,
        "labels": m.labels or [],
        "augment": m.augment,
        "neighbours": m.neighbours,
        "status": m.status,
        "live": bool(m.live),
        "metrics": m.metrics or {},
        "index_version": m.index_version,
        "error": m.error,
        "created_at": m.created_at,
    }


def index_version_out(v) -> dict:
    return {
        "name": v.name,
        "version": v.version,
        "model": v.model,
        "dims": v.dims,
        "state": v.state,
        "live": v.state == "live",
        "config_hash": v.config_hash,
        "config": v.config_hash[:12],
        "chunk_tokens": v.chunk_tokens,
        "chunk_overlap": v.chunk_overlap,
        "reason": v.reason,
        "job_id": v.job_id,
        "created_at": v.created_at,
        "activated_at": v.activated_at,
        "retired_at": v.retired_at,
    }
