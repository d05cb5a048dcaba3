"""Reindexing through real workers: zero downtime with ingest during the build, no-op on an unchanged
configuration, rollback, a new model used by ingest and search, an interrupted build resumed or discarded.

Tests run in file order and move the stack's live version; the module ends on a version with the
default configuration, as it found it, so later modules see the stack they expect.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from contextlib import contextmanager

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from pipeline.index import bm25, count_chunks, knn
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import Chunk, Document, IndexVersion
from pipeline.store.models_monitor import ReindexLedger
from pipeline.types import document_id
from tests.conftest import stack_of_its_own
from tests.fixtures import article

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(noida, tmp_path_factory):
    """A stack of this module's own: its reindexes and rollbacks count every indexed document in SQL."""
    with stack_of_its_own(noida, tmp_path_factory, "reindex") as own:
        yield own


RUN = uuid.uuid4().hex[:6]
A, LATE = f"t-reidx-{RUN}", f"t-reidx-late-{RUN}"


# --- helpers -------------------------------------------------------------------------------------


def _sql(stack):
    return session_scope(stack.env["DOCPIPE_DATABASE_URL"])


def _reindex(stack, **options) -> str:
    from pipeline.reindex import create_reindex_job
    from workers.app import configure
    from workers.tasks_reindex import reindex

    configure(stack.settings())
    with _sql(stack) as s:
        job_id = create_reindex_job(
            s, {"action": "build", **options}, "rollback" if options.get("action") == "rollback" else "reindex"
        ).id
    reindex.delay(job_id)
    return job_id


@contextmanager
def _live_version_kept(stack):
    """Later tests and modules share the stack: whatever fails inside the block, the version live before it is
    live again after it (a test that swaps and rolls back itself leaves nothing to do here)."""
    before = _live(stack).name
    try:
        yield
    finally:
        if _live(stack).name != before:
            from pipeline.index import IndexLayout
            from pipeline.reindex import discard

            with _sql(stack) as s:  # a build left running would hold the rollback back
                discard(s, IndexLayout(stack.es(), stack.settings().index_prefix))
            back = stack.wait(_reindex(stack, action="rollback"))
            assert back.state == "succeeded" and _live(stack).name == before, f"stack left on {_live(stack).name}"


def _options(stack, job_id) -> dict:
    with _sql(stack) as s:
        return dict(repo.get_job(s, job_id).options)


def _live(stack) -> IndexVersion:
    from pipeline.reindex import live_row

    with _sql(stack) as s:
        return live_row(s, stack.settings().index_prefix)


def _version(stack, name) -> IndexVersion:
    with _sql(stack) as s:
        return s.scalar(select(IndexVersion).where(IndexVersion.name == name))


def _alias_target(stack) -> list[str]:
    prefix = stack.settings().index_prefix
    return sorted(stack.es().indices.get_alias(name=f"{prefix}-read").body)


def _wait_building(stack, job_id, held_at_least=1, timeout=240) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        name = _options(stack, job_id).get("index")
        if name:
            with _sql(stack) as s:
                held = s.scalar(
                    select(ReindexLedger.document_id)
                    .where(ReindexLedger.index_name == name)
                    .offset(held_at_least - 1)
                    .limit(1)
                )
            if held is not None:
                return name
        assert stack.job(job_id).state in ("queued", "running"), stack.job(job_id).error
        time.sleep(0.1)
    raise AssertionError("the build did not start")


def _wait_queued(stack, job_ids, messages: int, timeout: float = 120) -> None:
    """Until the jobs have read all their files and at least `messages` tasks wait on the gpu queue."""
    from pipeline.store.models import JobFile

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _sql(stack) as s:
            pending = s.scalar(select(JobFile.id).where(JobFile.job_id.in_(job_ids), JobFile.status != "done").limit(1))
            files = s.scalar(select(JobFile.id).where(JobFile.job_id.in_(job_ids)).limit(1))
        if files is not None and pending is None:
            if _queued(stack, "gpu") >= messages:
                return
        time.sleep(0.1)
    raise AssertionError("the ingest jobs' embed tasks were not queued")


