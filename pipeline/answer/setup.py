"""Which writer answers, from the settings: a remote generator, a local one on the gpu queue, or extraction."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.answer.ask import ExtractiveWriter, GeneratedWriter, Writer
from pipeline.answer.generators import OpenAIGenerator, QueuedGenerator
from pipeline.answer.tokens import TokenCounter, load_tokenizer, local_context_tokens
from pipeline.config import Settings
from pipeline.errors import ConfigError


def generator_kind(settings: Settings) -> str:
    g = settings.generator
    return "openai" if g.url else "local" if g.model_path else "extractive"


def make_writer(
    settings: Settings,
    encoder,
    encoder_path: str,
    submit: Callable[[dict], None] | None = None,
    redis=None,
) -> Writer:
    """`encoder` embeds the sentences of an extractive answer, and `encoder_path`'s tokenizer approximates a remote
    model's token counts; `submit` (send the generate task) and `redis` (its answer channel) serve a local model."""
    g = settings.generator
    kind = generator_kind(settings)
    if kind == "openai":
        counter = TokenCounter(_tokenizer(g.tokenizer or encoder_path, "DOCPIPE_GENERATOR_TOKENIZER"), exact=False)
        key = g.api_key.get_secret_value() if g.api_key else None
        generator = OpenAIGenerator(g.url, g.model, key, g.temperature, g.timeout)
        return GeneratedWriter(generator, counter, g.context_tokens, g.max_tokens)
    if kind == "local":
        if submit is None or redis is None:
            raise ConfigError("a local generator needs the gpu queue and its Redis: run `docpipe up`")
        counter = TokenCounter(_tokenizer(g.model_path, "DOCPIPE_GENERATOR_MODEL_PATH"), exact=True)
        context = local_context_tokens(g.model_path, g.context_tokens)
        queued = QueuedGenerator(g.model_path, submit, redis, settings.broker_key_prefix, g.temperature, g.timeout)
        return GeneratedWriter(queued, counter, context, g.max_tokens)
    return ExtractiveWriter(encoder)


def _tokenizer(path: str, setting: str):
    try:
        return load_tokenizer(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{setting}: no tokenizer in {path} ({exc})") from None
