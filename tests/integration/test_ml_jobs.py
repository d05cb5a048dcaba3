"""Training and classification end to end: real `docpipe` commands, Celery gpu worker, noida-db, SQL."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.store.db import session_scope
from pipeline.store.models import IndexVersion
from pipeline.store.models_ml import Prediction
from pipeline.types import document_id
from tests.ml_support import TOPICS, docpipe_json, topic_rows, topic_text, write_rows

pytestmark = pytest.mark.integration
TENANT = "t-ml"


@pytest.fixture(scope="module")
def corpus(stack, tmp_path_factory):
    """30 topic documents ingested through the real pipeline."""
    folder = tmp_path_factory.mktemp("ml-corpus")
    topics = sorted(TOPICS)
    for i in range(30):
        (folder / f"doc-{i}.txt").write_text(topic_text(topics[i % 3], 7_000 + i, words=120))
    job = stack.run_job([folder], TENANT)
    assert job.state == "succeeded" and job.done == 30, job.error
    return folder


def _training_file(folder: Path, tmp_path: Path) -> Path:
    """240 examples; the first 30 are the indexed documents themselves, linked by file name."""
    rows = topic_rows(240, seed=1)
    topics = sorted(TOPICS)
    for i in range(30):
        rows[i] = {"id": f"doc-{i}.txt", "text": (folder / f"doc-{i}.txt").read_text(), "label": topics[i % 3]}
    return write_rows(tmp_path / "train.csv", rows)


def test_train_promote_classify_end_to_end(stack, corpus, tmp_path):
    data = _training_file(corpus, tmp_path)
    code, rec = docpipe_json("train", str(data), "--text-col", "text", "--label-col", "label", "--id-col", "id",
                             "--augment", "concat", "--neighbours", "2", "--compare", "--epochs", "0.5",
                             "--max-length", "64", "--tenant", TENANT, "--task", "topic", "--wait")
    assert (code, rec["state"]) == (0, "succeeded"), rec.get("error")
    model = rec["model"]
    assert model["status"] == "ready" and not model["live"] and model["labels"] == ["finance", "science", "sport"]
    assert set(model["metrics"]) == {"retrieval", "baseline", "gain"}
    for side in ("retrieval", "baseline"):
        m = model["metrics"][side]
        assert m["examples"] == 48 and set(m["per_class"]) == set(model["labels"]) and 0 <= m["macro_f1"] <= 1
    assert model["metrics"]["retrieval"]["augment"] == "concat"
    assert rec["metrics"]["progress"]["total_steps"] == 6 and len(rec["metrics"]["history"]["concat"]) == 1
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
        live_index = s.query(IndexVersion).filter_by(state="live").one().name
    assert model["index_version"] == live_index

    # neighbours were saved with the job; an indexed document never neighbours its own example
    saved = json.loads(Path(model["params"]["neighbours_file"]).read_text())
    assert model["params"]["neighbours_hash"] == saved["hash"] and model["params"]["neighbour_count"] > 200
    for i in range(30):
        own = document_id(TENANT, str(corpus / f"doc-{i}.txt"))
        assert saved["rows"][i] and own not in {n["doc_id"] for n in saved["rows"][i]}
    folder = Path(model["artefact_path"])
    assert (folder / "docpipe_model.json").is_file() and not list(folder.parent.glob("runs/*/checkpoint.pt"))

    code, promoted = docpipe_json("models", "promote", model["id"][:8])
    assert code == 0 and promoted["live"]
    _, listed = docpipe_json("models", "list", "--tenant", TENANT)
    assert [m["id"] for m in listed if m["live"]] == [model["id"]]

    code, job = docpipe_json("classify", "--tenant", TENANT, "--task", "topic", "--wait")
    assert (code, job["state"], job["counters"]["done"], job["counters"]["total"]) == (0, "succeeded", 30, 30)
    assert job["options"]["model_id"] == model["id"]  # pinned at the start of the job
    first = _labels(stack)
    assert len(first["sql"]) == 30 and first["sql"] == first["es_docs"]
    assert first["chunks"] == sum(1 for _ in first["chunk_labels"]) > 0
    for label, scores in first["sql"].values():
        assert label in model["labels"] and abs(sum(scores.values()) - 1) < 1e-3
        assert max(scores, key=scores.get) == label

    # search filtered by label returns only that label's chunks
    es, alias = stack.es(), f"{stack.settings().index_prefix}-read"
    some_label = next(iter(first["sql"].values()))[0]
    hits = es.search(index=alias, size=100, query={"bool": {"filter": [
        {"term": {"tenant": TENANT}}, {"term": {"label": some_label}}]}})["hits"]["hits"]
    assert hits and all(first["sql"][h["_source"]["doc_id"]][0] == some_label for h in hits)

    # classifying again (a query's hits this time) changes nothing: same labels, same rows
    code, again = docpipe_json("classify", "--tenant", TENANT, "--task", "topic", "--query",
                               "market bank profit", "--k", "10", "--wait")
    assert code == 0 and again["state"] == "succeeded" and 0 < again["counters"]["done"] <= 10
    second = _labels(stack)["sql"]
    assert {d: v[0] for d, v in second.items()} == {d: v[0] for d, v in first["sql"].items()}
    for doc_id, (_, scores) in second.items():  # other batch-mates, other float rounding: same numbers
        assert scores.keys() == first["sql"][doc_id][1].keys()
        assert all(abs(p - first["sql"][doc_id][1][label]) < 1e-4 for label, p in scores.items())


def _labels(stack) -> dict:
    es, alias = stack.es(), f"{stack.settings().index_prefix}-read"
    es.indices.refresh(index=alias)
    hits = es.search(index=alias, size=1000, query={"term": {"tenant": TENANT}},
                     source=["doc_id", "label", "label_scores"])["hits"]["hits"]
    chunk_labels = [(h["_source"]["doc_id"], h["_source"].get("label"), h["_source"].get("label_scores"))
                    for h in hits]
    es_docs = {}
    for doc_id, label, scores in chunk_labels:
        assert label is not None, f"chunk of {doc_id} has no label"
        assert es_docs.setdefault(doc_id, (label, scores)) == (label, scores)  # every chunk of a doc agrees
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
        sql = {p.document_id: (p.label, p.scores) for p in s.query(Prediction).filter_by(tenant=TENANT, task="topic")}
    return {"sql": sql, "es_docs": es_docs, "chunk_labels": chunk_labels, "chunks": len(chunk_labels)}
