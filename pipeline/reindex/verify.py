"""`docpipe index verify`: does the live index hold exactly SQL's chunks, with SQL's text? And repair.

An acknowledged bulk write can still vanish (a server killed before it synced, a restored snapshot, a
failed shard), and nothing else compares the index with SQL. Verification reads, per chunk, only its id
and two hashes from Elasticsearch (search_after over `chunk_id`, source filtered to the hashes): the
document's content hash and `text_hash`, the fingerprint of the chunk's own text that ingest and reindex
write with every chunk. SQL's side is computed from the chunk rows of indexed documents and their text.

- missing: a chunk of an indexed document that the index lacks;
- extra: a chunk in the index whose document is not indexed in SQL (duplicate, failed, deleted, gone) or
  that SQL's chunk rows do not list;
- stale: a chunk whose content hash or text hash differs from SQL's;
- unhashed: a chunk written before chunks carried `text_hash`; compared on the content hash only, and a
  repair only adds the hash (no re-embedding).

Documents in flight (pending or chunked: an ingest is replacing their chunks) are left out on both sides.
The whole pass holds the index's ids and hashes in memory (about 150 bytes a chunk; verify per tenant to
bound it). Drift found by the pass is checked again document by document before it is reported or repaired,
so writes racing the pass do not show up as drift. Repair re-embeds only the missing and stale chunks, from
SQL's text, with the live version's model, and deletes the extras.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC
from typing import Any

from elasticsearch import Elasticsearch
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipeline.index import IndexLayout, chunk_action, chunk_source, refresh, text_hash, write_chunks
from pipeline.index.guard import guard
from pipeline.reindex import ledger
from pipeline.reindex.fill import Tools, _labels
from pipeline.reindex.jobs import REINDEX_TENANT, active_reindex_job
from pipeline.reindex.live import live_row
from pipeline.store import repo
from pipeline.store.models import Document, DocumentStatus, IndexVersion, Job, JobState
from pipeline.types import utcnow

VERIFY_KIND = "verify"
ALL_TENANTS = REINDEX_TENANT  # the tenant of a verify job that covers every tenant
IN_FLIGHT = (DocumentStatus.PENDING, DocumentStatus.CHUNKED)
DRIFT_KINDS = ("missing", "extra", "stale")
_SOURCE = ["doc_id", "content_hash", "text_hash"]
_PAGE = 2000
_DOCS_PER_QUERY = 200


@dataclass(frozen=True)
class Held:
    """What one chunk holds, as far as verification looks: its document and two hashes."""

    doc_id: str
    content_hash: str | None
    text_hash: str | None  # None: written before chunks carried it


@dataclass
class Comparison:
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    unhashed: list[str] = field(default_factory=list)
    docs: dict[str, str] = field(default_factory=dict)  # chunk id -> document id, for every id above

    @property
    def drift(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.stale)

    def doc_ids(self) -> set[str]:
        return set(self.docs.values())

    def merge(self, other: Comparison) -> None:
        for name in ("missing", "extra", "stale", "unhashed"):
            getattr(self, name).extend(getattr(other, name))
        self.docs.update(other.docs)


def compare(expected: Iterable[tuple[str, Held]], found: dict[str, Held]) -> Comparison:
    """Chunks SQL expects against chunks the index holds (`found` is consumed: what is left is extra)."""
    result = Comparison()
    for cid, want in expected:
        have = found.pop(cid, None)
        result.docs[cid] = want.doc_id
        if have is None:
            result.missing.append(cid)
        elif have.content_hash != want.content_hash or (
            have.text_hash is not None and have.text_hash != want.text_hash
        ):
            result.stale.append(cid)
        elif have.text_hash is None:
            result.unhashed.append(cid)
        else:
            del result.docs[cid]
    for cid, have in found.items():
        result.extra.append(cid)
        result.docs[cid] = have.doc_id
    for ids in (result.missing, result.extra, result.stale, result.unhashed):
        ids.sort()
    return result


@dataclass
class VerifyResult:
    index: str | None  # the live version checked; None when nothing is live yet
    tenant: str | None  # None: every tenant
    sql_chunks: int = 0
    index_chunks: int = 0
    missing: int = 0
    extra: int = 0
    stale: int = 0
    unhashed: int = 0
    samples: dict[str, list[str]] = field(default_factory=dict)  # kind -> a few chunk ids
    repaired: dict[str, int] | None = None  # reindexed, rehashed, deleted, failed; None: no repair tried
    remaining: int | None = None  # drift left after the repair
    left: dict[str, int] | None = None  # that drift by kind
    note: str | None = None
    checked_at: str = ""

    @property
    def drift(self) -> int:
        return self.missing + self.extra + self.stale

    def left_of(self, kind: str) -> int:
        return getattr(self, kind) if self.left is None else self.left.get(kind, 0)

    @property
    def drift_left(self) -> int:
        """What still differs: after a repair, what it left; otherwise what was found."""
        return self.drift if self.remaining is None else self.remaining

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drift": self.drift, "drift_left": self.drift_left}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VerifyResult:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def verify(
    session: Session, es: Elasticsearch, index: str, tenant: str | None, samples: int = 20
) -> tuple[VerifyResult, Comparison]:
    """Compare SQL with `index`; returns (VerifyResult, Comparison) of the drift confirmed by a recheck."""
    refresh(es, index)  # only refreshed chunks are searchable: an acknowledged write must count
    found = index_chunks(es, index, tenant)
    result = VerifyResult(index=index, tenant=tenant, index_chunks=len(found), checked_at=utcnow().isoformat())
    counted = _Counted(sql_chunks(session, tenant))
    first = compare(counted, found)
    result.sql_chunks = counted.n
    confirmed = recheck(session, es, index, tenant, first.doc_ids()) if first.doc_ids() else first
    _fill(result, confirmed, samples)
    return result, confirmed


def recheck(session: Session, es: Elasticsearch, index: str, tenant: str | None, doc_ids: Iterable[str]) -> Comparison:
    """Compare again, document by document, with fresh reads of both sides."""
    ids = sorted(set(doc_ids))
    out = Comparison()
    for i in range(0, len(ids), _DOCS_PER_QUERY):
        batch = ids[i : i + _DOCS_PER_QUERY]
        in_flight = set(
            session.scalars(select(Document.id).where(Document.id.in_(batch), Document.status.in_(IN_FLIGHT)))
        )
        wanted = [d for d in batch if d not in in_flight]
        if not wanted:
            continue
        found = {cid: held for cid, held in _scan(es, index, _query(tenant, wanted))}
        out.merge(compare(sql_chunks(session, tenant, wanted), found))
    return out


def index_chunks(es: Elasticsearch, index: str, tenant: str | None) -> dict[str, Held]:
    """Every chunk id in `index` (of `tenant`) with what it holds, chunks of documents in flight included
    (the SQL side decides about those)."""
    return dict(_scan(es, index, _query(tenant)))


def sql_chunks(session: Session, tenant: str | None, doc_ids: list[str] | None = None) -> Iterator[tuple[str, Held]]:
    """(chunk id, Held) of every chunk row of the indexed documents, in document order, a page at a time;
    the hashes are those the chunks must carry (a document's held text, sliced by its chunk rows)."""
    after = ""
    while True:
        q = select(Document.id, Document.text, ledger.HELD_HASH).where(
            Document.status == DocumentStatus.INDEXED, Document.id > after
        )
        if tenant is not None:
            q = q.where(Document.tenant == tenant)
        if doc_ids is not None:
            q = q.where(Document.id.in_(doc_ids))
        docs = session.execute(q.order_by(Document.id).limit(_DOCS_PER_QUERY)).all()
        if not docs:
            return
        rows = repo.chunk_rows(session, [d.id for d in docs])
        for doc_id, text, held in docs:
            for c in rows[doc_id]:
                yield c.id, Held(doc_id, held, text_hash(text[c.char_start : c.char_end]))
        after = docs[-1].id


def repair(session: Session, tools: Tools, version: IndexVersion, drift: Comparison) -> dict[str, int]:
    """Re-embed (with the version's own encoder) and write the missing and stale chunks from SQL, add the text
    hash to unhashed ones, delete the extras; returns what was done. Chunks are upserted by id, so a repair
    racing ingest is harmless."""
    index = version.name
    done = {"reindexed": 0, "rehashed": 0, "deleted": 0, "failed": 0}
    rewrite = sorted(set(drift.missing) | set(drift.stale))
    by_doc: dict[str, set[str]] = {}
    for cid in rewrite + drift.unhashed:
        by_doc.setdefault(drift.docs[cid], set()).add(cid)
    rehash = set(drift.unhashed)
    doc_ids = sorted(by_doc)
    for i in range(0, len(doc_ids), tools.batch_docs):
        docs = list(
            session.scalars(
                select(Document).where(
                    Document.id.in_(doc_ids[i : i + tools.batch_docs]), Document.status == DocumentStatus.INDEXED
                )
            )
        )
        rows = repo.chunk_rows(session, [d.id for d in docs])
        embed = [(d, c) for d in docs for c in rows[d.id] if c.id in by_doc[d.id] and c.id not in rehash]
        texts = [d.text[c.char_start : c.char_end] for d, c in embed]
        vectors: Any = tools.encoder_of(version).encode(texts) if texts else []
        labels = _labels(session, [d for d, _ in embed])
        now = utcnow().isoformat()
        actions = [
            chunk_action(
                index,
                {
                    **chunk_source(d, c.ordinal, c.char_start, c.char_end, text, vector, now, ledger.held_hash(d)),
                    "chunk_id": c.id,
                    **labels.get(d.id, {}),
                },
            )
            for (d, c), text, vector in zip(embed, texts, vectors)
        ]
        actions += [
            {
                "_op_type": "update",
                "_index": index,
                "_id": c.id,
                "doc": {"text_hash": text_hash(d.text[c.char_start : c.char_end])},
            }
            for d in docs
            for c in rows[d.id]
            if c.id in rehash and c.id in by_doc[d.id]
        ]
        failed = _bulk(tools, actions)
        done["failed"] += failed
        done["reindexed"] += len(embed)
        done["rehashed"] += len(actions) - len(embed)
    deletes = [{"_op_type": "delete", "_index": index, "_id": cid} for cid in drift.extra]
    for i in range(0, len(deletes), tools.bulk_chunk_size):
        done["failed"] += _bulk(tools, deletes[i : i + tools.bulk_chunk_size], missing_ok=True)
    done["deleted"] = len(deletes)
    refresh(tools.es, index)
    return done


def run_verify(
    session: Session, layout: IndexLayout, tenant: str | None, tools: Tools | None = None, samples: int = 20
) -> VerifyResult:
    """Verify the live version (for one tenant or all); with `tools` (the encoder's), repair what differs.
    The result says what was found and what is left."""
    live = live_row(session, layout.prefix)
    if live is None:
        return VerifyResult(index=None, tenant=tenant, note="nothing is live yet", checked_at=utcnow().isoformat())
    result, drift = verify(session, layout.es, live.name, tenant, samples)
    if tools is None or (drift.drift == 0 and not drift.unhashed):
        return result
    if active_reindex_job(session):
        result.note = "a reindex is running: repair skipped, run it again once the reindex has ended"
        return result
    result.repaired = repair(session, tools, live, drift)
    left = recheck(session, tools.es, live.name, tenant, drift.doc_ids())
    result.remaining = left.drift
    result.left = {k: len(getattr(left, k)) for k in DRIFT_KINDS}
    if left.drift:
        result.samples = {f"left_{k}": getattr(left, k)[:samples] for k in DRIFT_KINDS if getattr(left, k)}
    return result


# --- the verify job: a job row records each run, so /metrics and the dashboard show the last one ---------


def create_verify_job(session: Session, tenant: str | None, repair_drift: bool, reason: str, **extra) -> Job:
    options = {"tenant": tenant, "repair": repair_drift, "reason": reason, **extra}
    return repo.create_job(session, tenant or ALL_TENANTS, [], kind=VERIFY_KIND, options=options)


def record_result(job: Job, result: VerifyResult) -> None:
    """The result goes into the job's metrics; the job fails when a repair left drift behind."""
    job.metrics = {**(job.metrics or {}), "verify": result.to_dict()}
    job.chunks = result.sql_chunks
    job.options = {**(job.options or {}), "outcome": summary(result)}
    job.finished_at = utcnow()
    if result.remaining:
        job.state, job.error = JobState.FAILED, summary(result)
    else:
        job.state = JobState.SUCCEEDED


def summary(result: VerifyResult) -> str:
    if result.index is None:
        return result.note or "nothing to verify"
    scope = f"tenant {result.tenant}" if result.tenant else "all tenants"
    found = (
        f"{result.index} ({scope}): {result.sql_chunks} chunks in SQL, {result.index_chunks} in the index; "
        f"missing {result.missing}, extra {result.extra}, stale {result.stale}"
    )
    if result.unhashed:
        found += f", {result.unhashed} without a text hash"
    if result.repaired is not None:
        r = result.repaired
        found += (
            f"; repaired: {r['reindexed']} re-indexed, {r['deleted']} deleted, {r['rehashed']} hashed"
            f", drift left {result.remaining}"
        )
    if result.note:
        found += f" ({result.note})"
    return found


def active_verify_job(session: Session) -> str | None:
    return session.scalar(
        select(Job.id).where(Job.kind == VERIFY_KIND, Job.state.in_((JobState.QUEUED, JobState.RUNNING))).limit(1)
    )


def last_result(session: Session, tenant: str = ALL_TENANTS) -> tuple[Job, VerifyResult] | None:
    """The latest verify job of `tenant` ("*": every tenant) that recorded a result."""
    for job in session.scalars(
        select(Job)
        .where(Job.kind == VERIFY_KIND, Job.tenant == tenant, Job.state.in_(JobState.FINAL))
        .order_by(Job.created_at.desc())
        .limit(20)
    ):
        found = (job.metrics or {}).get("verify")
        if found:
            return job, VerifyResult.from_dict(found)
    return None


def server_starts(es: Elasticsearch) -> dict[str, int]:
    """When each Elasticsearch node started (epoch ms, from its uptime); empty when the server will not say."""
    try:
        with guard("read node stats"):
            nodes = es.nodes.stats(metric="jvm").body.get("nodes", {})
    except Exception:  # an outage, or a server without the API: the restart check just waits
        return {}
    starts = {}
    for node_id, node in nodes.items():
        jvm = node.get("jvm") or {}
        if "timestamp" in jvm and "uptime_in_millis" in jvm:
            starts[node_id] = int(jvm["timestamp"]) - int(jvm["uptime_in_millis"])
    return starts


# a node's start time is derived from two readings; a restart moves it by the node's whole lifetime
_START_JITTER_MS = 5000


def restarted_since_last_verify(session: Session, starts: dict[str, int]) -> bool:
    """Whether a node (re)started after the last full verify with repair was created: lost writes may be unrepaired.

    Each such job keeps the start times seen when it was created; a failed one keeps them too, so a
    server that stays broken does not get a new job every tick.
    """
    if not starts:
        return False
    last = next(
        (
            job
            for job in session.scalars(
                select(Job)
                .where(Job.kind == VERIFY_KIND, Job.tenant == ALL_TENANTS)
                .order_by(Job.created_at.desc())
                .limit(50)
            )
            if (job.options or {}).get("repair") and "server_starts" in (job.options or {})
        ),
        None,
    )
    if last is None:  # never verified: only a node that started after docpipe first wrote to it can have lost writes
        first = session.scalar(select(func.min(Job.created_at)).where(Job.chunks > 0))
        if first is None:
            return False
        first_ms = int((first if first.tzinfo else first.replace(tzinfo=UTC)).timestamp() * 1000)
        return any(start > first_ms + _START_JITTER_MS for start in starts.values())
    seen = {k: int(v) for k, v in (last.options["server_starts"] or {}).items()}
    if set(seen) != set(starts):
        return True
    return any(abs(starts[k] - seen[k]) > _START_JITTER_MS for k in starts)


class _Counted:
    def __init__(self, items: Iterable[tuple[str, Held]]):
        self.items, self.n = items, 0

    def __iter__(self) -> Iterator[tuple[str, Held]]:
        for item in self.items:
            self.n += 1
            yield item


def _query(tenant: str | None, doc_ids: list[str] | None = None) -> dict:
    terms: list[dict] = []
    if tenant is not None:
        terms.append({"term": {"tenant": tenant}})
    if doc_ids is not None:
        terms.append({"terms": {"doc_id": doc_ids}})
    return {"bool": {"filter": terms}} if terms else {"match_all": {}}


def _scan(es: Elasticsearch, index: str, query: dict) -> Iterator[tuple[str, Held]]:
    """(chunk id, Held) for every chunk matching `query`, ids and hashes only, in chunk id order."""
    after: list | None = None
    while True:
        with guard(f"scan chunk hashes of {index}"):
            resp = es.search(
                index=index,
                query=query,
                size=_PAGE,
                sort=[{"chunk_id": "asc"}],
                source={"includes": _SOURCE},
                track_total_hits=False,
                search_after=after,
            )
        hits = resp["hits"]["hits"]
        for hit in hits:
            src = hit.get("_source") or {}
            yield (
                hit["_id"],
                Held(
                    str(src.get("doc_id") or hit["_id"].rsplit("-", 1)[0]),
                    src.get("content_hash"),
                    src.get("text_hash"),
                ),
            )
        if len(hits) < _PAGE:
            return
        after = hits[-1]["sort"]


def _bulk(tools: Tools, actions: list[dict], missing_ok: bool = False) -> int:
    if not actions:
        return 0
    report = write_chunks(tools.es, actions, chunk_size=tools.bulk_chunk_size, max_retries=tools.bulk_max_retries)
    return sum(1 for f in report.failures if not (missing_ok and f["status"] == 404))


def _fill(result: VerifyResult, drift: Comparison, samples: int) -> None:
    for name in ("missing", "extra", "stale", "unhashed"):
        ids = getattr(drift, name)
        setattr(result, name, len(ids))
        if ids:
            result.samples[name] = ids[:samples]
