"""Token-level inputs shared by training and serving: words, sub-token alignment, windows, entity spans.

A text is cut into words (runs of letters and digits, or single symbols); a fast tokenizer's character
offsets tie each sub-token to the word it starts in. Only a word's first sub-token carries its tag; the
others, the special tokens and any neighbour passages carry IGNORE, which the loss skips. A text longer
than the model's window is cut into windows that overlap by `stride` sub-tokens; each word's prediction
is read from the window where it sits farthest from an edge, so every word is predicted once.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import ConfigError
from pipeline.infer.batching import Request
from pipeline.infer.inputs import ConcatLayout, _template, token_ids

IGNORE = -100  # torch's cross_entropy ignore_index
NER_KIND = "ner"  # docpipe_model.json extra.kind of a token-level model
NER_TASK = "ner"  # the registry task of the live NER model
_WORD = re.compile(r"\w+|[^\w\s]")


def tag_set(types: Iterable[str]) -> list[str]:
    """The model's tags: O first, then B- and I- of every type in name order."""
    return ["O"] + [f"{prefix}-{kind}" for kind in sorted(set(types)) for prefix in "BI"]


def split_words(text: str, cuts: Iterable[int] = ()) -> list[tuple[int, int]]:
    """Character spans of the words of `text`, a word also cut at each offset in `cuts` that falls inside it."""
    marks = sorted(set(cuts))
    words = []
    for m in _WORD.finditer(text):
        start, end = m.span()
        for cut in marks[bisect.bisect_right(marks, start) : bisect.bisect_left(marks, end)]:
            words.append((start, cut))
            start = cut
        words.append((start, end))
    return words


@dataclass(frozen=True)
class TagLayout:
    max_length: int
    stride: int = 32  # sub-tokens two consecutive windows share
    neighbours: int = 0  # passages after the text (concat); they carry no labels
    text_share: float = 0.5

    def budgets(self, tokenizer) -> tuple[int, int]:
        """(sub-tokens of text per window, sub-tokens per passage)."""
        return ConcatLayout(self.max_length, self.neighbours, self.text_share).budgets(tokenizer)


@dataclass
class Tagged:
    """The windows of a batch of texts, as engine requests, with what is needed to read them back."""

    requests: list[Request] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)  # per request: tag id or IGNORE per position
    sentence: list[int] = field(default_factory=list)  # the text each request is a window of
    firsts: list[list[tuple[int, int, int]]] = field(default_factory=list)  # (position, word, margin)


