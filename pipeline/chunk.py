"""Token-aware chunking that keeps sentences whole and overlaps neighbouring chunks.

Chunks are cut on sentence boundaries, or on word boundaries inside a sentence too long to
fit one chunk. With a WordPiece-style tokenizer (BERT, MiniLM) pre-tokenisation splits on
whitespace and punctuation, so a slice cut on a word boundary re-tokenises to exactly the
tokens it had in context: the counts computed here are the counts the encoder will see, and (tokenise once)
each chunk keeps its slice of the document's token ids, which the embedding stage feeds to the model without
tokenising the chunk again (pipeline/encoders/token_ids.py says for which tokenizers that holds).
"""

from __future__ import annotations

import json
import os
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from pipeline.config import ChunkSettings, defaults, get_settings
from pipeline.encoders.token_ids import tokenizer_info
from pipeline.types import ChunkSpan

# Position embeddings of BERT-family encoders stop at 512; longer configured limits are bogus.
MODEL_LIMIT_CAP = 512

# Sentences come from sentencex (Wikimedia's segmenter: rules and abbreviations for ~300 languages, lossless,
# in Rust). Structure it does not mark as a boundary is added here: paragraph breaks, list items, and CJK full stops
# in text of another language (a quoted Chinese sentence in an English article).
_STRUCTURE = re.compile(
    r"""
      \n[ \t\r\f\v]*\n\s*                     # blank line: paragraph break
    | \n[ \t]*(?=(?:[-*•]|\d{1,3}[.)])[ \t])    # newline that opens a list item
    | [。！？]["'”’」』）]*\s*                   # CJK full stops need no space after them
    """,
    re.VERBOSE,
)
# What sentencex gets for a document of unknown language: the corpus docpipe was first built for is English.
DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True)
class TokenSpan(ChunkSpan):
    """A chunk with its content token ids (no special tokens): the ids the chunker's tokenizer gives the chunk's
    text alone. None where the chunker keeps none (a tokenizer whose slices differ from their text's ids)."""

    token_ids: np.ndarray | None = field(default=None, compare=False, repr=False)


def sentence_starts(text: str, language: str | None = None) -> list[int]:
    """Character offsets where a sentence after the first one begins, by the rules of `language` (ISO 639-1)."""
    from sentencex import segment

    starts: set[int] = set()
    pos = 0
    for piece in segment(language or DEFAULT_LANGUAGE, text):
        found = text.find(piece, pos) if not text.startswith(piece, pos) else pos
        if found < 0:  # sentencex gives back the text unchanged; should it ever not, keep what was found so far
            break
        starts.add(found)
        pos = found + len(piece)
    starts.update(m.end() for m in _STRUCTURE.finditer(text))
    out: list[int] = []
    for start in sorted(starts):
        while start < len(text) and text[start].isspace():  # a sentence starts at its first word
            start += 1
        if 0 < start < len(text) and (not out or out[-1] != start):
            out.append(start)
    return out


def pages_of(start: int, end: int, page_starts: list[int] | None) -> list[int]:
    """The pages (1-based) that the characters start..end of a text with these page starts lie on."""
    if not page_starts or end <= start:
        return []
    first = bisect_right(page_starts, start)
    last = bisect_right(page_starts, end - 1)
    return list(range(max(first, 1), max(last, 1) + 1))


def model_max_tokens(model_path: str | Path, tokenizer) -> int:
    """Longest input, special tokens included, that the model behind model_path accepts."""
    limit = None
    st_config = Path(model_path) / "sentence_bert_config.json"
    if st_config.is_file():
        limit = json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length")
    if not limit:
        limit = tokenizer.model_max_length
    return min(int(limit), MODEL_LIMIT_CAP)


def _last_in(points: list[int], lo: int, hi: int) -> int | None:
    """Largest point p with lo < p <= hi."""
    i = bisect_right(points, hi) - 1
    return points[i] if i >= 0 and points[i] > lo else None


def _first_in(points: list[int], lo: int, hi: int) -> int | None:
    """Smallest point p with lo <= p < hi."""
    i = bisect_left(points, lo)
    return points[i] if i < len(points) and points[i] < hi else None


