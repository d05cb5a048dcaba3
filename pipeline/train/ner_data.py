"""Token-level training data: CoNLL columns or JSON lines with character spans, checked before training.

Both formats become sentences: a text, its words (character spans) and one IOB2 tag per word.

- CoNLL: one token per line, the token in the first column and its tag in the last, a blank line between
  sentences, `-DOCSTART-` lines skipped. Every line of a file has as many columns as its first line.
  IOB2 is taken as is; IOB1 (an entity starts with I-, B- only between two adjacent entities of one type)
  is recognised and converted. A file that mixes both (I- opening an entity and B- opening another after
  O) is refused at the first such I-: it is neither scheme, and guessing would train on wrong entities.
  BIOES/BILOU tags (E-, S-, L-, U-) and anything else are refused with their line.
- JSON lines: `{"text": ..., "entities": [{"start", "end", "label"}]}` with optional "id" and "time"
  (the leak rules' example id and time). Words come from the text, cut at every span boundary, so a span
  that ends inside a word still labels exactly its characters.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from pipeline.infer.ner_inputs import split_words, tag_set
from pipeline.train.data import DataError, rows_hash

CONLL_SUFFIXES = (".conll", ".conllu", ".bio", ".iob", ".txt", ".tsv")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
_TAG = re.compile(r"^(?:O|([BI])-(\S+))$")
_TYPE = re.compile(r"^[A-Za-z][A-Za-z0-9_.]{0,31}$")


@dataclass
class Sentence:
    text: str
    words: list[tuple[int, int]]  # character spans in text
    tags: list[str]  # IOB2, one per word
    line: int  # where it starts in the file (1-based)
    id: str | None = None
    time: datetime | None = None


@dataclass
class NerExamples:
    """Sentences with what the shared training machinery reads (texts, ids, times, label_set)."""

    sentences: list[Sentence]
    label_set: list[str]  # the model's tags: O, then B-/I- of each type
    scheme: str  # iob2 | iob1 (converted) | spans

    def __len__(self) -> int:
        return len(self.sentences)

    @property
    def texts(self) -> list[str]:
        return [s.text for s in self.sentences]

    @property
    def ids(self) -> list[str | None]:
        return [s.id for s in self.sentences]

    @property
    def times(self) -> list[datetime | None]:
        return [s.time for s in self.sentences]

    @property
    def types(self) -> list[str]:
        return sorted({t[2:] for t in self.label_set if t != "O"})

    def entity_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.sentences:
            for tag in s.tags:
                if tag.startswith("B-"):
                    counts[tag[2:]] = counts.get(tag[2:], 0) + 1
        return dict(sorted(counts.items()))


def _check_type(kind: str, where: str) -> None:
    if not _TYPE.match(kind):
        raise DataError(f"{where}: entity type {kind!r} is not a name (letters, digits, _ or ., up to 32)")


def read_conll(path: Path) -> tuple[list[tuple[list[str], list[str], int]], int]:
    """([(tokens, tags, first line)], columns); DataError on ragged columns or unknown tags."""
    sentences: list[tuple[list[str], list[str], int]] = []
    tokens: list[str] = []
    tags: list[str] = []
    start, columns = 0, 0
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path.name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for number, line in enumerate(lines + [""], start=1):
        parts = line.split()
        if parts and parts[0] == "-DOCSTART-":
            parts = []
        if not parts:
            if tokens:
                sentences.append((tokens, tags, start))
            tokens, tags = [], []
            continue
        if columns == 0:
            columns = len(parts)
            if columns < 2:
                raise DataError(f"{path.name} line {number}: one column; CoNLL needs the token and its tag")
        if len(parts) != columns:
            raise DataError(
                f"{path.name} line {number}: {len(parts)} columns where line 1 of the data has {columns}; "
                "every token line needs the same columns (token first, tag last)"
            )
        tag = parts[-1]
        m = _TAG.match(tag)
        if not m:
            hint = " (BIOES/BILOU: convert to IOB2)" if re.match(r"^[ESLU]-", tag) else ""
            raise DataError(f"{path.name} line {number}: unknown tag {tag!r}{hint}; use O, B-TYPE or I-TYPE")
        if m.group(2):
            _check_type(m.group(2), f"{path.name} line {number}")
        if not tokens:
            start = number
        tokens.append(parts[0])
        tags.append(tag)
    return sentences, columns


def _opens(prev: str, tag: str) -> bool:
    """Does `tag` (I-X) open an entity after `prev` rather than continue one?"""
    return prev == "O" or prev[2:] != tag[2:]


def normalise_scheme(sentences: list[tuple[list[str], list[str], int]], name: str) -> str:
    """Turn IOB1 into IOB2 in place; 'iob2' or 'iob1'; DataError for a file that mixes them."""
    first_i_open = None
    b_after_other = False
    for _, tags, line in sentences:
        prev = "O"
        for offset, tag in enumerate(tags):
            if tag.startswith("I-") and _opens(prev, tag) and first_i_open is None:
                first_i_open = line + offset
            if tag.startswith("B-") and _opens(prev, tag):
                b_after_other = True
            prev = tag
    if first_i_open is None:
        return "iob2"
    if b_after_other:
        raise DataError(
            f"{name} line {first_i_open}: I- opens an entity, yet other entities open with B-: neither IOB2 "
            "nor IOB1; start every entity with B- (IOB2)"
        )
    for _, tags, _ in sentences:
        prev = "O"
        for i, tag in enumerate(tags):
            if tag.startswith("I-") and _opens(prev, tag):
                tags[i] = "B-" + tag[2:]
            prev = tag
    return "iob1"


def load_conll(path: Path) -> NerExamples:
    raw, _ = read_conll(path)
    if not raw:
        raise DataError(f"{path.name}: no sentences (token lines separated by blank lines)")
    scheme = normalise_scheme(raw, path.name)
    sentences = []
    for tokens, tags, line in raw:
        text = " ".join(tokens)
        words, at = [], 0
        for token in tokens:
            words.append((at, at + len(token)))
            at += len(token) + 1
        sentences.append(Sentence(text, words, tags, line))
    return _examples(sentences, scheme, path.name)


def _span_tags(text: str, spans: list[tuple[int, int, str]]) -> tuple[list[tuple[int, int]], list[str]]:
    words = split_words(text, cuts=[c for s, e, _ in spans for c in (s, e)])
    tags = ["O"] * len(words)
    for start, end, kind in spans:
        inside = [i for i, (ws, we) in enumerate(words) if ws >= start and we <= end]
        for n, i in enumerate(inside):
            tags[i] = ("B-" if n == 0 else "I-") + kind
    return words, tags


def load_jsonl(path: Path) -> NerExamples:
    from pipeline.train.data import _parse_times

    sentences: list[Sentence] = []
    times: list[tuple[int, object]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not row["text"].strip():
            raise DataError(f'{where}: needs a non-empty "text" string')
        text, entities = row["text"], row.get("entities", [])
        if not isinstance(entities, list):
            raise DataError(f'{where}: "entities" must be a list of {{"start", "end", "label"}}')
        spans: list[tuple[int, int, str]] = []
        for e in entities:
            if not isinstance(e, dict) or not {"start", "end", "label"} <= set(e):
                raise DataError(f'{where}: every entity needs "start", "end" and "label", got {e!r}')
            start, end, kind = e["start"], e["end"], e["label"]
            if not (isinstance(start, int) and isinstance(end, int)) or isinstance(start, bool):
                raise DataError(f"{where}: entity offsets must be integers, got {start!r}..{end!r}")
            if not 0 <= start < end <= len(text):
                raise DataError(f"{where}: span {start}..{end} lies outside the text (0..{len(text)})")
            if not text[start:end].strip():
                raise DataError(f"{where}: span {start}..{end} covers only whitespace")
            _check_type(str(kind), where)
            spans.append((start, end, str(kind)))
        spans.sort()
        for (s1, e1, _), (s2, e2, _) in zip(spans, spans[1:]):
            if s2 < e1:
                raise DataError(f"{where}: spans {s1}..{e1} and {s2}..{e2} overlap; nested entities are not supported")
        words, tags = _span_tags(text, spans)
        sentences.append(Sentence(text, words, tags, number, None if row.get("id") is None else str(row["id"])))
        if row.get("time") is not None:
            times.append((len(sentences) - 1, row["time"]))
    if times:
        if len(times) != len(sentences):
            raise DataError(f'{path.name}: "time" is given on some lines only; give it on every line or none')
        import pandas as pd

        for (i, _), ts in zip(times, _parse_times(pd.Series([t for _, t in times]), "time")):
            sentences[i].time = ts
    return _examples(sentences, "spans", path.name)


def _examples(sentences: list[Sentence], scheme: str, name: str) -> NerExamples:
    if len(sentences) < 4:
        raise DataError(f"{name}: {len(sentences)} sentence(s); training and evaluation need at least 4")
    types = sorted({t[2:] for s in sentences for t in s.tags if t != "O"})
    if not types:
        raise DataError(f"{name}: no entity in any sentence; tag some tokens (B-TYPE/I-TYPE) or give spans")
    return NerExamples(sentences, tag_set(types), scheme)


def load_ner(path: str | Path) -> NerExamples:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return load_jsonl(path)
    if suffix in CONLL_SUFFIXES:
        return load_conll(path)
    raise DataError(
        f"{path.name}: unsupported NER data file type {suffix or '(none)'}; use CoNLL "
        f"({', '.join(CONLL_SUFFIXES)}) or JSON lines ({', '.join(JSONL_SUFFIXES)})"
    )


def split_sentences(examples: NerExamples, eval_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train rows, held-out rows): the latest sentences held out when times are given, else at random.
    A type seen only in the held-out rows could never be learnt: refused."""
    if not 0 < eval_fraction < 1:
        raise DataError(f"eval fraction must lie between 0 and 1, got {eval_fraction}")
    n = len(examples)
    if examples.sentences[0].time is not None:
        order = sorted(range(n), key=lambda i: (examples.sentences[i].time, i))
    else:
        order = [int(i) for i in np.random.default_rng(seed).permutation(n)]
    cut = min(n - 1, max(1, n - round(n * eval_fraction)))
    train, held = sorted(order[:cut]), sorted(order[cut:])

    def types(rows: list[int]) -> set[str]:
        return {t[2:] for i in rows for t in examples.sentences[i].tags if t != "O"}

    unseen = sorted(types(held) - types(train))
    if unseen:
        raise DataError(
            f"entity type(s) {', '.join(map(repr, unseen))} occur only in the held-out sentences: "
            "the model could never learn them; add sentences with them"
        )
    return train, held


def ner_data_hash(examples: NerExamples) -> str:
    """sha256 of what training sees: each sentence's words and tags, id and time, in file order."""
    return rows_hash(
        [[s.text[a:b] for a, b in s.words], s.tags, s.id, s.time.isoformat() if s.time else None]
        for s in examples.sentences
    )
