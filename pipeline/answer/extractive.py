"""The answer with no generator: the passages' sentences that best answer the question, each cited.

A sentence scores the cosine of its embedding (the index's encoder) with the question's, plus a share of the
question's content words it contains: the encoder ranks meaning, the overlap breaks its near-ties in favour of
the sentence that names what was asked about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from pipeline.answer.passages import Passage
from pipeline.chunk import sentence_starts

LEXICAL_WEIGHT = 0.25
SENTENCES = 3  # at most this many sentences make the answer
KEEP_SHARE = 0.6  # a sentence scoring under this share of the best one is left out
MIN_WORDS = 4  # shorter pieces are headings or debris, not answers (used when longer ones exist)
MAX_CANDIDATES = 500
_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(
    "a an the of in on at to for from by with and or but is are was were be been being do does did what which who "
    "whom whose when where why how that this these those it its as into about than then there their they he she "
    "we you i me my our your his her them not no yes can could would should will shall may might must has have had "
    "any some all each".split()
)


@dataclass
class Sentence:
    text: str
    passage: Passage
    score: float


def split_sentences(text: str) -> list[str]:
    cuts = [0, *sentence_starts(text), len(text)]
    pieces = (" ".join(text[a:b].split()) for a, b in zip(cuts, cuts[1:], strict=False))
    return [p for p in pieces if p]


def content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def overlap(question_words: set[str], sentence: str) -> float:
    if not question_words:
        return 0.0
    return len(question_words & content_words(sentence)) / len(question_words)


def best_sentences(question: str, passages: list[Passage], encoder, limit: int = SENTENCES) -> list[Sentence]:
    """The best-scoring distinct sentences, best first."""
    candidates: list[tuple[str, Passage]] = []
    seen: set[str] = set()
    for p in passages:
        for s in split_sentences(p.text):
            key = s.lower()
            if key not in seen:  # overlapping chunks repeat sentences: the higher-ranked passage keeps them
                seen.add(key)
                candidates.append((s, p))
    full = [c for c in candidates if len(c[0].split()) >= MIN_WORDS]
    candidates = (full or candidates)[:MAX_CANDIDATES]
    if not candidates:
        return []
    vectors = np.asarray(encoder.encode([question] + [s for s, _ in candidates]), dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    norms[norms == 0] = 1.0
    vectors = vectors / norms[:, None]
    cosines = vectors[1:] @ vectors[0]
    asked = content_words(question)
    scored = [
        Sentence(s, p, float(cos) + LEXICAL_WEIGHT * overlap(asked, s))
        for (s, p), cos in zip(candidates, cosines, strict=True)
    ]
    scored.sort(key=lambda x: (-x.score, x.passage.number))
    best = scored[0].score
    return [s for s in scored[:limit] if best <= 0 or s.score >= KEEP_SHARE * best]


def extractive_pieces(question: str, passages: list[Passage], encoder, limit: int = SENTENCES) -> list[str]:
    """The answer as the pieces it streams in: each sentence followed by its citation."""
    chosen = best_sentences(question, passages, encoder, limit)
    return [("" if i == 0 else " ") + f"{s.text} [{s.passage.number}]" for i, s in enumerate(chosen)]
