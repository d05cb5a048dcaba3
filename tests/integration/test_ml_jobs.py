"""Training and classification end to end: real `docpipe` commands, Celery gpu worker, noida-db, SQL."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from pipeline.reindex.live import live_row
from pipeline.store.db import session_scope
from pipeline.store.models import Document, Job
from pipeline.store.models_ml import Prediction
from pipeline.types import document_id
from tests.conftest import stack_of_its_own
from tests.ml_support import TOPICS, docpipe_json, topic_rows, topic_text, write_rows

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(noida, tmp_path_factory):
    """A stack of this module's own: its reindexes and rollbacks count every indexed document in SQL."""
    with stack_of_its_own(noida, tmp_path_factory, "ml") as own:
        yield own


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


@pytest.fixture(scope="module")
def classified(stack, corpus, tmp_path_factory):
    """A concat model trained on the corpus through the real commands, promoted, and applied to all of it."""
    data = _training_file(corpus, tmp_path_factory.mktemp("ml-train"))
    code, trained = docpipe_json(
        "train",
        str(data),
        "--text-col",
        "text",
        "--label-col",
        "label",
        "--id-col",
        "id",
        "--augment",
        "concat",
        "--neighbours",
        "2",
        "--compare",
        "--epochs",
        "0.5",
        "--max-length",
        "64",
        "--tenant",
        TENANT,
        "--task",
        "topic",
        "--wait",
    )
    assert (code, trained["state"]) == (0, "succeeded"), trained.get("error")
    promoted = docpipe_json("models", "promote", trained["model"]["id"][:8])
    classify = docpipe_json("classify", "--tenant", TENANT, "--task", "topic", "--wait")
    assert classify[1]["state"] == "succeeded", classify[1].get("error")
    return {"trained": trained, "promoted": promoted, "classify": classify, "labels": _labels(stack), "corpus": corpus}


def test_train_promote_classify_end_to_end(stack, corpus, classified):
    rec = classified["trained"]
    model = rec["model"]
    assert model["status"] == "ready" and not model["live"] and model["labels"] == ["finance", "science", "sport"]
    assert set(model["metrics"]) == {"retrieval", "baseline", "gain"}
    for side in ("retrieval", "baseline"):
        m = model["metrics"][side]
        assert m["examples"] == 48 and set(m["per_class"]) == set(model["labels"]) and 0 <= m["macro_f1"] <= 1
    assert model["metrics"]["retrieval"]["augment"] == "concat"
    assert rec["metrics"]["progress"]["total_steps"] == 6 and len(rec["metrics"]["history"]["concat"]) == 1
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
        live_index = live_row(s, stack.settings().index_prefix).name
    assert model["index_version"] == live_index

    # neighbours were saved with the job; an indexed document never neighbours its own example
    saved = json.loads(Path(model["params"]["neighbours_file"]).read_text())
    assert model["params"]["neighbours_hash"] == saved["hash"] and model["params"]["neighbour_count"] > 200
    for i in range(30):
        own = document_id(TENANT, str(corpus / f"doc-{i}.txt"))
        assert saved["rows"][i] and own not in {n["doc_id"] for n in saved["rows"][i]}
    folder = Path(model["artefact_path"])
    assert (folder / "docpipe_model.json").is_file() and not list(folder.parent.glob("runs/*/checkpoint.pt"))

    code, promoted = classified["promoted"]
    assert code == 0 and promoted["live"]
    _, listed = docpipe_json("models", "list", "--tenant", TENANT)
    assert [m["id"] for m in listed if m["live"]] == [model["id"]]

    code, job = classified["classify"]
    assert (code, job["state"], job["counters"]["done"], job["counters"]["total"]) == (0, "succeeded", 30, 30)
    assert job["options"]["model_id"] == model["id"]  # pinned at the start of the job
    first = classified["labels"]
    assert len(first["sql"]) == 30 and first["sql"] == first["es_docs"]
    assert first["chunks"] == sum(1 for _ in first["chunk_labels"]) > 0
    for label, scores in first["sql"].values():
        assert label in model["labels"] and abs(sum(scores.values()) - 1) < 1e-3
        assert max(scores, key=scores.get) == label

    # search filtered by label returns only that label's chunks
    es, alias = stack.es(), f"{stack.settings().index_prefix}-read"
    some_label = next(iter(first["sql"].values()))[0]
    hits = es.search(
        index=alias,
        size=100,
        query={"bool": {"filter": [{"term": {"tenant": TENANT}}, {"term": {"label": some_label}}]}},
    )["hits"]["hits"]
    assert hits and all(first["sql"][h["_source"]["doc_id"]][0] == some_label for h in hits)

    # classifying again (a query's hits this time) changes nothing: same labels, same rows
    code, again = docpipe_json(
        "classify", "--tenant", TENANT, "--task", "topic", "--query", "market bank profit", "--k", "10", "--wait"
    )
    assert code == 0 and again["state"] == "succeeded" and 0 < again["counters"]["done"] <= 10
    second = _labels(stack)["sql"]
    assert {d: v[0] for d, v in second.items()} == {d: v[0] for d, v in first["sql"].items()}
    for doc_id, (_, scores) in second.items():  # other batch-mates, other float rounding: same numbers
        assert scores.keys() == first["sql"][doc_id][1].keys()
        assert all(abs(p - first["sql"][doc_id][1][label]) < 1e-4 for label, p in scores.items())


