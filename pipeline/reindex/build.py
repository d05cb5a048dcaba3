"""A reindex (or rollback) as a sequence of short, idempotent steps.

Each step runs in one transaction and does one bounded piece of work: plan the version, copy
with _reindex, seed a rollback, drop or write a batch of documents, or swap. The task re-enqueues
itself after each step, so ingest tasks queued on the same worker run in between (the live index
keeps taking writes), a killed worker loses one step at most, and a redelivered step simply asks
the ledger again what is left.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, select
from sqlalchemy.orm import Session, aliased

from pipeline.errors import ConfigError
from pipeline.reindex import ledger
from pipeline.reindex.config import IndexConfig, short
from pipeline.reindex.fill import Tools, catch_up_labels, copy_live, drop_documents, write_documents
from pipeline.reindex.live import as_live, live_row, of_prefix
from pipeline.reindex.swap import DONE, MORE, SWAPPED, swap  # noqa: F401 (SWAPPED: a step's outcome)
from pipeline.store.models import Document, IndexVersion, Job, JobState, utcnow
from pipeline.store.models_monitor import ReindexLedger


def step(session: Session, job: Job, tools: Tools) -> str:
    """Do the next piece of the job's reindex; MORE when another step must follow."""
    build = session.scalar(select(IndexVersion).where(IndexVersion.job_id == job.id))
    if build is None:
        planned = (plan_rollback if job.options.get("action") == "rollback" else plan_build)(session, job, tools)
        return MORE if planned is not None else DONE
    if build.state != "building":
        return DONE  # swapped by a twin of this message, or discarded
    opts = job.options
    if opts.get("mode") == "copy" and not opts.get("copied"):
        tools.layout.create_version(build.dims, build.version, extra=_config(tools, build).extra)
        copy_live(session, tools, build, opts["from"])
        _note(job, copied=True)
        return _progress(session, job, build, exact=True)
    if opts.get("since") and not opts.get("seeded"):
        if not _seed(session, tools, build, datetime.fromisoformat(opts["since"]), bool(opts.get("rewrite_chunks"))):
            _note(job, seeded=True)
        return _progress(session, job, build, exact=True)
    if build.retired_at is None:
        tools.layout.create_version(build.dims, build.version, extra=_config(tools, build).extra)
    rewrite = bool(opts.get("rewrite_chunks"))
    if not opts.get("walked"):
        # first pass: one walk over the documents in id order
        docs = ledger.to_write(session, build.name, tools.batch_docs, after=opts.get("cursor", ""))
        if docs:
            written = write_documents(session, tools, build, docs, rewrite)
            _note(job, cursor=docs[-1].id)
            return _stop_if_discarded(session, tools, build) or _progress(session, job, build, len(docs), written)
        _note(job, walked=True)
    # catch-up: whatever ingest changed behind the walk (whole-table anti-joins, few steps)
    gone = ledger.to_drop(session, build.name, tools.batch_docs * 8)
    if gone:
        drop_documents(session, tools, build, gone)
        return _progress(session, job, build)
    docs = ledger.to_write(session, build.name, tools.batch_docs)
    if docs:
        written = write_documents(session, tools, build, docs, rewrite)
        return _stop_if_discarded(session, tools, build) or _progress(session, job, build, 0, written)
    catch_up_labels(session, tools, build, job)  # the bulk of it outside the swap's lock
    return swap(session, job, build, tools)


