"""The end of a build: the locked catch-up and the atomic alias swap; afterwards, cleanup; or discard.

Zero loss rests on one lock. The swap first takes the exclusive lock on the live version's row
(an UPDATE: a row lock on PostgreSQL, the write lock on SQLite). An ingest batch takes the shared
lock on the same row just before it commits (pipeline.reindex.live.still_live). So every batch
either committed before the lock — and the catch-up below, run under the lock, sees its documents
and writes them into the new version — or commits after the flip, sees that its version is no
longer live, rolls back and redoes its documents in the new one. Nothing falls in between.
"""

from __future__ import annotations

import logging

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from pipeline.index import count_chunks, refresh
from pipeline.reindex import ledger
from pipeline.reindex.fill import Tools, catch_up_labels, drop_documents, rewrite_chunk_rows, write_documents
from pipeline.reindex.live import live_row, of_prefix
from pipeline.store import repo
from pipeline.store.models import Chunk, Document, IndexVersion, Job, JobState, utcnow
from pipeline.store.models_monitor import ReindexLedger

log = logging.getLogger(__name__)

MORE, DONE, SWAPPED = "more", "done", "swapped"
# A count that differs right after a catch-up can be a document that an ingest began re-reading meanwhile;
# the next step drops it from the build. A difference that survives this many catch-ups is real.
COUNT_CHECKS = 3


def swap(session: Session, job: Job, build: IndexVersion, tools: Tools) -> str:
    prefix = tools.layout.prefix
    live = live_row(session, prefix)
    if live is not None:
        session.execute(update(IndexVersion).where(IndexVersion.id == live.id).values(state=IndexVersion.state))
    session.refresh(build)
    session.refresh(job)
    if build.state != "building" or job.state in JobState.FINAL:
        return DONE  # a twin message swapped already, or the build was discarded / the job cancelled
    limit = tools.batch_docs * 4
    gone = ledger.to_drop(session, build.name, limit * 8 + 1)
    docs = ledger.to_write(session, build.name, limit + 1)
    rewrite = bool(job.options.get("rewrite_chunks"))
    if len(docs) > limit or len(gone) > limit * 8:
        # Much arrived since the last step: catch up outside the swap rather than hold ingest for long.
        drop_documents(session, tools, build, gone[: limit * 8])
        write_documents(session, tools, build, docs[:limit], rewrite)
        return MORE
    drop_documents(session, tools, build, gone)
    write_documents(session, tools, build, docs, rewrite)
    catch_up_labels(session, tools, build, job)
    refresh(tools.es, build.name)  # searches must find everything the moment the alias moves
    refused = _counts_differ(session, tools, job, build, rewrite)
    if refused:
        return refused
    if rewrite:
        rewrite_chunk_rows(session, build.name)
    # The ledger served the build only: forget it in the swap's own transaction, so a succeeded job never
    # leaves one behind (cleanup afterwards is a second transaction, and a worker can die between the two).
    ledger.clear(session, build.name)
    now = utcnow()
    if live is not None:
        live.state, live.retired_at = "retired", now
    build.state, build.activated_at, build.retired_at = "live", now, None
    session.flush()
    tools.layout.swap(build.name)
    log.info("index swapped", extra={"job_id": job.id, "live": build.name, "retired": live.name if live else None})
    # If the commit after this fails, the aliases already point at the build while SQL still says
    # "building": the redelivered step catches up again and swaps (a no-op for the aliases) and commits.
    chunks = count_chunks(tools.es, build.name)
    job.total = ledger.indexed_total(session)
    job.done, job.chunks = job.total, chunks
    job.options = {
        **job.options,
        "outcome": f"{build.name} is live ({chunks} chunks); {live.name if live else 'nothing'} was before it",
    }
    job.state, job.finished_at = JobState.SUCCEEDED, now
    return SWAPPED


