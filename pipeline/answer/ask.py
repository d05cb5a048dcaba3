"""The ask use case: passages in, an answer out as a stream of events, whoever writes it.

Events, in order: `passages` (the passages the answer may cite, numbered), `delta` (a piece of the answer
text, many), `done` (the whole answer, the passages it cites, the generator). Shells print them or send them
as Server-Sent Events.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from pipeline.answer.citations import cited
from pipeline.answer.extractive import SENTENCES, extractive_pieces
from pipeline.answer.generators import Generator
from pipeline.answer.passages import Passage
from pipeline.answer.prompt import build_prompt
from pipeline.answer.tokens import TokenCounter
from pipeline.errors import PermanentError

NOTHING_FOUND = "No passage of this corpus matches the question."
MAX_QUESTION_CHARS = 2000


class QuestionRefused(PermanentError):
    """An empty or overlong question."""


def check_question(question: str) -> str:
    q = " ".join((question or "").split())
    if not q:
        raise QuestionRefused("the question is empty: ask something")
    if len(q) > MAX_QUESTION_CHARS:
        raise QuestionRefused(f"the question has {len(q)} characters; ask in at most {MAX_QUESTION_CHARS}")
    return q


@dataclass
class Draft:
    """What a writer will answer from (the passages, numbered as the answer cites them) and the answer's pieces."""

    passages: list[Passage]
    pieces: Iterator[str]
    prompt_tokens: int | None = None


class Writer(Protocol):
    name: str

    def draft(self, question: str, passages: list[Passage]) -> Draft: ...

    def answer_many(self, questions: list[str], passages: list[list[Passage]]) -> list[tuple[list[Passage], str]]: ...


class GeneratedWriter:
    """A generator given a prompt of the passages that fit its context."""

    def __init__(self, generator: Generator, counter: TokenCounter, context_tokens: int, max_tokens: int):
        self.generator, self.counter = generator, counter
        self.context_tokens, self.max_tokens = context_tokens, max_tokens
        self.name = generator.name

    def draft(self, question: str, passages: list[Passage]) -> Draft:
        prompt = build_prompt(question, passages, self.counter, self.context_tokens, self.max_tokens)
        return Draft(prompt.passages, self.generator.stream(prompt.messages, self.max_tokens), prompt.tokens)

    def answer_many(self, questions: list[str], passages: list[list[Passage]]) -> list[tuple[list[Passage], str]]:
        prompts = [
            build_prompt(q, ps, self.counter, self.context_tokens, self.max_tokens)
            for q, ps in zip(questions, passages, strict=True)
        ]
        asked = [i for i, ps in enumerate(passages) if ps]  # a question without passages gets no generation
        texts = self.generator.complete_many([prompts[i].messages for i in asked], self.max_tokens)
        answers: list[tuple[list[Passage], str]] = [([], NOTHING_FOUND) for _ in questions]
        for i, text in zip(asked, texts, strict=True):
            answers[i] = (prompts[i].passages, text)
        return answers


class ExtractiveWriter:
    """No generator: the passages' best sentences, scored with the encoder, each with its citation."""

    name = "extractive"

    def __init__(self, encoder, sentences: int = SENTENCES):
        self.encoder, self.sentences = encoder, sentences

    def draft(self, question: str, passages: list[Passage]) -> Draft:
        return Draft(passages, iter(extractive_pieces(question, passages, self.encoder, self.sentences)))

    def answer_many(self, questions: list[str], passages: list[list[Passage]]) -> list[tuple[list[Passage], str]]:
        return [
            (ps, "".join(extractive_pieces(q, ps, self.encoder, self.sentences)) if ps else NOTHING_FOUND)
            for q, ps in zip(questions, passages, strict=True)
        ]


def ask(question: str, passages: list[Passage], writer: Writer) -> Iterator[dict]:
    """The answer's events (see the module's docstring)."""
    question = check_question(question)
    if not passages:
        yield {"event": "passages", "generator": writer.name, "passages": []}
        yield {"event": "delta", "text": NOTHING_FOUND}
        yield done_event(NOTHING_FOUND, [], writer.name)
        return
    draft = writer.draft(question, passages)
    yield {
        "event": "passages",
        "generator": writer.name,
        "prompt_tokens": draft.prompt_tokens,
        "passages": [p.as_dict() for p in draft.passages],
    }
    pieces: list[str] = []
    for piece in draft.pieces:
        pieces.append(piece)
        yield {"event": "delta", "text": piece}
    yield done_event("".join(pieces).strip(), draft.passages, writer.name)


def done_event(answer: str, passages: list[Passage], generator: str) -> dict:
    return {
        "event": "done",
        "answer": answer,
        "citations": [p.citation() for p in cited(answer, passages)],
        "generator": generator,
    }


@dataclass
class Answer:
    question: str
    answer: str = ""
    generator: str = ""
    citations: list[dict] = field(default_factory=list)
    passages: list[dict] = field(default_factory=list)
    prompt_tokens: int | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def collect(question: str, events: Iterator[dict]) -> Answer:
    """The whole answer from its events (what --json and a non-streamed POST /v1/ask return)."""
    out = Answer(question)
    for event in events:
        if event["event"] == "passages":
            out.passages, out.generator = event["passages"], event["generator"]
            out.prompt_tokens = event.get("prompt_tokens")
        elif event["event"] == "done":
            out.answer, out.citations = event["answer"], event["citations"]
    return out
