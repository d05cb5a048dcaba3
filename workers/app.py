"""The Celery app. Broker comes from settings or the stack recorded by `docpipe up`."""

from __future__ import annotations

import inspect
import sys

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun
from kombu import Queue

from pipeline import logs
from pipeline.config import Settings, get_settings
from pipeline.services import endpoints
from workers.routing import (
    FETCH_QUEUE,
    GPU_QUEUE,
    INGEST_QUEUE,
    RECLAIM_WORK,
    REINDEX_SCHEDULED,
    REVIVE_JOBS,
    ROUTES,
    SOURCES_TICK,
    TASK_KINDS,
)

app = Celery(
    "docpipe",
    include=[
        "workers.tasks_ingest",
        "workers.tasks_ml",
        "workers.tasks_sources",
        "workers.tasks_reindex",
        "workers.tasks_monitor",
        "workers.tasks_documents",
        "workers.tasks_answer",
        "workers.tasks_webhooks",
        "workers.tasks_extract",
    ],
)


def time_limits(settings: Settings) -> dict[str, dict[str, float]]:
    """Celery task annotations: each task's soft and hard time limit, from its kind's settings."""
    limits = {}
    for kind, names in TASK_KINDS.items():
        soft, hard = settings.worker.time_limits(kind)
        for name in names:
            limits[name] = {"soft_time_limit": soft, "time_limit": hard}
    return limits


def _drop_connections() -> None:
    """Other broker settings: the pools made for the old ones would keep sending there (another key prefix)."""
    app._pool = None  # dropped, not closed: a producer taken from it may still be in use
    if "amqp" in app.__dict__:
        app.amqp._producer_pool = None


