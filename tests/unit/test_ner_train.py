"""Token-level fine-tuning on generated CoNLL data (a 2-layer MiniLM on the CPU): entity F1, the saved model
tagging new text at exact offsets, and the retrieval-augmented run compared with its baseline in one job."""

from __future__ import annotations

import random

import pytest

from pipeline.neighbours import Neighbour, NeighbourSet
from pipeline.train.job import summarise
from pipeline.train.ner_job import NerRequest, NerTrainingJob, job_for, request_for

ORGS = [
    "Acme Corp",
    "Globex",
    "Initech Systems",
    "Umbrella Holdings",
    "Stark Industries",
    "Wayne Enterprises",
    "Cyberdyne",
    "Soylent Group",
    "Tyrell Corporation",
    "Hooli",
    "Vandelay Industries",
    "Massive Dynamic",
]
PERS = [
    "Alice Martin",
    "Bob Stone",
    "Carla Diaz",
    "Deepak Rao",
    "Erin Walsh",
    "Fumiko Tanaka",
    "Gustavo Lima",
    "Hannah Berg",
    "Ivan Petrov",
    "Julia Chen",
]
LOCS = ["Paris", "New York", "Lagos", "Tokyo", "Berlin", "Mumbai", "Toronto", "Cape Town", "Madrid", "Seoul"]
TICKERS = ["ACME", "GLBX", "INTK", "UMBR", "STRK", "WAYN", "CYBD", "HOOL"]
TEMPLATES = [
    "{ORG} shares rose after {PER} said the company would expand in {LOC} .",
    "{PER} , chief executive of {ORG} , met investors in {LOC} on Monday .",
    "Analysts cut their target for {TICKER} as {ORG} warned on profits .",
    "In {LOC} , {ORG} opened a new office led by {PER} .",
    "{ORG} ( {TICKER} ) agreed to buy {ORG} for 2 billion dollars .",
    "Regulators in {LOC} fined {ORG} over late filings , {PER} said .",
]  # fmt: skip
SLOTS = {"ORG": ORGS, "PER": PERS, "LOC": LOCS, "TICKER": TICKERS}


def conll_sentences(n: int, seed: int = 0) -> list[list[tuple[str, str]]]:
    """n sentences from templates with company, person, place and ticker slots, as (token, IOB2 tag)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        tokens = []
        for part in rng.choice(TEMPLATES).split():
            if part.startswith("{"):
                kind = part[1:-1]
                for j, word in enumerate(rng.choice(SLOTS[kind]).split()):
                    tokens.append((word, ("B-" if j == 0 else "I-") + kind))
            else:
                tokens.append((part, "O"))
        out.append(tokens)
    return out


def write_conll(path, sentences) -> str:
    path.write_text("\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in sentences) + "\n")
    return str(path)


@pytest.fixture(scope="session")
def minilm_2_layers(tmp_path_factory):
    """The real MiniLM cut to its first 2 layers: pretrained enough to learn tags in seconds on a CPU."""
    from transformers import AutoTokenizer, BertModel

    from pipeline.config import default_encoder_path

    folder = tmp_path_factory.mktemp("minilm-2")
    model = BertModel.from_pretrained(default_encoder_path())
    model.encoder.layer = model.encoder.layer[:2]
    model.config.num_hidden_layers = 2
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(default_encoder_path()).save_pretrained(folder)
    return str(folder)


def _request(data: str, **kw) -> NerRequest:
    options = {"data": data, "task": "ner", "epochs": 1.0, "batch_size": 16, "max_length": 64, "lr": 1e-3}
    request = request_for({**options, "checkpoint_steps": 1000, **kw})
    assert isinstance(request, NerRequest)
    return request


def test_training_reaches_entity_f1_and_the_model_tags_new_text(tmp_path, minilm_2_layers):
    from pipeline.infer.artefact import unusable
    from pipeline.infer.ner_model import Tagger

    data = write_conll(tmp_path / "news.conll", conll_sentences(240))
    work = job_for(_request(data), "t", tmp_path / "work", minilm_2_layers, "cpu")
    assert isinstance(work, NerTrainingJob)
    work.load()
    result = work.run("none")
    m = result["metrics"]
    assert m["f1"] >= 0.9 and m["entities"] > 100, m
    assert set(m["per_type"]) == {"LOC", "ORG", "PER", "TICKER"} and all(t["f1"] > 0.7 for t in m["per_type"].values())
    assert unusable(work.model_dir) is None  # promote's check reads the folder as it reads a classifier's
    tagger = Tagger(work.model_dir, "cpu")
    text = "Yesterday Hooli hired Carla Diaz to run its Berlin office."
    found = {(s.type, s.text) for s in tagger.tag([text])[0]}
    assert {("ORG", "Hooli"), ("PER", "Carla Diaz"), ("LOC", "Berlin")} <= found
    assert all(text[s.start : s.end] == s.text for s in tagger.tag([text])[0])
    assert work.params()["tag_scheme"] == "iob2" and work.params()["entity_types"] == ["LOC", "ORG", "PER", "TICKER"]


@pytest.mark.slow  # trains twice
def test_concat_run_and_its_baseline_in_one_job_report_both(tmp_path, minilm_2_layers):
    sentences = conll_sentences(100, seed=1)
    data = write_conll(tmp_path / "news.conll", sentences)
    request = _request(data, augment="concat", compare=True, neighbours=2, max_length=80, epochs=2.0, batch_size=8)
    assert request.modes() == ["concat", "none"]
    work = job_for(request, "t", tmp_path / "work", minilm_2_layers, "cpu")
    examples = work.load()
    # the neighbours the index would give (retrieval itself is the classification job's, tested there)
    note = "Background note on the markets and the companies."
    rows = [[Neighbour(f"c{i}-{k}", f"d{k}", "feed", note, 1.0) for k in (1, 2)] for i in range(len(examples))]
    work.neighbours = NeighbourSet("docpipe-chunks-v1", 2, rows)
    (tmp_path / "work").mkdir(exist_ok=True)
    (tmp_path / "work" / "neighbours.json").write_text(work.neighbours.to_json())
    results = {mode: work.run(mode) for mode in request.modes()}
    summary = summarise(request, results)
    assert summary["retrieval"]["augment"] == "concat" and summary["baseline"]["augment"] == "none"
    assert {"f1", "macro_f1", "accuracy"} <= set(summary["gain"])
    assert summary["gain"]["f1"] == pytest.approx(summary["retrieval"]["f1"] - summary["baseline"]["f1"], abs=1e-4)
    assert summary["retrieval"]["f1"] >= 0.6 and summary["baseline"]["f1"] >= 0.6  # both learnt
    assert (work.model_dir / "neighbours.json").exists()  # the registered model is the concat one
