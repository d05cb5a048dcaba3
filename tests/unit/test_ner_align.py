"""Tags aligned to sub-word tokens with the real tokenizer: first sub-token labelled, long sentences in
windows merged back, neighbour passages unlabelled, entity spans at their exact character offsets."""

from __future__ import annotations

import numpy as np

from pipeline.infer.ner_inputs import IGNORE, TagLayout, decode, encode, merge, repair, split_words, windows
from tests.ml_support import tokenizer  # noqa: F401  (fixture)

TAGS = ["O", "B-ORG", "I-ORG", "B-PER", "I-PER"]


def _tokens(tok, request) -> list[str]:
    return tok.convert_ids_to_tokens(request.input_ids)


def test_only_the_first_sub_token_of_a_word_carries_its_tag(tokenizer):  # noqa: F811
    text = "Brzęczyszczykiewicz joined Acme Corp"
    words = split_words(text)
    tagged = encode(tokenizer, [text], [words], TagLayout(64), tags=[[3, 0, 1, 2]])
    assert len(tagged.requests) == 1
    tokens, labels = _tokens(tokenizer, tagged.requests[0]), tagged.labels[0].tolist()
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and labels[0] == labels[-1] == IGNORE
    pairs = list(zip(tokens, labels))[1:-1]
    # the surname splits into many pieces: only the first is labelled B-PER, the rest are ignored
    assert pairs[0] == ("br", 3) and all(label == IGNORE for tok, label in pairs[1:] if tok.startswith("##"))
    assert [(t, label) for t, label in pairs if label != IGNORE] == [("br", 3), ("joined", 0), ("ac", 1), ("corp", 2)]
    assert ("##me", IGNORE) in pairs


def test_a_long_sentence_is_cut_into_windows_and_merged_back_word_for_word(tokenizer):  # noqa: F811
    rng = np.random.default_rng(0)
    vocab = ["Acme", "Globex", "unbelievably", "reorganisation", "of", "the", "Zbigniew", "said", ","]
    text = " ".join(rng.choice(vocab) for _ in range(300))
    words = split_words(text)
    tags = [[int(rng.integers(0, len(TAGS))) for _ in words]]
    layout = TagLayout(max_length=32, stride=8)
    tagged = encode(tokenizer, [text], [words], layout, tags=tags)
    assert len(tagged.requests) > 10 and all(len(r) <= 32 for r in tagged.requests)
    labelled = {w for firsts in tagged.firsts for _, w, _ in firsts}
    assert labelled == set(range(len(words)))  # every word is labelled somewhere
    # a model that predicts each position's label exactly: merging gives back every word's tag
    width = max(len(r) for r in tagged.requests)
    ids = np.zeros((len(tagged.requests), width), dtype=np.int64)
    for i, labels in enumerate(tagged.labels):
        ids[i, : len(labels)] = np.where(labels == IGNORE, 0, labels)
    merged = merge(tagged, ids, np.ones(ids.shape), [len(words)])
    assert [t for t, _ in merged[0]] == tags[0]
    # in the overlaps, the window where the word sits farther from an edge wins
    spans = windows(100, 30, 10)
    assert spans[0] == (0, 30) and spans[1] == (20, 50) and spans[-1][1] == 100


def test_merge_reads_each_word_from_the_window_where_it_is_farthest_from_an_edge():
    from pipeline.infer.ner_inputs import Tagged

    tagged = Tagged(sentence=[0, 0], firsts=[[(5, 0, 1)], [(2, 0, 4)]])
    ids = np.array([[0, 0, 0, 0, 0, 1], [0, 0, 3, 0, 0, 0]])
    probs = np.array([[0, 0, 0, 0, 0, 0.9], [0, 0, 0.6, 0, 0, 0]])
    assert merge(tagged, ids, probs, [1]) == [[(3, 0.6)]]


def test_neighbour_passages_follow_the_sentence_and_carry_no_labels(tokenizer):  # noqa: F811
    text = "Acme hired Jo Li"
    words = split_words(text)
    passage = "Acme Corp is a maker of anvils based in the desert"
    layout = TagLayout(max_length=40, neighbours=2)
    tagged = encode(tokenizer, [text], [words], layout, passages=[[passage, passage]], tags=[[1, 0, 3, 4]])
    request, labels = tagged.requests[0], tagged.labels[0]
    tokens = _tokens(tokenizer, request)
    first_sep = tokens.index("[SEP]")
    assert len(request) <= 40 and tokens.count("[SEP]") == 3  # text [SEP] passage [SEP] passage [SEP]
    assert (labels[first_sep:] == IGNORE).all()  # nothing after the sentence is labelled
    assert set(request.token_type_ids[first_sep + 1 :]) == {1} and set(request.token_type_ids[:first_sep]) == {0}
    assert sorted(labels[labels != IGNORE].tolist()) == [0, 1, 3, 4]


def test_spans_come_back_at_their_character_offsets_and_iob2_is_repaired():
    text = "  Shares of Acme Corp. rose; Jo  Li said so in São Paulo."
    words = split_words(text)
    tags = ["O"] * len(words)
    at = {text[a:b]: i for i, (a, b) in enumerate(words)}
    tags[at["Acme"]], tags[at["Corp"]] = "B-ORG", "I-ORG"
    tags[at["Jo"]], tags[at["Li"]] = "I-PER", "I-PER"  # opens with I-: repaired to one PER entity
    tags[at["São"]], tags[at["Paulo"]] = "B-LOC", "I-LOC"
    spans = decode(text, words, tags, [0.9] * len(words))
    assert [(s.type, s.text) for s in spans] == [("ORG", "Acme Corp"), ("PER", "Jo  Li"), ("LOC", "São Paulo")]
    assert all(text[s.start : s.end] == s.text for s in spans)
    assert repair(["I-PER", "I-PER", "O", "I-ORG", "B-ORG"]) == ["B-PER", "I-PER", "O", "B-ORG", "B-ORG"]