def _cli(*args: str):
    """The real `docpipe` command in this process (the query encoder stays loaded between calls)."""
    from typer.testing import CliRunner

    from cli.main import app

    return CliRunner().invoke(app, list(args))


def _search(query: str, mode: str, *labels: str) -> list[dict]:
    result = _cli(
        "search",
        query,
        "--mode",
        mode,
        "--k",
        "100",  # DOCPIPE_API_MAX_K: the CLI and the API share the limit
        "--tenant",
        TENANT,
        "--json",
        *[arg for label in labels for arg in ("--label", label)],
    )
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) < 100, "the corpus outgrew one page of hits: these checks need every match"
    return hits


def test_search_by_label_returns_exactly_the_labelled_chunks_in_every_mode(stack, classified):
    chunks = _labels(stack)["by_chunk"]  # chunk id -> (doc id, label, scores, task, model)
    by_label = Counter(c[1] for c in chunks.values())
    assert len(by_label) >= 2, f"the model gave every document one label ({by_label}): nothing to filter out"
    label, other = sorted(by_label, key=lambda name: (by_label[name], name))[:2]
    wanted = {c for c, v in chunks.items() if v[1] == label}
    assert 0 < len(wanted) < len(chunks)

    # BM25: the label filter keeps exactly the labelled chunks among those the query matches, scored alike
    topic_of = {
        document_id(TENANT, str(classified["corpus"] / f"doc-{i}.txt")): sorted(TOPICS)[i % 3] for i in range(30)
    }
    query = TOPICS[topic_of[chunks[min(wanted)][0]]]  # the words of a labelled document's topic
    matched = {h["chunk_id"]: h["score"] for h in _search(query, "bm25")}
    assert 0 < len(matched) < len(chunks)  # the query matches one topic's documents, not all
    filtered = {h["chunk_id"]: h["score"] for h in _search(query, "bm25", label)}
    assert filtered.keys() == {c for c in matched if c in wanted} and filtered
    assert all(abs(score - matched[c]) < 1e-4 for c, score in filtered.items())

    # kNN and hybrid: with k above the tenant's chunk count, every chunk of the label and nothing else
    for mode in ("knn", "hybrid"):
        hits = _search(query, mode, label)
        assert [h["chunk_id"] for h in hits if h["chunk_id"] not in wanted] == []
        assert len(hits) == len({h["chunk_id"] for h in hits}) == len(wanted), mode
    # several labels: chunks of any of them
    either = {h["chunk_id"] for h in _search(query, "knn", label, other)}
    assert either == {c for c, v in chunks.items() if v[1] in (label, other)}

    unknown = _cli("search", query, "--tenant", TENANT, "--label", "sprot", "--json")
    assert unknown.exit_code == 2 and unknown.stdout == ""
    message = " ".join(unknown.stderr.split())  # rich wraps long lines
    assert message == "error: unknown label 'sprot' for tenant t-ml; known labels: finance, science, sport"