def first_subtokens(tokenizer, texts: list[str], words: list[list[tuple[int, int]]]) -> list[tuple[list, list]]:
    """Per text: (sub-token ids, for each sub-token the word it opens or -1). Needs a fast tokenizer."""
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError("token-level models need a fast (Rust) tokenizer: its offsets tie sub-tokens to words")
    enc = tokenizer(
        texts,
        add_special_tokens=False,
        return_offsets_mapping=True,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    out = []
    for ids, offsets, spans in zip(enc["input_ids"], enc["offset_mapping"], words):
        starts = [s for s, _ in spans]
        opens, last = [], -1
        for s, e in offsets:
            w = bisect.bisect_right(starts, s) - 1
            inside = e > s and w >= 0 and s < spans[w][1]
            opens.append(w if inside and w != last else -1)
            if inside:
                last = w
        out.append((ids, opens))
    return out


def windows(n: int, size: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) spans of at most `size` covering range(n), consecutive ones sharing `stride`."""
    if n <= size:
        return [(0, n)]
    step = max(1, size - max(0, min(stride, size // 2)))
    spans, start = [], 0
    while True:
        end = min(start + size, n)
        spans.append((start, end))
        if end == n:
            return spans
        start += step


def encode(
    tokenizer,
    texts: list[str],
    words: list[list[tuple[int, int]]],
    layout: TagLayout,
    passages: list[list[str]] | None = None,
    tags: list[list[int]] | None = None,
) -> Tagged:
    """Windows of every text (with its passages after the separator); labels from `tags` (word tag ids)."""
    text_budget, passage_budget = layout.budgets(tokenizer)
    tpl = _template(tokenizer)
    uses_types = "token_type_ids" in tokenizer.model_input_names
    sep = tokenizer.sep_token_id
    groups = passages or [[] for _ in texts]
    flat = iter(token_ids(tokenizer, [p for g in groups for p in g[: layout.neighbours]], passage_budget))
    out = Tagged()
    for row, (ids, opens) in enumerate(first_subtokens(tokenizer, texts, words)):
        tail: list[int] = []
        for _ in groups[row][: layout.neighbours]:
            piece = next(flat)
            if piece:
                tail.extend(([sep] if tail and sep is not None else []) + piece)
        for start, end in windows(len(ids), text_budget, layout.stride):
            body = ids[start:end]
            if tail:
                before, between, after = tpl.pair
                full = before + body + between + tail + after
                t = tpl.pair_types
                types = (
                    [t[0]] * len(before)
                    + [t[1]] * len(body)
                    + [t[2]] * len(between)
                    + [t[3]] * len(tail)
                    + [t[4]] * len(after)
                )
            else:
                before, after = tpl.single
                full, types = before + body + after, [0] * (len(before) + len(body) + len(after))
            full, types = full[: layout.max_length], types[: layout.max_length]
            labels = np.full(len(full), IGNORE, dtype=np.int64)
            firsts = []
            for p in range(start, end):
                word = opens[p]
                position = len(before) + p - start
                if word < 0 or position >= len(full):
                    continue
                firsts.append((position, word, min(p - start, end - 1 - p)))
                if tags is not None:
                    labels[position] = tags[row][word]
            out.requests.append(Request(full, types if uses_types else None))
            out.labels.append(labels)
            out.sentence.append(row)
            out.firsts.append(firsts)
    return out


def merge(tagged: Tagged, tag_ids: np.ndarray, probs: np.ndarray, word_counts: list[int]) -> list[list[tuple]]:
    """Per text, per word: (tag id, probability) from the window where the word is farthest from an edge;
    (0, 0.0), i.e. O, for a word no sub-token opens (a sub-token that straddles two words)."""
    best: list[list[tuple[int, float, int]]] = [[(0, 0.0, -1)] * n for n in word_counts]
    for r, (row, firsts) in enumerate(zip(tagged.sentence, tagged.firsts)):
        for position, word, margin in firsts:
            if margin > best[row][word][2]:
                best[row][word] = (int(tag_ids[r, position]), float(probs[r, position]), margin)
    return [[(t, p) for t, p, _ in row] for row in best]


@dataclass(frozen=True)
class Span:
    start: int  # character offsets in the text
    end: int
    type: str
    score: float  # mean probability of its words' tags
    text: str


def decode(text: str, words: list[tuple[int, int]], tags: list[str], scores: list[float] | None = None) -> list[Span]:
    """Entity spans of IOB2 word tags; an I- that follows O or another type opens an entity (IOB2 repair)."""
    spans: list[Span] = []
    scores = scores or [1.0] * len(tags)
    kind, first, probs = None, 0, []

    def close(last: int) -> None:
        if kind is not None:
            start, end = words[first][0], words[last][1]
            spans.append(Span(start, end, kind, round(float(np.mean(probs)), 4), text[start:end]))

    for i, tag in enumerate(tags):
        inside = tag.startswith("I-") and tag[2:] == kind
        if inside:
            probs.append(scores[i])
            continue
        close(i - 1)
        kind, first, probs = (tag[2:], i, [scores[i]]) if tag != "O" else (None, i, [])
    close(len(tags) - 1)
    return spans


def repair(tags: list[str]) -> list[str]:
    """The same tags in strict IOB2: an I- that opens an entity becomes B-."""
    out, prev = [], "O"
    for tag in tags:
        if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out