def plan_build(session: Session, job: Job, tools: Tools) -> IndexVersion | None:
    """Record the version to build, or finish the job at once when the configuration is unchanged."""
    opts, prefix = job.options, tools.layout.prefix
    row = live_row(session, prefix)
    if row is None:
        _finish(job, "nothing to reindex: no version is live yet (the first ingest creates one)")
        return None
    live = as_live(row, tools.default_model, tools.default_tokens, tools.default_overlap, tools.default_encoder)
    overlap = opts.get("chunk_overlap")
    target = IndexConfig.for_model(
        opts.get("model") or tools.configured_model or live.model_path,
        opts.get("chunk_tokens") or tools.default_tokens,
        overlap if overlap is not None else tools.default_overlap,
        tools.default_encoder,
    )
    if target.hash == live.config_hash and not opts.get("force"):
        _finish(job, f"no change: {live.name} already has configuration {short(target.hash)}")
        return None
    leftover = _building(session, prefix)
    if leftover is not None:
        return _adopt(session, job, leftover, target)
    live_extra = tools.layout.meta_extra(live.name)
    mode = "copy" if live_extra == target.extra else "embed"
    n = _next_version(session, tools)
    build = IndexVersion(
        name=tools.layout.index_name(n),
        version=n,
        config_hash=target.hash,
        model=target.model_name,
        model_path=target.model_path,
        dims=target.dims,
        chunk_tokens=target.chunk_tokens,
        chunk_overlap=target.chunk_overlap,
        encoder=target.encoder,
        state="building",
        reason=opts.get("reason"),
        job_id=job.id,
    )
    session.add(build)
    session.flush()
    # an embed build re-chunks: the swap then rewrites SQL's chunk rows to match the new version
    _note(job, index=build.name, mode=mode, rewrite_chunks=mode == "embed", **{"from": live.name})
    return build


def plan_rollback(session: Session, job: Job, tools: Tools) -> IndexVersion | None:
    """Make the last retired version the target: it is caught up with what changed since, then swapped in."""
    prefix = tools.layout.prefix
    live = live_row(session, prefix)
    if live is None:
        raise ConfigError("nothing is live, so there is nothing to roll back from")
    leftover = _building(session, prefix)
    if leftover is not None:
        _refuse_if_running(session, leftover)
        raise ConfigError(
            f"{leftover.name} is an unfinished build: finish it (docpipe reindex) or discard it "
            "(docpipe reindex --discard) before rolling back"
        )
    existing = set(tools.layout.versions())
    target = next(
        (
            r
            for r in session.scalars(
                select(IndexVersion)
                .where(of_prefix(prefix), IndexVersion.state == "retired")
                .order_by(IndexVersion.retired_at.desc())
            )
            if r.name in existing
        ),
        None,
    )
    if target is None:
        raise ConfigError(f"no earlier version of {prefix} is kept to roll back to")
    target.state, target.job_id = "building", job.id
    ledger.clear(session, target.name)
    retired = target.retired_at or target.activated_at or target.created_at
    retired = retired if retired.tzinfo else retired.replace(tzinfo=UTC)
    since = retired - timedelta(seconds=tools.clock_skew_seconds)
    rewrite = tools.layout.meta_extra(target.name) != tools.layout.meta_extra(live.name)
    session.flush()
    # labels given while it was retired reached the live version only
    _note(
        job,
        index=target.name,
        mode="embed",
        rewrite_chunks=rewrite,
        since=since.isoformat(),
        labels_since=since.isoformat(),
        **{"from": live.name},
    )
    return target


def _seed(session: Session, tools: Tools, build: IndexVersion, since: datetime, rewrite: bool) -> int:
    """Tell the ledger what the rollback target still holds: documents unchanged since it retired.

    Documents changed since then get no row (they are written again), or, if no longer indexed,
    a row with no hash (their old chunks are deleted). Returns the rows added; 0 when seeded.
    """
    row = aliased(ReindexLedger)
    missing = and_(row.index_name == build.name, row.document_id == Document.id)
    kept = list(
        session.scalars(
            select(Document)
            .outerjoin(row, missing)
            .where(row.document_id.is_(None), Document.status == ledger.INDEXED, Document.updated_at < since)
            .order_by(Document.id)
            .limit(tools.batch_docs * 16)
        )
    )
    spans: list[list[list[int]] | None] = [None] * len(kept)
    if rewrite and kept:
        chunker = tools.chunker_for(*tools.model_of(build))
        cut = chunker.chunk_many([d.text for d in kept], [d.language for d in kept])
        spans = [[[s.start, s.end, s.token_count] for s in doc] for doc in cut]
    ledger.record(session, build.name, [(d.id, ledger.held_hash(d), s) for d, s in zip(kept, spans)])
    changed = list(
        session.scalars(
            select(Document.id)
            .outerjoin(row, missing)
            .where(row.document_id.is_(None), Document.status != ledger.INDEXED, Document.updated_at >= since)
            .limit(tools.batch_docs * 16)
        )
    )
    ledger.record(session, build.name, [(d, "", None) for d in changed])
    return len(kept) + len(changed)