def configure(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    broker = endpoints(settings).redis_url or "redis://127.0.0.1:6379/0"
    # kombu sweeps for abandoned messages every interval x throttle seconds (10 x 10 by default): with a short
    # visibility timeout a killed worker's message would wait up to 100 s past it, so the sweep follows the timeout
    restore_every = max(1, min(10, settings.broker_visibility_timeout // 10))
    transport = {"visibility_timeout": settings.broker_visibility_timeout, "unacked_restore_interval": restore_every}
    if settings.broker_key_prefix:
        transport["global_keyprefix"] = settings.broker_key_prefix
    if (app.conf.broker_url, app.conf.broker_transport_options) != (broker, transport):
        _drop_connections()
    app.conf.update(
        broker_url=broker,
        broker_transport_options=transport,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        result_backend=None,
        # A task is acknowledged only after it finished; a worker that dies mid-task gets it redelivered.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_queues=[Queue(INGEST_QUEUE), Queue(GPU_QUEUE), Queue(FETCH_QUEUE)],
        task_default_queue=INGEST_QUEUE,
        task_routes=ROUTES,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        # task events for Flower and `celery events`: sent, received, started, succeeded, failed, retried
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        # prefork children are replaced after this many tasks or past this memory (KiB) once their task ends
        worker_max_tasks_per_child=settings.worker.max_tasks_per_child or None,
        worker_max_memory_per_child=settings.worker.max_memory_per_child or None,
        task_annotations=time_limits(settings),
        # beat only ticks; the schedules themselves live in SQL, so `docpipe feeds add` needs no restart
        beat_schedule={
            "docpipe-sources-tick": {
                "task": SOURCES_TICK,
                "schedule": settings.sources.tick_seconds,
                "options": {"expires": settings.sources.tick_seconds},
            }
        },
        beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
    )
    if settings.revive_every_seconds > 0:  # file jobs whose next task was lost get it again
        app.conf.beat_schedule = {
            **app.conf.beat_schedule,
            "docpipe-revive": {
                "task": REVIVE_JOBS,
                "schedule": settings.revive_every_seconds,
                "kwargs": {"stalled_after": settings.stall_seconds},
                "options": {"expires": settings.revive_every_seconds},
            },
        }
    if settings.worker.reclaim_every_seconds > 0:  # work held by dead workers is sent again
        app.conf.beat_schedule = {
            **app.conf.beat_schedule,
            "docpipe-reclaim": {
                "task": RECLAIM_WORK,
                "schedule": settings.worker.reclaim_every_seconds,
                "options": {"expires": settings.worker.reclaim_every_seconds},
            },
        }
    if settings.reindex.every_seconds > 0:  # monitor: scheduled reindex; an unchanged configuration is a no-op
        app.conf.beat_schedule = {
            **app.conf.beat_schedule,
            "docpipe-reindex": {
                "task": REINDEX_SCHEDULED,
                "schedule": settings.reindex.every_seconds,
                "options": {"expires": settings.reindex.every_seconds},
            },
        }
    app.conf.beat_schedule = {**app.conf.beat_schedule, **verify_schedule(settings), **cron_schedule(settings)}
    return app


def cron_schedule(settings: Settings) -> dict:
    """Beat's ticks for SQL-kept schedules: the cron reindex (its due slot lives in SQL, so a restart of beat
    neither repeats nor forgets one) and the sweep of webhook deliveries whose task was lost."""
    from workers.routing import REINDEX_CRON_TICK, WEBHOOKS_SWEEP

    entries = {}
    if settings.reindex.cron.strip():
        reindex_cron(settings)  # a bad expression or zone stops beat and the workers at start, not at a tick
        tick = settings.sources.tick_seconds
        entries["docpipe-reindex-cron"] = {"task": REINDEX_CRON_TICK, "schedule": tick, "options": {"expires": tick}}
    if settings.webhook.sweep_seconds > 0:
        every = settings.webhook.sweep_seconds
        entries["docpipe-webhooks-sweep"] = {"task": WEBHOOKS_SWEEP, "schedule": every, "options": {"expires": every}}
    return entries


def reindex_cron(settings: Settings):
    """DOCPIPE_REINDEX_CRON in DOCPIPE_REINDEX_TIMEZONE, checked; ConfigError naming the setting."""
    from pipeline.errors import ConfigError, InvalidSchedule
    from pipeline.schedule import parse_cron

    try:
        return parse_cron(settings.reindex.cron, settings.reindex.timezone)
    except InvalidSchedule as exc:
        raise ConfigError(f"DOCPIPE_REINDEX_CRON / DOCPIPE_REINDEX_TIMEZONE: {exc}") from None


def verify_schedule(settings: Settings) -> dict:
    """Beat's index verification (with repair): every verify_every_seconds, and after a restart of Elasticsearch,
    which a check every verify_restart_check_seconds notices from the nodes' start times (0 turns either off)."""
    from workers.routing import VERIFY_AFTER_RESTART, VERIFY_SCHEDULED

    entries = {}
    for name, task, seconds in (
        ("docpipe-verify", VERIFY_SCHEDULED, settings.reindex.verify_every_seconds),
        ("docpipe-verify-after-restart", VERIFY_AFTER_RESTART, settings.reindex.verify_restart_check_seconds),
    ):
        if seconds > 0:
            entries[name] = {"task": task, "schedule": seconds, "options": {"expires": seconds}}
    return entries


@setup_logging.connect
def _json_logs(loglevel=None, **_kwargs) -> None:
    """Workers and beat log JSON (pipeline/logs.py) instead of Celery's plain text."""
    logs.configure_logging("beat" if "beat" in sys.argv else "worker", loglevel or "INFO")


_FIRST_ARG: dict[str, str | None] = {}


def _job_id(task, args, kwargs) -> str | None:
    """The job a task works on: its `job_id` argument, which job tasks take first (read once per task name)."""
    if task.name not in _FIRST_ARG:
        params = list(inspect.signature(task.run).parameters)
        _FIRST_ARG[task.name] = params[0] if params else None
    if "job_id" in (kwargs or {}):
        return kwargs["job_id"]
    return args[0] if args and _FIRST_ARG[task.name] == "job_id" else None


@task_prerun.connect
def _bind_task(task_id=None, task=None, args=None, kwargs=None, **_kwargs) -> None:
    logs.clear()
    logs.bind(task_id=task_id, task=getattr(task, "name", None), job_id=_job_id(task, args, kwargs) if task else None)


@task_postrun.connect
def _unbind_task(**_kwargs) -> None:
    logs.clear()


configure()