def _queued(stack, queue: str) -> int:
    import redis

    client = redis.Redis.from_url(stack.env["DOCPIPE_REDIS_URL"])
    try:  # kombu keeps a queue as a list under the stack's key prefix
        return client.llen(stack.env["DOCPIPE_BROKER_KEY_PREFIX"] + queue)
    finally:
        client.close()


def _counts_agree(stack, index: str, tenant: str) -> int:
    es = stack.es()
    es.indices.refresh(index=index)
    with _sql(stack) as s:
        in_sql = repo.chunk_total(s, tenant)
    assert count_chunks(es, index, tenant=tenant) == in_sql > 0
    return in_sql


def _label(stack, doc_id: str, label: str) -> str:
    """What a classify job of the ml feature leaves in SQL for a document."""
    from pipeline.store.models_ml import ModelRecord, Prediction

    with _sql(stack) as s:
        model = ModelRecord(
            id=uuid.uuid4().hex,
            tenant=A,
            task="topic",
            base_model="test",
            labels=[label, "other"],
            data_hash="0" * 64,
            status="ready",
        )
        s.add(model)
        s.flush()
        s.add(
            Prediction(
                document_id=doc_id,
                task="topic",
                tenant=A,
                model_id=model.id,
                label=label,
                score=0.9,
                scores={label: 0.9, "other": 0.1},
                content_hash=s.get(Document, doc_id).content_hash,
            )
        )
    return doc_id


def _longest_chunk(s) -> int:
    return s.scalar(
        select(Chunk.token_count)
        .join(Document, Document.id == Chunk.document_id)
        .where(Document.tenant.in_((A, LATE)), Document.status == "indexed")
        .order_by(Chunk.token_count.desc())
        .limit(1)
    )


def _write(folder, seeds, sentences=10):
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        (folder / f"doc{seed}.txt").write_text(article(seed, sentences=sentences))
    return folder


class Searcher(threading.Thread):
    """Searches the read alias without pause: BM25 and kNN for queries known to have hits."""

    def __init__(self, es, alias, tenant, queries, vectors):
        super().__init__(daemon=True)
        self.es, self.alias, self.tenant, self.queries, self.vectors = es, alias, tenant, queries, vectors
        self.done, self.errors, self.empty, self.searches = threading.Event(), [], [], 0

    def run(self):
        while not self.done.is_set():
            for query, vector in zip(self.queries, self.vectors):
                try:
                    lexical = bm25(self.es, self.alias, self.tenant, query, 5)
                    semantic = knn(self.es, self.alias, self.tenant, vector, 5)
                except Exception as exc:  # the test reports every failure, of any kind
                    self.errors.append(repr(exc))
                    continue
                self.searches += 1
                if not lexical or not semantic:
                    self.empty.append(query)


@pytest.fixture(autouse=True)
def no_unfinished_build(stack):
    """A failed test must not leave a build behind for the next one to trip over."""
    yield
    from pipeline.index import IndexLayout
    from pipeline.reindex import discard

    with _sql(stack) as s:
        left = discard(s, IndexLayout(stack.es(), stack.settings().index_prefix))
    assert left is None, f"{left.name} was left building"


@pytest.fixture(scope="module")
def encoder():
    from pipeline.embed import get_encoder

    return get_encoder(None, "cpu")


@pytest.fixture(scope="module")
def narrow_model(tmp_path_factory):
    """all-MiniLM-L6-v2 plus a random 384 -> 128 projection: another model, with another width."""
    import torch
    from sentence_transformers import SentenceTransformer, models

    from pipeline.config import default_encoder_path

    torch.manual_seed(0)
    model = SentenceTransformer(default_encoder_path(), device="cpu", local_files_only=True)
    model.append(models.Dense(384, 128, bias=False, activation_function=torch.nn.Identity()))
    path = tmp_path_factory.mktemp("models") / "minilm-128"
    model.save(str(path))
    return str(path)


# --- tests ---------------------------------------------------------------------------------------


