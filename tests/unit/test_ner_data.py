"""NER training data: CoNLL and JSON lines read into words and IOB2 tags; bad data refused, with its line."""

from __future__ import annotations

import json

import pytest

from pipeline.train.data import DataError
from pipeline.train.ner_data import load_ner, ner_data_hash, split_sentences
from pipeline.train.ner_job import NerRequest

IOB2 = """-DOCSTART- O

Acme B-ORG
Corp I-ORG
hired O
Jo B-PER
Li I-PER
. O

Shares O
of O
Acme B-ORG
fell O

Paris B-LOC
rallied O

Globex B-ORG
rose O
"""


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def _words(sentence) -> list[str]:
    return [sentence.text[a:b] for a, b in sentence.words]


def test_conll_iob2_reads_sentences_words_and_tags(tmp_path):
    ex = load_ner(_write(tmp_path, "d.conll", IOB2))
    assert len(ex) == 4 and ex.scheme == "iob2"
    first = ex.sentences[0]
    assert _words(first) == ["Acme", "Corp", "hired", "Jo", "Li", "."]
    assert first.tags == ["B-ORG", "I-ORG", "O", "B-PER", "I-PER", "O"] and first.line == 3
    assert ex.label_set == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert ex.entity_counts() == {"LOC": 1, "ORG": 3, "PER": 1}


def test_four_column_conll_takes_the_first_and_last_columns(tmp_path):
    text = "\n\n".join("Acme NNP B-NP B-ORG\nrose VBD B-VP O\nin IN B-PP O\nParis NNP B-NP B-LOC" for _ in range(4))
    ex = load_ner(_write(tmp_path, "d.txt", text))
    assert _words(ex.sentences[0]) == ["Acme", "rose", "in", "Paris"]
    assert ex.sentences[0].tags == ["B-ORG", "O", "O", "B-LOC"]


def test_iob1_is_recognised_and_converted_to_iob2(tmp_path):
    # IOB1: entities open with I-; B- only separates two adjacent entities of one type
    text = (
        "Acme I-ORG\nCorp I-ORG\nand O\nGlobex I-ORG\n\n"
        "Acme I-ORG\nGlobex B-ORG\nmet O\n\nJo I-PER\nsat O\n\nx O\nLi I-PER\n"
    )
    ex = load_ner(_write(tmp_path, "d.iob", text))
    assert ex.scheme == "iob1"
    assert ex.sentences[0].tags == ["B-ORG", "I-ORG", "O", "B-ORG"]
    assert ex.sentences[1].tags == ["B-ORG", "B-ORG", "O"]
    assert ex.sentences[3].tags == ["O", "B-PER"]


@pytest.mark.parametrize(
    "text,message",
    [
        ("Acme B-ORG\nrose O\n\nParis B-LOC NNP\n", "d.conll line 4: 3 columns where line 1 of the data has 2"),
        ("Acme B-ORG\nrose O\n\nParis S-LOC\n", "line 4: unknown tag 'S-LOC' (BIOES/BILOU: convert to IOB2)"),
        ("Acme B-ORG\nrose OUT\n", "line 2: unknown tag 'OUT'; use O, B-TYPE or I-TYPE"),
        ("Acme\nrose\n", "line 1: one column"),
        ("Acme B-ORG\nrose O\n\nthen O\nParis I-LOC\n\nJo B-PER\n", "line 5: I- opens an entity, yet other"),
        ("Acme B-ORG\n\nx O\n\ny O\n", "3 sentence(s); training and evaluation need at least 4"),
        ("a O\n\nb O\n\nc O\n\nd O\n", "no entity in any sentence"),
        ("Acme B-O$G\nrose O\n", "entity type 'O$G' is not a name"),
    ],
)
def test_bad_conll_is_refused_with_its_line(tmp_path, text, message):
    with pytest.raises(DataError) as err:
        load_ner(_write(tmp_path, "d.conll", text))
    assert message in str(err.value)