def pack(
    n: int,
    sentences: list[int],
    words: list[int],
    size: int,
    overlap: int,
    measure: Callable[[int, int], int] | None = None,
    limit: Callable[[int], int] | None = None,
) -> list[tuple[int, int, int]]:
    """Token ranges (start, end, count) covering tokens 0..n.

    sentences and words are sorted token indices where a sentence/word begins, both holding
    0 and n; words may be empty when no sentence is longer than size. measure(a, b) gives the
    re-tokenised length of a range and is only called for ranges starting inside a word
    (after a word longer than size was cut), whose tokens change when sliced out. limit(a) is the largest end b
    such that tokens a..b fit the character cap; a chunk whose first token alone passes it is that one token
    (the caller cuts it by characters).
    """
    spans: list[tuple[int, int, int]] = []
    start, prev_end = 0, 0
    while True:
        # Past prev_end, so every chunk brings new text and the loop always advances.
        lo, hi = max(start, prev_end), min(start + size, n)
        if limit is not None:
            cap = limit(start)
            if cap <= lo:  # the overlap leaves no room for new text under the character cap: drop it
                start = lo
                cap = limit(start)
            hi = min(start + size, n, max(cap, start + 1))
        end = _last_in(sentences, lo, hi) or _last_in(words, lo, hi) or hi
        count = end - start
        if measure is not None and words and _first_in(words, start, start + 1) is None:
            count = measure(start, end)
            while count > size and end - start > 1:
                end = max(start + 1, end - (count - size))
                count = measure(start, end)
        spans.append((start, end, count))
        if end >= n:
            return spans
        prev_end = end
        k = bisect_right(sentences, end)
        if sentences[k - 1] == end:
            lo = max(end - overlap, start + 1)
            if sentences[k] - end <= size:
                # Give up overlap rather than the whole next sentence.
                lo = max(lo, sentences[k] - size)
            nxt = _first_in(sentences, lo, end)
            if nxt is None and end - sentences[k - 2] > size:
                nxt = _first_in(words, lo, end)  # tail of a split sentence: overlap by tokens
        else:
            nxt = _first_in(words, max(end - overlap, start + 1), end)
        start = end if nxt is None else nxt


_CHUNK = defaults(ChunkSettings)
# English prose averages 4-6 characters a token; 20 is reached only by runs the tokenizer cannot split (one
# unknown token for a whole unbroken run), which the token limit alone would let grow without bound.
CHARS_PER_TOKEN = 20


def max_chars_for(chunk_tokens: int, max_chars: int = 0) -> int:
    """The character cap of a chunk: `max_chars`, or with 0 CHARS_PER_TOKEN per chunk token."""
    return max_chars if max_chars > 0 else CHARS_PER_TOKEN * chunk_tokens