def _run(*args: str) -> dict:
    result = _cli(*args, "--wait", "--json")
    assert result.exit_code == 0, result.output
    rec = json.loads(result.stdout)
    assert rec["state"] == "succeeded", rec.get("error")
    return rec


def _live(stack) -> str:
    from pipeline.reindex import live_row

    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
        return live_row(s, stack.settings().index_prefix).name


def _labels_agree_with_sql(stack, index: str) -> dict[str, str]:
    """Every chunk of the tenant in `index` carries its document's prediction as SQL has it; chunk id -> label."""
    from pipeline.store import repo

    es = stack.es()
    es.indices.refresh(index=index)
    hits = es.search(
        index=index,
        size=1000,
        query={"term": {"tenant": TENANT}},
        source=["doc_id", "label", "label_scores", "label_task", "label_model"],
    )["hits"]["hits"]
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
        sql = {
            p.document_id: {"label": p.label, "label_scores": p.scores, "label_task": p.task, "label_model": p.model_id}
            for p in s.query(Prediction).filter_by(tenant=TENANT, task="topic")
        }
        chunks = repo.chunk_total(s, TENANT)
        indexed = s.query(Document).filter_by(tenant=TENANT, status="indexed").count()
    assert len(sql) == indexed >= 30 and len(hits) == chunks > 0
    for h in hits:
        src = h["_source"]
        assert {k: v for k, v in src.items() if k != "doc_id"} == sql[src["doc_id"]], h["_id"]
    assert {h["_source"]["doc_id"] for h in hits} == sql.keys()
    return {h["_id"]: h["_source"]["label"] for h in hits}


def test_labels_survive_copy_and_embed_reindexes(stack, classified):
    first = _live(stack)
    _labels_agree_with_sql(stack, first)

    def searchable(index: str) -> None:
        labels = _labels_agree_with_sql(stack, index)
        label = min(labels.values())
        hits = _search("market team research", "knn", label)
        assert {h["chunk_id"] for h in hits} == {c for c, v in labels.items() if v == label}

    # same model and chunking: the vectors (and the label fields with them) are copied by _reindex
    copied = _run("reindex", "--force", "--reason", "labels")
    assert copied["reindex"]["mode"] == "copy" and copied["reindex"]["from"] == first
    assert _live(stack) == copied["reindex"]["index"] != first
    searchable(copied["reindex"]["index"])

    # other chunking: new chunks, embedded again, labelled from SQL
    embedded = _run("reindex", "--chunk-tokens", "48", "--chunk-overlap", "8", "--reason", "labels")
    assert embedded["reindex"]["mode"] == "embed" and _live(stack) == embedded["reindex"]["index"]
    searchable(embedded["reindex"]["index"])
    assert embedded["counters"]["chunks"] > copied["counters"]["chunks"]  # the documents were cut anew

    # back to the default configuration (later modules expect it): the copied version, caught up
    _run("index", "rollback")
    assert _live(stack) == copied["reindex"]["index"]
    searchable(copied["reindex"]["index"])


def test_labels_given_while_a_version_is_built_reach_it(stack, classified, tmp_path):
    """A classify job that runs between two steps of a build labels documents the build already holds:
    the build must not swap in without those labels."""
    from pipeline.store.models_monitor import ReindexLedger

    topics = sorted(TOPICS)
    for i in range(6):
        (tmp_path / f"late-{i}.txt").write_text(topic_text(topics[i % 3], 9_000 + i, words=120))
    ingest = stack.run_job([tmp_path], TENANT)
    assert ingest.state == "succeeded" and ingest.done == 6, ingest.error
    late = {document_id(TENANT, str(tmp_path / f"late-{i}.txt")) for i in range(6)}
    before = _live(stack)

    queued = _cli(
        "reindex", "--chunk-tokens", "48", "--chunk-overlap", "8", "--batch", "2", "--reason", "late labels", "--json"
    )
    assert queued.exit_code == 0, queued.output
    build_job = json.loads(queued.stdout)["id"]
    deadline = time.monotonic() + 240
    while True:  # until the build has written a late document (still unlabelled then)
        build = stack.job(build_job).options.get("index")
        with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
            held = (
                build
                and s.query(ReindexLedger)
                .filter(ReindexLedger.index_name == build, ReindexLedger.document_id.in_(late))
                .count()
            )
        if held:
            break
        assert time.monotonic() < deadline and stack.job(build_job).state in ("queued", "running")
        time.sleep(0.05)
    with stack.paused("worker-gpu", "gpu"):  # the classify job runs between two steps of the build
        result = _cli("classify", "--tenant", TENANT, "--task", "topic", "--job", ingest.id, "--json")
        assert result.exit_code == 0, result.output
    labelled = stack.wait(json.loads(result.stdout)["id"])
    assert (labelled.state, labelled.done) == ("succeeded", 6), labelled.error
    assert labelled.options["index"] == before  # it ran before the swap, labelling the old version
    built = stack.wait(build_job)
    assert built.state == "succeeded", built.error
    assert _live(stack) == build
    _labels_agree_with_sql(stack, build)  # the late documents' chunks included, each with its new label

    _run("index", "rollback")  # back to the default configuration for later modules
    assert _live(stack) == before
    _labels_agree_with_sql(stack, before)