def _adopt(session: Session, job: Job, leftover: IndexVersion, target: IndexConfig) -> IndexVersion:
    """Resume a build whose job died, when it builds the same configuration (the hash covers the encoder)."""
    _refuse_if_running(session, leftover)
    if leftover.retired_at is not None or leftover.config_hash != target.hash:
        raise ConfigError(
            f"{leftover.name} is an unfinished build of another configuration "
            f"({short(leftover.config_hash)}): discard it first with docpipe reindex --discard"
        )
    if leftover.encoder is None:  # planned before migration 0020: the same hash means the same encoder
        leftover.encoder = target.encoder
    previous = session.get(Job, leftover.job_id) if leftover.job_id else None
    carried = {
        k: v
        for k, v in ((previous.options if previous else {}) or {}).items()
        if k in ("index", "from", "mode", "rewrite_chunks", "copied", "cursor", "walked", "labels_since")
    }
    leftover.job_id = job.id
    session.flush()
    _note(job, resumed=leftover.name, **carried)
    return leftover


def _refuse_if_running(session: Session, build: IndexVersion) -> None:
    owner = session.get(Job, build.job_id) if build.job_id else None
    if owner is not None and owner.state not in JobState.FINAL:
        raise ConfigError(
            f"job {owner.id} is still building {build.name}: wait for it, or stop it with docpipe reindex --discard"
        )


def _building(session: Session, prefix: str) -> IndexVersion | None:
    return session.scalar(
        select(IndexVersion)
        .where(of_prefix(prefix), IndexVersion.state == "building")
        .order_by(IndexVersion.version.desc())
        .limit(1)
    )


def _next_version(session: Session, tools: Tools) -> int:
    numbers = [r for r in session.scalars(select(IndexVersion.version).where(of_prefix(tools.layout.prefix)))]
    numbers += [n for name in tools.layout.versions() if (n := tools.layout.version_of(name)) is not None]
    return max(numbers, default=0) + 1


def _config(tools: Tools, build: IndexVersion) -> IndexConfig:
    model_path, tokens, overlap = tools.model_of(build)
    return IndexConfig.for_model(model_path, tokens, overlap, tools.variant_of(build))


def _stop_if_discarded(session: Session, tools: Tools, build: IndexVersion) -> str | None:
    session.refresh(build)
    if build.state == "discarded":  # discarded while this step ran: leave no index behind
        tools.layout.drop(build.name)
        return DONE
    return None


def _progress(
    session: Session, job: Job, build: IndexVersion, docs: int = 0, chunks: int = 0, exact: bool = False
) -> str:
    """Counters for the progress bar: counted exactly at phase ends, added up in between (a count
    per step would rescan both tables every step)."""
    if exact or not job.total:
        job.total = ledger.indexed_total(session)
        job.done = min(ledger.held(session, build.name), job.total)
    else:
        job.done = min(job.done + docs, job.total)
    job.chunks = (job.chunks or 0) + chunks
    return MORE


def _note(job: Job, **values) -> None:
    job.options = {**(job.options or {}), **values}  # reassigned: JSON columns track replacement only


def _finish(job: Job, outcome: str) -> None:
    _note(job, outcome=outcome)
    job.state, job.finished_at = JobState.SUCCEEDED, utcnow()
    return None
