"""The pipeline in one process, as the Celery tasks call it: read (clean, dedup, chunk) every file, then embed
and index the documents in batches. Benchmarks use it to time stages or to build a corpus without queues."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from pipeline.index import IndexLayout, refresh
from pipeline.ingest import ReadSteps, index_documents, read_file
from pipeline.jobs.stats import JobStats
from pipeline.store import repo
from pipeline.store.models import Job, JobFile


def ingest_files(
    session, job: Job, files: list[Path], steps: ReadSteps, es, layout: IndexLayout, encoder, batch_docs: int, bar=None
) -> JobStats:
    """Every file of `files` read and indexed into the layout's write alias under `job`; per-stage stats."""
    stats = JobStats()
    repo.add_job_files(session, job, [str(p) for p in files])
    reading = bar.add_task("read/clean/dedup/chunk", total=len(files)) if bar else None
    for jobfile in repo.pending_files(session, job.id):
        stats.add(read_file(session, job, jobfile, steps, es, layout.write_alias))
        if bar:
            bar.advance(reading)
    session.flush()
    file_ids = [f.id for f in session.scalars(select(JobFile).where(JobFile.job_id == job.id))]
    pending = repo.pending_documents(session, job.id, file_ids)
    indexing = bar.add_task("embed/index", total=len(pending)) if bar else None
    for i in range(0, len(pending), batch_docs):
        batch = pending[i : i + batch_docs]
        stats.add(index_documents(session, job, batch, encoder, es, layout.write_alias))
        if bar:
            bar.advance(indexing, len(batch))
    refresh(es, layout.read_alias)
    repo.finish_if_done(session, job)
    return stats
