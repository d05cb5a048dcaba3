"""The prompt: instructions, the numbered passages that fit the generator's context, the question."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.answer.passages import Passage, renumber
from pipeline.answer.tokens import TokenCounter
from pipeline.errors import PermanentError

INSTRUCTIONS = (
    "Answer the question using only the numbered passages. After each statement, cite the passages it rests on "
    "by their numbers in square brackets, like [1] or [2][3]. If the passages do not answer the question, say so. "
    "Answer in the language of the question, briefly."
)
# A passage cut to fewer tokens than this says too little to be worth its header.
MIN_PASSAGE_TOKENS = 32
# Pieces counted one at a time can differ by a token at their joins from the whole; the final count decides.
JOIN_SLACK = 8


class PromptTooLong(PermanentError):
    """The question and instructions alone leave no room for passages within the generator's context."""


@dataclass
class Prompt:
    messages: list[dict]
    passages: list[Passage]  # the passages the prompt carries, numbered as it numbers them
    tokens: int  # prompt tokens as counted (exact for a local model, approximate for a remote one)
    budget: int  # the most prompt tokens allowed: context less the answer's tokens (less a spare share)


def passage_block(p: Passage, text: str | None = None) -> str:
    title = f" {p.title}" if p.title else ""
    return f"[{p.number}] ({p.where()}){title}\n{' '.join((p.text if text is None else text).split())}"


def messages_for(question: str, blocks: list[str]) -> list[dict]:
    passages = "\n\n".join(blocks) if blocks else "(none)"
    return [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": f"Passages:\n\n{passages}\n\nQuestion: {question.strip()}"},
    ]


def build_prompt(
    question: str, passages: list[Passage], counter: TokenCounter, context_tokens: int, max_tokens: int
) -> Prompt:
    """Passages in rank order while they fit `context_tokens - max_tokens`; the first that does not fit is cut to
    the room left (when that room is worth it) and the rest are dropped. Numbers are 1..n of those kept."""
    budget = counter.usable(context_tokens - max_tokens)
    base = counter.count_messages(messages_for(question, []))
    room = budget - base - JOIN_SLACK
    if room < MIN_PASSAGE_TOKENS:
        raise PromptTooLong(
            f"the question and instructions take {base} tokens of a {budget}-token prompt budget "
            f"(DOCPIPE_GENERATOR_CONTEXT_TOKENS={context_tokens} less DOCPIPE_GENERATOR_MAX_TOKENS={max_tokens}): "
            "ask a shorter question or raise the context"
        )
    kept: list[tuple[Passage, str]] = []
    for p in passages:
        numbered = Passage(**{**p.__dict__, "number": len(kept) + 1})
        cost = counter.count(passage_block(numbered)) + 2  # the blank line between blocks
        if cost <= room:
            kept.append((numbered, numbered.text))
            room -= cost
            continue
        header = counter.count(passage_block(numbered, "")) + 2
        if room - header >= MIN_PASSAGE_TOKENS:
            kept.append((numbered, counter.truncate(numbered.text, room - header)))
        break
    while True:
        messages = messages_for(question, [passage_block(p, text) for p, text in kept])
        tokens = counter.count_messages(messages)
        if tokens <= budget or not kept:
            break
        kept.pop()  # the pieces' counts underestimated the whole: the last passage goes
    used = renumber([Passage(**{**p.__dict__, "text": text}) for p, text in kept])
    return Prompt(messages, used, tokens, budget)