class Chunker:
    def __init__(
        self,
        tokenizer,
        chunk_tokens: int = _CHUNK.tokens,
        overlap_tokens: int = _CHUNK.overlap,
        max_tokens: int | None = None,
        max_chars: int = _CHUNK.max_chars,
    ):
        if not getattr(tokenizer, "is_fast", False):
            raise TypeError("Chunker needs a fast tokenizer: it relies on offset mappings")
        if max_tokens is None:
            max_tokens = min(int(tokenizer.model_max_length), MODEL_LIMIT_CAP)
        budget = max_tokens - tokenizer.num_special_tokens_to_add(pair=False)
        if budget < 1:
            raise ValueError(f"max_tokens={max_tokens} leaves no room for text")
        if chunk_tokens < 1:
            raise ValueError(f"chunk_tokens must be positive, got {chunk_tokens}")
        chunk_tokens = min(chunk_tokens, budget)
        if not 0 <= overlap_tokens < chunk_tokens:
            raise ValueError(f"overlap_tokens={overlap_tokens} must be >= 0 and < chunk_tokens={chunk_tokens}")
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.budget = budget
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens
        self.max_chars = max_chars_for(chunk_tokens, max_chars)
        self._keeps_ids: bool | None = None

    @property
    def keeps_ids(self) -> bool:
        """Whether chunks carry their token ids: only where a slice of a text's ids is the slice's own ids."""
        if self._keeps_ids is None:
            self._keeps_ids = tokenizer_info(self.tokenizer).exact_slices
        return self._keeps_ids

    @classmethod
    def for_model(
        cls,
        model_path: str | Path,
        chunk_tokens: int = _CHUNK.tokens,
        overlap_tokens: int = _CHUNK.overlap,
        max_chars: int | None = None,
    ) -> Chunker:
        """A chunker with the model's tokenizer; max_chars None takes DOCPIPE_CHUNK_MAX_CHARS."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoTokenizer

        if max_chars is None:
            max_chars = get_settings().chunk.max_chars
        tokenizer = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
        return cls(tokenizer, chunk_tokens, overlap_tokens, model_max_tokens(model_path, tokenizer), max_chars)

    def chunk(self, text: str, language: str | None = None) -> list[TokenSpan]:
        """Chunks of `text`, cut at sentence ends by the rules of `language` (ISO 639-1; None: English)."""
        return self.chunk_many([text], [language])[0]

    def chunk_many(self, texts: list[str], languages: list[str | None] | None = None) -> list[list[TokenSpan]]:
        out: list[list[TokenSpan]] = [[] for _ in texts]
        live = [i for i, text in enumerate(texts) if text and not text.isspace()]
        if not live:
            return out
        enc = self.tokenizer(
            [texts[i] for i in live],
            add_special_tokens=False,
            return_offsets_mapping=True,
            return_attention_mask=False,
            return_token_type_ids=False,
            truncation=False,
            verbose=False,  # long documents are the point here, not a mistake to warn about
        )
        offsets = enc["offset_mapping"]
        keep = self.keeps_ids
        for row, i in enumerate(live):
            language = languages[i] if languages is not None else None
            ids = np.asarray(enc["input_ids"][row], dtype=np.int64) if keep else None
            out[i] = self._chunk_encoded(texts[i], offsets[row], partial(enc.word_ids, row), language, ids)
        return out

    def _chunk_encoded(
        self,
        text: str,
        offsets,
        word_ids: Callable[[], list],
        language: str | None = None,
        token_ids: np.ndarray | None = None,
    ) -> list[TokenSpan]:
        n = len(offsets)
        if n == 0:
            return []
        token_starts = [s for s, _ in offsets]
        sentences = [0]
        for char in sentence_starts(text, language):
            tok = bisect_left(token_starts, char)
            if sentences[-1] < tok < n:
                sentences.append(tok)
        sentences.append(n)

        words: list[int] = []
        size, max_chars = self.chunk_tokens, self.max_chars
        token_ends = [e for _, e in offsets]
        if any(
            b - a > size or token_ends[b - 1] - token_starts[a] > max_chars for a, b in zip(sentences, sentences[1:])
        ):
            ids = word_ids()
            words = [i for i in range(n) if i == 0 or ids[i] != ids[i - 1]]
            words.append(n)

        measured: dict[tuple[int, int], list[int]] = {}

        def measure(a: int, b: int) -> int:
            # a range that starts inside a word: its ids alone differ from its slice of the document's
            piece = text[offsets[a][0] : offsets[b - 1][1]]
            measured[(a, b)] = self.tokenizer(piece, add_special_tokens=False)["input_ids"]
            return len(measured[(a, b)])

        def limit(a: int) -> int:
            return bisect_right(token_ends, token_starts[a] + max_chars)

        out: list[tuple[int, int, int, np.ndarray | None]] = []
        for a, b, count in pack(n, sentences, words, size, self.overlap_tokens, measure, limit):
            start, end = offsets[a][0], offsets[b - 1][1]
            if end - start <= max_chars:
                kept = None if token_ids is None else token_ids[a:b]
                if kept is not None and (a, b) in measured:  # starts inside a word: the range's own ids
                    kept = np.asarray(measured[(a, b)], dtype=np.int64)
                out.append((start, end, count, kept))
            else:  # one token spanning an unbroken run (a whole run is one unknown token): cut it by characters
                out += self._cut(text, start, end, token_ids is not None)
        return [TokenSpan(ordinal=k, start=s, end=e, token_count=c, token_ids=t) for k, (s, e, c, t) in enumerate(out)]

    def _cut(self, text: str, start: int, end: int, keep: bool) -> list[tuple[int, int, int, np.ndarray | None]]:
        pieces = []
        while start < end:
            stop = min(start + self.max_chars, end)
            own = self._ids(text[start:stop])
            while len(own) > self.chunk_tokens and stop - start > 1:  # a short tail may split into many word pieces
                stop = start + max(1, (stop - start) * self.chunk_tokens // len(own))
                own = self._ids(text[start:stop])
            pieces.append((start, stop, len(own), np.asarray(own, dtype=np.int64) if keep else None))
            start = stop
        return pieces

    def _ids(self, piece: str) -> list[int]:
        return self.tokenizer(piece, add_special_tokens=False)["input_ids"]