def test_a_classify_job_pinned_before_a_swap_labels_the_version_live_when_it_runs(stack, classified, tmp_path):
    """A classify job resolved (index pinned) before a swap and run after it, as a task redelivered once
    a reindex swapped meanwhile: its labels must land in the version that is live, not the retired one."""
    from pipeline.store import model_registry

    topics = sorted(TOPICS)
    for i in range(3):
        (tmp_path / f"after-{i}.txt").write_text(topic_text(topics[i], 9_500 + i, words=120))
    ingest = stack.run_job([tmp_path], TENANT)
    assert ingest.state == "succeeded" and ingest.done == 3, ingest.error
    before = _live(stack)
    copied = _run("reindex", "--force")  # a copy build swaps in...
    assert _live(stack) == copied["reindex"]["index"] != before
    with stack.paused("worker-gpu", "gpu"):  # ...and the job's task starts as if it had pinned the version before
        result = _cli("classify", "--tenant", TENANT, "--task", "topic", "--job", ingest.id, "--json")
        assert result.exit_code == 0, result.output
        job_id = json.loads(result.stdout)["id"]
        with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:  # what the task's first step pins
            model = model_registry.live_model(s, TENANT, "topic")
            job = s.get(Job, job_id)
            job.options = {
                **job.options,
                "model_id": model.id,
                "artefact": model.artefact_path,
                "index": before,
                "index_model": stack.settings().encoder_path,
            }
    labelled = stack.wait(job_id)
    assert (labelled.state, labelled.done) == ("succeeded", 3), labelled.error
    assert labelled.options["index"] == before  # pinned to the retired version...
    by_chunk = _labels_agree_with_sql(stack, copied["reindex"]["index"])  # ...yet the live one has the labels
    new = {document_id(TENANT, str(tmp_path / f"after-{i}.txt")) for i in range(3)}
    assert {chunk.rsplit("-", 1)[0] for chunk in by_chunk} >= new

    _run("index", "rollback")
    assert _live(stack) == before
    _labels_agree_with_sql(stack, before)


def _labels(stack) -> dict:
    es, alias = stack.es(), f"{stack.settings().index_prefix}-read"
    es.indices.refresh(index=alias)
    hits = es.search(
        index=alias,
        size=1000,
        query={"term": {"tenant": TENANT}},
        source=["doc_id", "label", "label_scores", "label_task", "label_model"],
    )["hits"]["hits"]
    by_chunk = {
        h["_id"]: tuple(h["_source"].get(f) for f in ("doc_id", "label", "label_scores", "label_task", "label_model"))
        for h in hits
    }
    chunk_labels = [(h["_source"]["doc_id"], h["_source"].get("label"), h["_source"].get("label_scores")) for h in hits]
    es_docs = {}
    for doc_id, label, scores in chunk_labels:
        assert label is not None, f"chunk of {doc_id} has no label"
        assert es_docs.setdefault(doc_id, (label, scores)) == (label, scores)  # every chunk of a doc agrees
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
        sql = {p.document_id: (p.label, p.scores) for p in s.query(Prediction).filter_by(tenant=TENANT, task="topic")}
    return {
        "sql": sql,
        "es_docs": es_docs,
        "chunk_labels": chunk_labels,
        "chunks": len(chunk_labels),
        "by_chunk": by_chunk,
    }
