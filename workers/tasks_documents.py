"""Delete jobs (ingest queue): one step of STEP_DOCS documents per message, each step its own transaction."""

from __future__ import annotations

import logging

from pipeline.store.db import session_scope
from workers import runtime
from workers.app import app
from workers.routing import DELETE_DOCUMENTS
from workers.runtime import JobTask

log = logging.getLogger(__name__)


class DeleteTask(JobTask):
    """Retries what may pass (a document still being indexed, Elasticsearch away); a failure keeps the counters
    of what the job deleted before it."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        from pipeline.documents.jobs import fail_delete_job

        job_id = args[0] if args else kwargs.get("job_id")
        if job_id:
            with session_scope(runtime.sql_url()) as session:
                fail_delete_job(session, job_id, f"{self.name} failed: {type(exc).__name__}: {exc}")


@app.task(bind=True, base=DeleteTask, name=DELETE_DOCUMENTS)
def delete_documents(self, job_id: str) -> None:
    """Delete the next documents of a delete job; sends the next step while documents are left."""
    from pipeline.documents.jobs import delete_step, summary

    with session_scope(runtime.sql_url()) as session:
        job = runtime.open_job(session, job_id)
        if job is None:
            return
        more = delete_step(session, job, runtime.layout())
        done = None if more else summary(job)
    if more:
        delete_documents.delay(job_id)  # a new message: ingest tasks queued meanwhile run in between
    else:
        log.info("delete job %s: %s", job_id, done)