def expected_chunks(session: Session, build: IndexVersion, rewrite: bool) -> int:
    """The chunks the build must hold: SQL's chunk rows of the indexed documents, or, when the build chunks
    anew, the spans its ledger recorded for them (SQL's rows are rewritten only at the swap)."""
    if not rewrite:
        return (
            session.scalar(
                select(func.count())
                .select_from(Chunk)
                .join(Document, Document.id == Chunk.document_id)
                .where(Document.status == ledger.INDEXED)
            )
            or 0
        )
    total, after = 0, ""
    while True:
        rows = session.execute(
            select(ReindexLedger.document_id, ReindexLedger.spans)
            .join(Document, Document.id == ReindexLedger.document_id)
            .where(
                ReindexLedger.index_name == build.name,
                Document.status == ledger.INDEXED,
                ReindexLedger.document_id > after,
            )
            .order_by(ReindexLedger.document_id)
            .limit(1000)
        ).all()
        if not rows:
            return total
        total += sum(len(spans or []) for _, spans in rows)
        after = rows[-1][0]


def _counts_differ(session: Session, tools: Tools, job: Job, build: IndexVersion, rewrite: bool) -> str | None:
    """Refuse a swap to a build whose chunk count is not SQL's: the copy path would otherwise carry chunks the
    live index lost into the new version, and swap without a word. After COUNT_CHECKS catch-ups the job
    fails, saying so, and the build is given up (resuming it would copy the same hole)."""
    want, have = expected_chunks(session, build, rewrite), count_chunks(tools.es, build.name)
    if want == have:
        return None
    checks = int(job.options.get("count_checks", 0)) + 1
    job.options = {**job.options, "count_checks": checks}
    if checks < COUNT_CHECKS:
        return MORE
    source = job.options.get("from") or "the live version"
    message = (
        f"refused to swap to {build.name}: it holds {have} chunks but SQL has {want} for the indexed documents"
        + (f" (copied from {source}, which lacks or has extra chunks)" if job.options.get("mode") == "copy" else "")
        + f"; {build.name} was given up. Run `docpipe index verify --repair` first, then reindex again"
    )
    ledger.clear(session, build.name)
    if build.retired_at is not None:
        build.state = "retired"  # a rollback target stays what it was
    else:
        build.state = "discarded"
        session.flush()
        tools.layout.drop(build.name)
    job.state, job.error, job.finished_at = JobState.FAILED, message, utcnow()
    job.options = {**job.options, "outcome": message}
    return DONE


def cleanup(session: Session, layout, keep_retired: int) -> list[str]:
    """After a swap: forget ledgers no build uses (a crash left them), drop retired versions beyond the newest few."""
    prefix = layout.prefix
    active = set(session.scalars(select(IndexVersion.name).where(of_prefix(prefix), IndexVersion.state == "building")))
    for name in session.scalars(
        select(ReindexLedger.index_name)
        .distinct()
        .where(ReindexLedger.index_name.startswith(f"{prefix}-v", autoescape=True))
    ).all():
        if name not in active:
            ledger.clear(session, name)
    retired = list(
        session.scalars(
            select(IndexVersion)
            .where(of_prefix(prefix), IndexVersion.state == "retired")
            .order_by(IndexVersion.retired_at.desc(), IndexVersion.version.desc())
        )
    )
    dropped = []
    for row in retired[max(keep_retired, 0) :]:
        layout.drop(row.name)
        row.state = "dropped"
        dropped.append(row.name)
    return dropped


def discard(session: Session, layout) -> IndexVersion | None:
    """Give up the unfinished build: its job is cancelled, its index dropped (a rollback target is
    only put back to retired). The live version is never touched. None when nothing is building."""
    build = session.scalar(
        select(IndexVersion)
        .where(of_prefix(layout.prefix), IndexVersion.state == "building")
        .order_by(IndexVersion.version.desc())
        .limit(1)
    )
    if build is None:
        return None
    owner = session.get(Job, build.job_id) if build.job_id else None
    if owner is not None:
        repo.cancel_job(session, owner)
    ledger.clear(session, build.name)
    if build.retired_at is not None:
        build.state = "retired"
    else:
        build.state = "discarded"
        session.flush()
        layout.drop(build.name)
    return build
