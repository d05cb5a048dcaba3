"""Generators: who writes an answer from a prompt. Each streams text pieces, and answers many prompts at once
(evaluation) in whatever batches suit it.

- OpenAIGenerator: any OpenAI-compatible chat-completions server (vLLM, TGI, llama.cpp, Ollama, hosted), through
  the official `openai` client, streamed.
- QueuedGenerator: a local Hugging Face causal LM that a gpu worker runs (pipeline/answer/local_lm.py); the
  request goes to the gpu queue through `submit`, the text comes back through a Channel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, cast

from pipeline.answer.channel import Channel, new_key
from pipeline.errors import PermanentError, RetryableError, ServiceUnavailable


class GeneratorRefused(PermanentError):
    """The generator refused the request (unknown model, bad key, prompt too long): retrying will not help."""


class GeneratorBusy(RetryableError):
    """The generator is overloaded or failed on its side; the same question may be answered later."""


class Generator(Protocol):
    name: str

    def stream(self, messages: list[dict], max_tokens: int) -> Iterator[str]: ...

    def complete_many(self, conversations: list[list[dict]], max_tokens: int) -> list[str]: ...


class OpenAIGenerator:
    name = "openai"

    def __init__(
        self, url: str, model: str = "", api_key: str | None = None, temperature: float = 0.0, timeout: float = 120.0
    ):
        from openai import OpenAI

        self.url = url
        # a local server wants no key, but the client insists on one
        self.client = OpenAI(base_url=url, api_key=api_key or "unused", timeout=timeout, max_retries=2)
        self.model = model
        self.temperature = temperature

    def model_name(self) -> str:
        """The configured model, else the only one the server serves (vLLM and llama.cpp serve one)."""
        if not self.model:
            with self._errors():
                served = [m.id for m in self.client.models.list()]
            if len(served) != 1:
                raise GeneratorRefused(
                    f"set DOCPIPE_GENERATOR_MODEL: the generator at {self.url} serves "
                    + (", ".join(served[:10]) if served else "no model")
                )
            self.model = served[0]
        return self.model

    def stream(self, messages: list[dict], max_tokens: int) -> Iterator[str]:
        model = self.model_name()
        with self._errors():
            # max_tokens rather than max_completion_tokens: the name every compatible server understands
            chunks: Any = self.client.chat.completions.create(
                model=model,
                messages=cast(Any, messages),  # plain role/content dicts, as the API takes them
                max_tokens=max_tokens,
                temperature=self.temperature,
                stream=True,
            )
            for chunk in chunks:
                for choice in chunk.choices:
                    if choice.delta and choice.delta.content:
                        yield choice.delta.content

    def complete_many(self, conversations: list[list[dict]], max_tokens: int) -> list[str]:
        # a server batches concurrent requests itself; one at a time keeps a shared server fair
        return ["".join(self.stream(messages, max_tokens)) for messages in conversations]

    def _errors(self):
        return translated_errors(self.url)


@contextmanager
def translated_errors(url: str) -> Iterator[None]:
    """The client's errors as docpipe's: unreachable, busy (retry later) or refused (fix the request)."""
    import openai

    try:
        yield
    except openai.APIConnectionError as exc:  # includes timeouts
        raise ServiceUnavailable(f"the generator at {url} cannot be reached: {exc}") from exc
    except openai.APIStatusError as exc:
        status = exc.status_code
        if status == 429 or status >= 500:
            raise GeneratorBusy(f"the generator at {url} answered {status}: {exc.message}") from exc
        raise GeneratorRefused(f"the generator at {url} refused the request ({status}): {exc.message}") from exc
    except openai.OpenAIError as exc:  # a reply the client could not read
        raise GeneratorBusy(f"the generator at {url} failed: {exc}") from exc


class QueuedGenerator:
    """A local causal LM on the gpu queue. `submit(payload)` sends the generate task; `redis` carries the answer."""

    name = "local"

    def __init__(
        self,
        model_path: str,
        submit: Callable[[dict], None],
        redis,
        key_prefix: str = "",
        temperature: float = 0.0,
        timeout: float = 120.0,
    ):
        self.model_path, self.submit, self.redis = model_path, submit, redis
        self.key_prefix, self.temperature, self.timeout = key_prefix, temperature, timeout

    def _run(self, conversations: list[list[dict]], max_tokens: int, stream: bool) -> Iterator[dict]:
        key = new_key(self.key_prefix)
        channel = Channel(self.redis, key)
        self.submit(
            {
                "key": key,
                "model_path": self.model_path,
                "conversations": conversations,
                "max_tokens": max_tokens,
                "temperature": self.temperature,
                "stream": stream,
            }
        )
        for event in channel.events(self.timeout, self.timeout):
            if event["kind"] == "error":
                raise (GeneratorRefused if event.get("permanent") else GeneratorBusy)(
                    f"the gpu worker could not answer: {event['message']}"
                )
            yield event

    def stream(self, messages: list[dict], max_tokens: int) -> Iterator[str]:
        for event in self._run([messages], max_tokens, stream=True):
            if event["kind"] == "delta":
                yield event["text"]

    def complete_many(self, conversations: list[list[dict]], max_tokens: int) -> list[str]:
        if not conversations:
            return []
        for event in self._run(conversations, max_tokens, stream=False):
            if event["kind"] == "done":
                return list(event["texts"])
        raise GeneratorBusy("the gpu worker ended without an answer")
