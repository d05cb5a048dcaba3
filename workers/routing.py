"""Queue and task names: the one place that says which queues exist and which tasks run on which.

Imports nothing of Celery, so the shells can name a queue (the launcher's `-Q`) or send a task by name
through workers.client without loading any task module.
"""

from __future__ import annotations

INGEST_QUEUE = "ingest"  # read, clean, dedup, chunk; sources and monitor bookkeeping
GPU_QUEUE = "gpu"  # everything that needs the model: embed + index, train, classify, reindex, model scoring
# feed and folder source runs, and the reclaim sweep: I/O-bound, served by a threads pool, so that a slow feed
# never waits in front of ingestion and the sweep never waits behind long reads
FETCH_QUEUE = "fetch"
QUEUES = (INGEST_QUEUE, GPU_QUEUE, FETCH_QUEUE)
# tasks named docpipe.gpu.* need the model (and a GPU when there is one)
ROUTES = {
    "docpipe.gpu.*": {"queue": GPU_QUEUE},
    "docpipe.sources.*": {"queue": FETCH_QUEUE},
    "docpipe.reclaim_work": {"queue": FETCH_QUEUE},
    "docpipe.webhooks.*": {"queue": FETCH_QUEUE},  # POSTs to tenants' endpoints: network I/O like feeds
}

START_JOB = "docpipe.start_job"
READ_FILES = "docpipe.read_files"
INDEX_FILES = "docpipe.gpu.index_files"
REVIVE_JOBS = "docpipe.revive_jobs"
RECLAIM_WORK = "docpipe.reclaim_work"
TRAIN = "docpipe.gpu.train"
CLASSIFY = "docpipe.gpu.classify"
REINDEX = "docpipe.gpu.reindex"
REINDEX_SCHEDULED = "docpipe.reindex_scheduled"
SCORE_JOB = "docpipe.monitor.score_job"
SCORE_JOB_WITH_MODEL = "docpipe.gpu.monitor.score_job"
DELIVER_ALERT = "docpipe.monitor.deliver_alert"
SOURCES_TICK = "docpipe.sources.tick"
RUN_SOURCE = "docpipe.sources.run"
VERIFY_INDEX = "docpipe.gpu.verify_index"  # verify the live index against SQL; repairs re-embed
VERIFY_SCHEDULED = "docpipe.verify_scheduled"
VERIFY_AFTER_RESTART = "docpipe.verify_after_restart"
DELETE_DOCUMENTS = "docpipe.delete_documents"  # one step of a delete job (ingest queue)
GENERATE_ANSWER = "docpipe.gpu.answer.generate"  # a local causal LM answers `docpipe ask`
REINDEX_CRON_TICK = "docpipe.reindex_cron_tick"  # sends REINDEX_SCHEDULED on DOCPIPE_REINDEX_CRON's slots
DELIVER_WEBHOOK = "docpipe.webhooks.deliver"  # one attempt of one job-event delivery
WEBHOOKS_SWEEP = "docpipe.webhooks.sweep"  # beat: due deliveries whose task was lost
EXTRACT = "docpipe.gpu.extract"  # the live NER model tags a tenant's chunks

# task kind (a DOCPIPE_WORKER_<KIND>_SOFT_LIMIT / _HARD_LIMIT pair) -> the tasks it limits
TASK_KINDS = {
    "read": (START_JOB, READ_FILES, DELETE_DOCUMENTS),
    "index": (INDEX_FILES,),
    "train": (TRAIN,),
    "classify": (CLASSIFY, SCORE_JOB_WITH_MODEL, GENERATE_ANSWER, EXTRACT),
    "reindex": (REINDEX, REINDEX_SCHEDULED, REINDEX_CRON_TICK, VERIFY_INDEX, VERIFY_SCHEDULED, VERIFY_AFTER_RESTART),
    "sources": (SOURCES_TICK, RUN_SOURCE, DELIVER_WEBHOOK, WEBHOOKS_SWEEP),
    "monitor": (SCORE_JOB, DELIVER_ALERT, REVIVE_JOBS, RECLAIM_WORK),
}
