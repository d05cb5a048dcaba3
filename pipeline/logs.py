"""Structured logs: one JSON object a line, from the workers, beat and the API.

Every module keeps logging through the standard library (`logging.getLogger(__name__)`); structlog renders each
record as JSON with the context bound to the current task or request (job_id, task_id, task, tenant,
request_id) and the fields a call passes in `extra`. The workers bind and clear the context in Celery's task
signals (workers/app.py), the API per request (api/observe.py).
"""

from __future__ import annotations

import logging
import sys

import structlog

_HANDLER_MARK = "_docpipe_json"


def configure_logging(process: str, level: str | int = "INFO", stream=None) -> None:
    """Render every record of this process as JSON on `stream` (stderr); idempotent."""
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            lambda _logger, _name, event: {**event, "service": process},
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(default=str),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    # other handlers (a test's log capture) stay; an earlier call's is replaced
    root.handlers = [h for h in root.handlers if not getattr(h, _HANDLER_MARK, False)] + [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "celery", "celery.task"):
        logger = logging.getLogger(name)  # their own handlers would print plain text beside ours
        logger.handlers = [h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)]
        logger.propagate = True


def bind(**context) -> None:
    """Add fields to every record logged from now on in this task or request (None values are left out)."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in context.items() if v is not None})


def clear() -> None:
    structlog.contextvars.clear_contextvars()
