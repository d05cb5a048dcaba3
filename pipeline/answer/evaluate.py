"""Answer quality over judged questions: citation hit rate and SQuAD-style token F1 (and exact match).

A line of the QA file is {"question", "answer", "relevant": [...]}; `answer` may be a list of accepted answers,
`relevant` names documents by source (exactly or by its tail, as eval-search judgements do) or by document id.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pipeline.answer.citations import strip_markers
from pipeline.evaluate import matches

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


@dataclass
class QA:
    question: str
    answers: list[str]
    relevant: list[str]


def load_qa(path: Path) -> list[QA]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            answers = row["answer"] if isinstance(row["answer"], list) else [row["answer"]]
            relevant = row.get("relevant") or []
            if not isinstance(relevant, list):
                raise TypeError("relevant must be a list")
            out.append(QA(str(row["question"]), [str(a) for a in answers], [str(r) for r in relevant]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            expected = '{"question": ..., "answer": ..., "relevant": [...]}'
            raise ValueError(f"{path}:{n}: expected {expected} ({exc})") from exc
    if not out:
        raise ValueError(f"{path} holds no questions")
    return out


def normalise(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def token_f1(prediction: str, truth: str) -> float:
    pred, gold = normalise(prediction).split(), normalise(truth).split()
    if not pred or not gold:
        return float(pred == gold)
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def is_relevant(citation: dict, relevant: list[str]) -> bool:
    return any(citation.get("doc_id") == r or matches(citation.get("source") or "", r) for r in relevant)


def score_answer(qa: QA, answer: str, citations: list[dict]) -> dict:
    text = strip_markers(answer)
    hits = [c for c in citations if is_relevant(c, qa.relevant)]
    return {
        "question": qa.question,
        "answer": answer,
        "f1": max(token_f1(text, a) for a in qa.answers),
        "exact": float(any(normalise(text) == normalise(a) for a in qa.answers)),
        "cited": len(citations),
        "cited_relevant": len(hits),
        "citation_hit": float(bool(hits)),
        "sources": [c.get("source") for c in citations],
    }


def summary(per_question: list[dict]) -> dict:
    n = len(per_question)
    cited = sum(q["cited"] for q in per_question)
    return {
        "questions": n,
        "citation_hit_rate": sum(q["citation_hit"] for q in per_question) / n if n else 0.0,
        "citation_precision": sum(q["cited_relevant"] for q in per_question) / cited if cited else 0.0,
        "f1": sum(q["f1"] for q in per_question) / n if n else 0.0,
        "exact_match": sum(q["exact"] for q in per_question) / n if n else 0.0,
    }