def test_reindex_keeps_searches_answering_and_catches_up_ingest(stack, tmp_path, encoder):
    first = stack.run_job([_write(tmp_path / "a", range(1000, 1024))], A)
    assert first.state == "succeeded"
    before = _live(stack)
    assert (before.chunk_tokens, before.chunk_overlap) == (200, 40) and before.model_path
    labelled = _label(stack, document_id(A, str(tmp_path / "a" / "doc1007.txt")), "business")
    es, alias = stack.es(), f"{stack.settings().index_prefix}-read"
    queries = [" ".join(article(seed, sentences=10).split()[:8]) for seed in (1000, 1007, 1015, 1023)]
    assert all(bm25(es, alias, A, q, 5) for q in queries)
    searcher = Searcher(stack.es(), alias, A, queries, encoder.encode(queries).tolist())
    searcher.start()
    try:
        job_id = _reindex(stack, chunk_tokens=120, batch_docs=1, reason="smaller chunks")
        new = _wait_building(stack, job_id, held_at_least=2)
        # Ingest while the new version is being built: new documents, and an edit of a copied one.
        # The gpu worker stops taking messages until both jobs' embed tasks are queued, so they run
        # between two build steps (the queue is first in, first out), not after the build.
        with stack.paused("worker-gpu", "gpu"):
            late_id = stack.submit([_write(tmp_path / "late", range(2000, 2006))], LATE)
            (tmp_path / "a" / "doc1000.txt").write_text(article(3000, sentences=6))
            edit_id = stack.submit([tmp_path / "a" / "doc1000.txt"], A)
            _wait_queued(stack, [late_id, edit_id], messages=3)
        late, edit = stack.wait(late_id), stack.wait(edit_id)
        assert (late.state, late.done, edit.state, edit.done) == ("succeeded", 6, "succeeded", 1)
        assert stack.job(job_id).state == "running"  # both went into the old version during the build
        job = stack.wait(job_id)
    finally:
        searcher.done.set()
        searcher.join(timeout=60)
    assert job.state == "succeeded", job.error
    assert searcher.errors == [] and searcher.empty == []
    assert searcher.searches > 0

    live = _live(stack)
    assert (live.name, live.chunk_tokens, live.state) == (new, 120, "live")
    assert _alias_target(stack) == [new]
    assert _version(stack, before.name).state == "retired"
    assert f"{new} is live" in _options(stack, job_id)["outcome"]
    es.indices.refresh(index=before.name)
    late_doc = document_id(LATE, str(tmp_path / "late" / "doc2003.txt"))
    assert count_chunks(es, before.name, tenant=LATE, doc_id=late_doc) > 0  # written to the old version...
    assert count_chunks(es, new, tenant=LATE, doc_id=late_doc) > 0  # ...and caught up into the new one
    edited = document_id(A, str(tmp_path / "a" / "doc1000.txt"))
    with _sql(stack) as s:
        edited_hash = s.get(Document, edited).content_hash
        longest = _longest_chunk(s)
        assert s.scalar(select(ReindexLedger.index_name).limit(1)) is None  # ledger cleared after the swap
    assert longest <= 120  # SQL's chunk rows are the new version's
    stale = es.count(
        index=new,
        query={
            "bool": {"filter": [{"term": {"doc_id": edited}}], "must_not": [{"term": {"content_hash": edited_hash}}]}
        },
    )["count"]
    assert stale == 0 and count_chunks(es, new, doc_id=edited) > 0
    _counts_agree(stack, new, A)
    _counts_agree(stack, new, LATE)
    assert bm25(es, alias, A, " ".join(article(3000, sentences=6).split()[:8]), 1)[0].doc_id == edited
    # a classifier's label (kept in SQL by the ml feature) is on the rebuilt chunks: label filters still work
    on_label = es.count(
        index=new, query={"bool": {"filter": [{"term": {"tenant": A}}, {"term": {"label": "business"}}]}}
    )["count"]
    assert on_label == count_chunks(es, new, tenant=A, doc_id=labelled) > 0


