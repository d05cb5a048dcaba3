"""The gpu worker's side of a local-LM answer: generate, and push what comes out into the request's Channel."""

from __future__ import annotations

import logging
from collections.abc import Callable

from pipeline.answer.channel import Channel
from pipeline.answer.local_lm import LocalLM
from pipeline.errors import PermanentError

log = logging.getLogger(__name__)


def serve(payload: dict, channel: Channel, load: Callable[[str], LocalLM]) -> None:
    """Answer the payload's conversations with the model `load(model_path)` gives.

    A single conversation asked for as a stream goes out piece by piece; several go out together once generated
    in batches. Runs once per request: a redelivered task finds the request claimed and does nothing.
    """
    if not channel.claim():
        log.info("answer request %s was already taken; this delivery does nothing", channel.key)
        return
    channel.publish("started")
    try:
        conversations = payload.get("conversations") or []
        if not payload.get("model_path") or not conversations:
            raise PermanentError("an answer request needs a model_path and at least one conversation")
        lm = load(payload["model_path"])
        max_tokens = int(payload.get("max_tokens") or 256)
        temperature = float(payload.get("temperature") or 0.0)
        if payload.get("stream") and len(conversations) == 1:
            text = lm.stream(
                conversations[0], max_tokens, lambda piece: channel.publish("delta", text=piece), temperature
            )
            channel.publish("done", texts=[text])
        else:
            texts = lm.complete_many(conversations, max_tokens, temperature)
            channel.publish("done", texts=texts)
    except PermanentError as exc:
        channel.publish("error", message=str(exc), permanent=True)
    except Exception as exc:
        channel.publish("error", message=f"{type(exc).__name__}: {exc}", permanent=False)
        raise
