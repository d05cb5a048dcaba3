"""The gpu-queue task of `docpipe ask` with a local causal LM: thin; pipeline/answer/serve.py does the work.

Its answer travels back through a Redis list named in the payload (pipeline/answer/channel.py), not through a
Celery result backend (the app runs without one)."""

from __future__ import annotations

from functools import lru_cache

from pipeline.config import get_settings
from pipeline.services import endpoints
from workers.app import app
from workers.routing import GENERATE_ANSWER


@lru_cache
def _redis():
    import redis

    return redis.Redis.from_url(endpoints(get_settings()).redis_url or "redis://127.0.0.1:6379/0")


def _load(model_path: str):
    from pipeline.answer.local_lm import get_local_lm

    s = get_settings()
    return get_local_lm(model_path, s.device, s.infer.token_budget)


@app.task(name=GENERATE_ANSWER, acks_late=True, reject_on_worker_lost=True)
def generate(payload: dict) -> None:
    from pipeline.answer.channel import Channel
    from pipeline.answer.serve import serve

    serve(payload, Channel(_redis(), payload["key"]), _load)