def test_unchanged_configuration_is_a_no_op(stack):
    from cli.main import app

    live = _live(stack)
    result = CliRunner().invoke(
        app,
        [
            "reindex",
            "--chunk-tokens",
            str(live.chunk_tokens),
            "--chunk-overlap",
            str(live.chunk_overlap),
            "--wait",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["state"] == "succeeded" and record["kind"] == "reindex"
    assert record["outcome"].startswith(f"no change: {live.name} already has configuration")
    assert record["reindex"] == {}  # nothing was planned
    assert _live(stack).name == live.name
    assert _alias_target(stack) == [live.name]


def test_rollback_returns_to_the_previous_version_with_what_changed_since(stack, tmp_path):
    current, previous = _live(stack), None
    with _sql(stack) as s:
        previous = s.scalar(
            select(IndexVersion.name)
            .where(IndexVersion.state == "retired")
            .order_by(IndexVersion.retired_at.desc())
            .limit(1)
        )
    folder = _write(tmp_path / "c", range(4000, 4002))
    assert stack.run_job([folder], A).done == 2  # indexed into the current version only
    job = stack.wait(_reindex(stack, action="rollback"))
    assert job.state == "succeeded", job.error
    live = _live(stack)
    assert (live.name, live.chunk_tokens) == (previous, 200)
    assert _alias_target(stack) == [previous]
    assert _version(stack, current.name).state == "retired"
    es = stack.es()
    es.indices.refresh(index=previous)
    new_doc = document_id(A, str(folder / "doc4001.txt"))
    assert count_chunks(es, previous, tenant=A, doc_id=new_doc) > 0
    with _sql(stack) as s:
        assert _longest_chunk(s) > 120
    _counts_agree(stack, previous, A)
    _counts_agree(stack, previous, LATE)


def test_scheduled_reindex_builds_nothing_when_the_configuration_is_unchanged(stack):
    from pipeline.store.models import Job
    from workers.app import configure
    from workers.tasks_reindex import reindex_scheduled

    configure(stack.settings())
    live = _live(stack)
    reindex_scheduled.delay()  # what beat sends; it runs on a worker with the stack's settings
    deadline = time.monotonic() + 120
    job_id = None
    while job_id is None and time.monotonic() < deadline:
        with _sql(stack) as s:
            for j in s.scalars(select(Job).where(Job.kind == "reindex").order_by(Job.created_at.desc()).limit(3)):
                if j.options.get("reason") == "scheduled":
                    job_id = j.id
        time.sleep(0.2)
    assert job_id, "the scheduled task created no job"
    job = stack.wait(job_id)
    assert job.state == "succeeded" and job.options["outcome"].startswith("no change")
    assert _live(stack).name == live.name


def test_a_new_model_serves_ingest_and_search_after_the_swap(stack, tmp_path, narrow_model):
    from cli.main import app

    with _live_version_kept(stack):
        job = stack.wait(_reindex(stack, model=narrow_model, reason="narrow model"))
        assert job.state == "succeeded", job.error
        live = _live(stack)
        assert (live.model_path, live.dims) == (narrow_model, 128)
        folder = _write(tmp_path / "d", [5000])
        ingest = stack.run_job([folder], A)  # the workers now embed with the 128-d model
        assert (ingest.state, ingest.done, ingest.failed) == ("succeeded", 1, 0)
        doc = document_id(A, str(folder / "doc5000.txt"))
        es = stack.es()
        es.indices.refresh(index=live.name)
        hit = es.search(index=live.name, query={"term": {"doc_id": doc}}, size=1, source=["embedding"])
        assert len(hit["hits"]["hits"][0]["_source"]["embedding"]) == 128

        def top_knn():
            result = CliRunner().invoke(
                app,
                [
                    "search",
                    " ".join(article(5000, sentences=10).split()[:20]),
                    "--mode",
                    "knn",
                    "--k",
                    "1",
                    "--tenant",
                    A,
                    "--json",
                ],
            )
            assert result.exit_code == 0, result.output
            return json.loads(result.stdout)[0]["doc_id"]

        assert top_knn() == doc  # the CLI embeds the query with the live version's model
        back = stack.wait(_reindex(stack, action="rollback"))
        assert back.state == "succeeded", back.error
        assert _live(stack).dims == 384
        assert top_knn() == doc  # caught up into the 384-d version, and searched with its model again
        _counts_agree(stack, _live(stack).name, A)


def test_interrupted_reindex_leaves_the_alias_alone_then_resumes_or_is_discarded(stack):
    from cli.main import app

    with _live_version_kept(stack):
        live = _live(stack)
        job_id = _reindex(stack, chunk_overlap=30, batch_docs=1, reason="interrupted")
        building = _wait_building(stack, job_id, held_at_least=3)
        stack.kill_worker("worker-gpu")
        try:
            assert _alias_target(stack) == [live.name]
            assert _version(stack, building).state == "building" and _live(stack).name == live.name
            assert bm25(stack.es(), f"{stack.settings().index_prefix}-read", A, article(1001).split()[0], 1)
        finally:
            stack.start_worker("worker-gpu")
        job = stack.wait(job_id, timeout=300)  # the unacknowledged step comes back and the build goes on
        assert job.state == "succeeded", job.error
        assert _live(stack).name == building and _alias_target(stack) == [building]
        assert "resumed" not in job.options  # the same job carried on; no new version was started
        _counts_agree(stack, building, A)

        doomed_job = _reindex(stack, chunk_overlap=20, batch_docs=1, reason="to be discarded")
        doomed = _wait_building(stack, doomed_job, held_at_least=2)
        stack.kill_worker("worker-gpu")
        try:
            result = CliRunner().invoke(app, ["reindex", "--discard", "--json"])
            assert result.exit_code == 0, result.output
            assert json.loads(result.stdout)["discarded"] == doomed
            assert _version(stack, doomed).state == "discarded"
            assert stack.job(doomed_job).state == "cancelled"
            assert not stack.es().indices.exists(index=doomed)
            assert _alias_target(stack) == [building]
        finally:
            stack.start_worker("worker-gpu")
        # leave the stack on the default configuration: roll back to the version before the interrupted one
        back = stack.wait(_reindex(stack, action="rollback"))
        assert back.state == "succeeded", back.error
        assert _live(stack).name == live.name and _alias_target(stack) == [live.name]
        assert not stack.es().indices.exists(index=doomed)
        _counts_agree(stack, live.name, A)


def test_forced_rebuild_of_the_same_configuration_copies_vectors_with_the_reindex_api(stack):
    live = _live(stack)
    es = stack.es()
    es.indices.refresh(index=live.name)
    before = es.search(
        index=live.name, query={"term": {"tenant": A}}, size=1, source=["chunk_id", "embedding", "text"]
    )["hits"]["hits"][0]["_source"]
    job = stack.wait(_reindex(stack, force=True, reason="forced"))
    assert job.state == "succeeded", job.error
    assert job.options["mode"] == "copy"  # same model and chunking: _reindex, nothing re-embedded
    new = _live(stack)
    assert new.name != live.name and new.config_hash == live.config_hash
    assert _alias_target(stack) == [new.name]
    hit = es.search(
        index=new.name,
        query={"term": {"chunk_id": before["chunk_id"]}},
        size=1,
        version=True,
        source=["embedding", "text"],
    )["hits"]["hits"][0]
    assert hit["_version"] == 1  # written once, by the copy
    assert hit["_source"]["text"] == before["text"]
    assert max(abs(a - b) for a, b in zip(hit["_source"]["embedding"], before["embedding"])) < 1e-6  # float32
    assert count_chunks(es, new.name) == count_chunks(es, live.name)
    _counts_agree(stack, new.name, A)

    from cli.main import app

    result = CliRunner().invoke(app, ["index", "versions", "--json"])
    assert result.exit_code == 0, result.output
    listed = {v["name"]: v for v in json.loads(result.stdout)}
    assert [n for n, v in listed.items() if v["live"]] == [new.name]
    assert listed[new.name]["chunks"] == count_chunks(es, new.name)
    assert listed[new.name]["config_hash"] == live.config_hash and listed[new.name]["reason"] == "forced"
    assert listed[live.name]["state"] == "retired"
    assert {v["state"] for v in listed.values()} <= {"live", "retired", "dropped", "discarded"}  # no orphans
