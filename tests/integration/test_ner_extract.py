"""NER end to end, lean: `docpipe train --task ner` on the gpu worker, promote, `docpipe extract` over ingested
news, entities in SQL and on the chunks (search filters by them), and `docpipe watch suggest`."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pipeline.store.db import session_scope
from pipeline.store.models_entities import EntityRow
from tests.ml_support import docpipe, docpipe_json
from tests.unit.test_ner_train import conll_sentences, minilm_2_layers, write_conll  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration
TENANT = "t-ner-e2e"
NEWS = [
    "Hooli shares rose after Carla Diaz said the company would expand in Berlin .",
    "Regulators in Tokyo fined Hooli over late filings , Ivan Petrov said .",
    "In Lagos , Globex opened a new office led by Julia Chen .",
]


def test_train_promote_extract_and_suggest(stack, tmp_path, minilm_2_layers):  # noqa: F811
    folder = tmp_path / "news"
    folder.mkdir()
    for i, text in enumerate(NEWS):
        (folder / f"n{i}.txt").write_text(text)
    job = stack.run_job([folder], TENANT)
    assert job.state == "succeeded" and job.done == 3, job.error

    refused = docpipe("train", str(write_conll(tmp_path / "bad.conll", [[("Acme", "X-ORG")]])), "--task", "ner")
    assert refused.returncode == 2 and "line 1: unknown tag 'X-ORG'" in refused.stderr

    data = write_conll(tmp_path / "train.conll", conll_sentences(160, seed=2))
    args = ("--task", "ner", "-t", TENANT, "--base-model", minilm_2_layers, "--epochs", "1", "--max-length", "64")
    code, trained = docpipe_json("train", data, *args, "--lr", "0.001", "--wait", timeout=900)
    assert code == 0 and trained["state"] == "succeeded", trained.get("error")
    model = trained["model"]
    assert model["task"] == "ner" and model["labels"][0] == "O" and model["metrics"]["baseline"]["f1"] >= 0.8
    assert docpipe("models", "promote", model["id"]).returncode == 0

    code, extracted = docpipe_json("extract", "-t", TENANT, "--wait")
    assert code == 0 and extracted["state"] == "succeeded" and extracted["counters"]["done"] == 3
    with session_scope(stack.settings().sql_url) as s:
        found = {(r.type, r.text) for r in s.scalars(select(EntityRow).where(EntityRow.tenant == TENANT))}
    assert {("ORG", "Hooli"), ("PER", "Carla Diaz"), ("LOC", "Lagos")} <= found

    es = stack.es()
    hits = es.search(
        index=f"{stack.settings().index_prefix}-read",
        query={"bool": {"filter": [{"term": {"tenant": TENANT}}, {"term": {"entities": "ORG:Hooli"}}]}},
        size=10,
    )["hits"]["hits"]
    assert sorted(h["_source"]["source"].rsplit("/", 1)[-1] for h in hits) == ["n0.txt", "n1.txt"]

    code, suggested = docpipe_json("watch", "suggest", "-t", TENANT)
    assert code == 0 and [s["name"] for s in suggested] == ["Hooli"]  # in two documents; Globex in one