def _jsonl(tmp_path, rows) -> object:
    return _write(tmp_path, "d.jsonl", "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows))


def test_jsonl_spans_become_word_tags_even_inside_a_word(tmp_path):
    rows = [
        {"text": "AcmeCorp's boss Jo Li flew to New York.", "entities": [
            {"start": 0, "end": 4, "label": "ORG"},
            {"start": 16, "end": 21, "label": "PER"},
            {"start": 30, "end": 38, "label": "LOC"},
        ], "id": "doc-1"},
        *({"text": f"Globex rose {i}.", "entities": [{"start": 0, "end": 6, "label": "ORG"}]} for i in range(3)),
    ]  # fmt: skip
    ex = load_ner(_jsonl(tmp_path, rows))
    s = ex.sentences[0]
    assert ex.scheme == "spans" and s.id == "doc-1" and s.line == 1
    tagged = [(w, t) for w, t in zip(_words(s), s.tags) if t != "O"]
    assert tagged == [("Acme", "B-ORG"), ("Jo", "B-PER"), ("Li", "I-PER"), ("New", "B-LOC"), ("York", "I-LOC")]
    assert _words(s)[:4] == ["Acme", "Corp", "'", "s"]  # the span's end cut the word


@pytest.mark.parametrize(
    "bad,message",
    [
        ("{not json", "d.jsonl line 2: not JSON"),
        ({"text": "Acme", "entities": [{"start": 0, "end": 9, "label": "ORG"}]}, "line 2: span 0..9 lies outside"),
        (
            {
                "text": "Acme Corp",
                "entities": [{"start": 0, "end": 6, "label": "ORG"}, {"start": 5, "end": 9, "label": "ORG"}],
            },
            "line 2: spans 0..6 and 5..9 overlap",
        ),
        ({"text": "Acme", "entities": [{"start": 0, "label": "ORG"}]}, 'line 2: every entity needs "start", "end"'),
        ({"text": "   "}, 'line 2: needs a non-empty "text"'),
        ({"text": "Acme", "entities": [{"start": "0", "end": 4, "label": "ORG"}]}, "offsets must be integers"),
    ],
)  # fmt: skip
def test_bad_jsonl_is_refused_with_its_line(tmp_path, bad, message):
    good = {"text": "Acme rose.", "entities": [{"start": 0, "end": 4, "label": "ORG"}]}
    with pytest.raises(DataError) as err:
        load_ner(_jsonl(tmp_path, [good, bad, good, good, good]))
    assert message in str(err.value)


def test_split_keeps_every_type_in_training_and_the_hash_follows_the_data(tmp_path):
    ex = load_ner(_write(tmp_path, "d.conll", IOB2 * 5))
    train, held = split_sentences(ex, 0.2, seed=3)
    assert len(held) == 4 and sorted(train + held) == list(range(20))
    assert ner_data_hash(ex) == ner_data_hash(load_ner(_write(tmp_path, "e.conll", IOB2 * 5)))
    assert ner_data_hash(ex) != ner_data_hash(load_ner(_write(tmp_path, "f.conll", IOB2 * 4)))
    only_once = IOB2.replace("Paris B-LOC", "Paris O") * 4 + "Rome B-LOC\n"
    ex = load_ner(_write(tmp_path, "g.conll", only_once))
    rows = [i for i in range(len(ex)) if "B-LOC" in ex.sentences[i].tags]
    with pytest.raises(DataError, match="'LOC' occur only in the held-out"):
        for seed in range(50):  # some seed holds the one LOC sentence out
            split_sentences(ex, 0.2, seed)
    assert rows == [len(ex) - 1]


def test_request_refuses_fusion_a_stride_past_half_the_window_and_other_files(tmp_path):
    with pytest.raises(DataError, match="NER takes none or concat"):
        NerRequest(data="d", augment="fusion").check()
    with pytest.raises(DataError, match="--stride must be 0..64"):
        NerRequest(data="d", max_length=128, stride=65).check()
    with pytest.raises(DataError, match="unsupported NER data file type .csv"):
        load_ner(_write(tmp_path, "x.csv", "a,b\n"))
