"""A worker killed with SIGKILL in the middle of a job loses nothing: after a restart the job completes
and the index holds every chunk exactly once. The work a dead worker held is reclaimed as a worker starts
(and by the reclaim sweep), not after the broker's visibility timeout; a file that kills its worker every
time becomes a `worker_lost` dead letter after DOCPIPE_WORKER_MAX_DELIVERIES takes."""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from pipeline.index import count_chunks
from pipeline.jobs.stats import job_stats
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import Chunk, Document, DocumentStatus, JobFile
from tests.fixtures import article

pytestmark = pytest.mark.integration


def _articles(folder, count: int, first_seed: int, sentences: int):
    folder.mkdir()
    for i in range(count):
        (folder / f"doc{i:02d}.txt").write_text(article(first_seed + i, sentences=sentences))
    return folder


def _assert_indexed_once(stack, tenant: str, job) -> None:
    """Elasticsearch holds each of the job's chunks exactly once, as many as SQL counts (and some)."""
    es, alias = stack.es(), f"{stack.settings().index_prefix}-read"
    es.indices.refresh(index=alias)
    in_es = count_chunks(es, alias, tenant=tenant)
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
        assert in_es == repo.chunk_total(session, tenant) == job.chunks > 0
    distinct = es.search(
        index=alias, size=0, query={"term": {"tenant": tenant}}, aggs={"ids": {"cardinality": {"field": "chunk_id"}}}
    )["aggregations"]["ids"]["value"]
    assert distinct == in_es


def test_sigkilled_workers_resume_and_index_each_chunk_once(stack, tmp_path):
    tenant = "t-crash"
    job_id = stack.submit([_articles(tmp_path / "many", 48, 1000, sentences=20)], tenant)

    deadline = time.monotonic() + 180
    while True:  # kill both workers once indexing has started but long before the end
        job = stack.job(job_id)
        if job.done > 0:
            break
        assert job.state not in ("succeeded", "partial", "failed"), "job ended before the kill"
        assert time.monotonic() < deadline, "indexing never started"
        time.sleep(0.05)
    assert job.done < 48
    stack.kill_worker("worker-gpu")
    stack.kill_worker("worker-ingest")
    killed_at = stack.job(job_id)
    assert killed_at.state == "running"

    stack.start_worker("worker-ingest")
    stack.start_worker("worker-gpu")
    # Redis loses a task taken off the queue by a worker killed before it recorded it as unacknowledged
    # (a window this test hits now and then); the sweep beat sends finds such a job and resends its work
    with stack.beat(DOCPIPE_REVIVE_EVERY_SECONDS="2", DOCPIPE_STALL_SECONDS="10"):
        job = stack.wait(job_id, timeout=300)
    assert (job.state, job.done, job.failed, job.total) == ("succeeded", 48, 0, 48)
    _assert_indexed_once(stack, tenant, job)


def test_a_lost_task_is_sent_again_once_the_job_stalls_and_none_of_its_messages_waits(stack, tmp_path):
    from workers.app import app
    from workers.client import queue_depth, waiting_jobs
    from workers.routing import INDEX_FILES
    from workers.tasks_ingest import revive_jobs

    tenant = "t-lost"
    folder = _articles(tmp_path / "lost", 6, 2000, sentences=8)
    # a message a worker killed before this test held comes back after the visibility timeout: were it restored
    # while the gpu queue is paused, the consumer's pending fetch would take it and the job's tasks behind it
    # (the broker's sweep follows the stack's 8 s visibility timeout: about 10 s apart, workers/app.py)
    _wait_for(lambda: _unacked() == 0 and queue_depth("gpu") == 0, "a killed worker's message was not restored", 90)
    with stack.paused("worker-gpu", "gpu"):
        job_id = stack.submit([folder], tenant)
        deadline = time.monotonic() + 120
        while True:  # every file read, every document waiting for the gpu queue
            with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
                unread, unindexed = repo.open_work(session, job_id)
            # 6 files, 4 per task: both read tasks have sent their index task (anything else queued is purged too)
            if not unread and unindexed and queue_depth("gpu") >= 2:
                break
            assert time.monotonic() < deadline, f"files not read: {unread}, {unindexed}"
            time.sleep(0.2)
        assert waiting_jobs("gpu") == {job_id}
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge("gpu")  # the index tasks are lost
        assert queue_depth("gpu") == 0
        # another job's work waits in the queue (before, any message there held every job back for good)
        other = "0" * 32
        app.send_task(INDEX_FILES, args=[other, []])
        assert waiting_jobs("gpu") == {other}

        assert revive_jobs(stalled_after=3600) == []  # touched a moment ago: not stalled yet
        assert revive_jobs(stalled_after=0) == [job_id]
        assert queue_depth("gpu") == 3 and waiting_jobs("gpu") == {job_id, other}
        assert waiting_jobs("gpu", limit=2) is None  # too many to read: every job may be waiting
        assert revive_jobs(stalled_after=0) == []  # its work waits in the queue: nothing piles up
        assert queue_depth("gpu") == 3
        assert stack.job(job_id).state == "running"

    job = stack.wait(job_id, timeout=300)
    assert (job.state, job.done, job.failed, job.total) == ("succeeded", 6, 0, 6)
    _assert_indexed_once(stack, tenant, job)


def _unacked() -> int:
    """Messages taken by a consumer and not yet acknowledged (kombu's `unacked` hash; HLEN is key-prefixed)."""
    from workers.app import app

    with app.connection_for_write() as conn:
        channel = conn.default_channel
        return int(channel.client.hlen(channel.unacked_key))


# As in production, an unacknowledged message comes back only after an hour: what brings a killed worker's
# work back in these tests is the reclaim, not the broker.
NO_REDELIVERY = {"DOCPIPE_BROKER_VISIBILITY_TIMEOUT": "3600"}
HOOKS = str(Path(__file__).parents[1] / "workerhooks")  # sitecustomize: a poison file kills its reader, slow reads
HOOKED = {"PYTHONPATH": os.pathsep.join(filter(None, [HOOKS, os.environ.get("PYTHONPATH")]))}


def _restart(stack, name: str, **env: str) -> None:
    from cli.localstack.processes import stop_pid

    proc = stack.workers.pop(name)
    stop_pid(proc.pid, timeout=15)
    proc.wait()
    stack.start_worker(name, **env)


@contextmanager
def _without_redelivery(stack):
    """Every worker restarted with the production visibility timeout for the block (any consumer restores
    unacknowledged messages), then restarted as the stack's again."""
    names = list(stack.workers)
    for name in names:
        _restart(stack, name, **NO_REDELIVERY)
    try:
        yield
    finally:
        for name in names:
            if name in stack.workers:
                _restart(stack, name)
            else:
                stack.start_worker(name)


def _files(stack, job_id: str) -> list[JobFile]:
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
        return list(session.query(JobFile).filter(JobFile.job_id == job_id).order_by(JobFile.id))


def _wait_for(predicate, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _assert_each_chunk_once(stack, tenant: str, docs: int) -> None:
    """The index's chunk ids for the tenant are exactly SQL's chunk rows of its indexed documents, none twice."""
    es, alias = stack.es(), f"{stack.settings().index_prefix}-read"
    es.indices.refresh(index=alias)
    hits = es.search(index=alias, size=10_000, query={"term": {"tenant": tenant}}, source=["chunk_id"])["hits"]["hits"]
    in_index = [h["_source"]["chunk_id"] for h in hits]
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
        in_sql = [
            c
            for (c,) in session.query(Chunk.id)
            .join(Document, Document.id == Chunk.document_id)
            .filter(Document.tenant == tenant, Document.status == DocumentStatus.INDEXED)
        ]
        indexed = session.query(Document).filter(Document.tenant == tenant, Document.status == "indexed").count()
    assert len(in_index) == len(set(in_index)) == len(in_sql) > 0
    assert set(in_index) == set(in_sql)
    assert indexed == docs


def test_a_killed_ingest_worker_s_files_are_reclaimed_as_it_comes_back(stack, tmp_path):
    tenant, docs = "t-reclaim-read", 32
    with _without_redelivery(stack):
        job_id = stack.submit([_articles(tmp_path / "read", docs, 3000, sentences=12)], tenant)
        _wait_for(
            lambda: any(f.owner and f.status == "pending" and f.deliveries for f in _files(stack, job_id)),
            "no file was being read",
        )
        stack.kill_worker("worker-ingest")
        began = [f.id for f in _files(stack, job_id) if f.owner and f.status == "pending" and f.deliveries]
        assert began and stack.job(job_id).state == "running"

        stack.start_worker("worker-ingest", **NO_REDELIVERY)
        job = stack.wait(job_id, timeout=120)  # the job's own work is seconds; the broker would wait an hour
    assert (job.state, job.done, job.failed, job.total) == ("succeeded", docs, 0, docs)
    files = {f.id: f for f in _files(stack, job_id)}
    assert [files[i].deliveries for i in began] == [2] * len(began)  # the interrupted read, then the reclaimed one
    assert all(f.owner is None for f in files.values())
    _assert_each_chunk_once(stack, tenant, docs)


def test_a_killed_gpu_worker_s_documents_are_reclaimed_as_it_comes_back(stack, tmp_path):
    tenant, docs = "t-reclaim-index", 32
    with _without_redelivery(stack):
        job_id = stack.submit([_articles(tmp_path / "index", docs, 4000, sentences=12)], tenant)
        _wait_for(lambda: any(f.index_deliveries for f in _files(stack, job_id)), "indexing never started")
        stack.kill_worker("worker-gpu")
        assert stack.job(job_id).state == "running"

        stack.start_worker("worker-gpu", **NO_REDELIVERY)
        job = stack.wait(job_id, timeout=120)
    assert (job.state, job.done, job.failed, job.total) == ("succeeded", docs, 0, docs)
    assert all(f.owner is None and f.index_deliveries <= 2 for f in _files(stack, job_id))
    _assert_each_chunk_once(stack, tenant, docs)


def test_a_file_that_kills_its_worker_becomes_a_worker_lost_dead_letter_after_max_deliveries(stack, tmp_path):
    tenant, docs = "t-poison", 8
    folder = _articles(tmp_path / "poison", docs, 5000, sentences=6)
    (folder / "doc05-poison.txt").write_text(article(5999, sentences=6))
    _restart(stack, "worker-ingest", DOCPIPE_TEST_POISON_MARK="-poison", **HOOKED)
    try:
        job = stack.run_job([folder], tenant, timeout=240)
    finally:
        _restart(stack, "worker-ingest")
    assert (job.state, job.done, job.failed, job.total) == ("partial", docs, 1, docs + 1)
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
        [letter] = repo.dead_letters(session, job_id=job.id)
        assert (letter.reason, letter.stage) == ("worker_lost", "read")
        assert letter.path.endswith("doc05-poison.txt")
    poison = [f for f in _files(stack, job.id) if f.path.endswith("-poison.txt")][0]
    assert (poison.status, poison.deliveries) == ("failed", 3)
    _assert_each_chunk_once(stack, tenant, docs)


def _records(folder, count: int, first_seed: int):
    folder.mkdir()
    path = folder / "feed.jsonl"
    path.write_text(
        "\n".join(json.dumps({"id": f"r{i}", "text": article(first_seed + i, sentences=3)}) for i in range(count))
    )
    return path


# a file of records whose read takes longer than a read task may run, stored 10 records a commit
SLOW_PARTS = {"DOCPIPE_TEST_SLOW_ITEMS": "0.04", "DOCPIPE_READ_PART_ITEMS": "10", **HOOKED}


def test_a_records_file_read_longer_than_the_read_time_limit_goes_on_in_the_next_task(stack, tmp_path):
    # about 16 s of reading against a soft limit of 8 s; the restarted worker's first task also loads the tokenizer
    # and the language models (3-4 s on a 2-core machine), which a limit of 4 s left no time to store a part in
    tenant, records = "t-parts-limit", 320
    path = _records(tmp_path / "limit", records, 6000)
    for name in ("a.txt", "g.txt", "h.txt"):  # one read group of 4 files, with the records file second
        (path.parent / name).write_text(article(6500 + ord(name[0]), sentences=4))
    limits = {"DOCPIPE_WORKER_READ_SOFT_LIMIT": "8", "DOCPIPE_WORKER_READ_HARD_LIMIT": "12"}
    _restart(stack, "worker-ingest", **SLOW_PARTS, **limits)
    try:
        job = stack.run_job([path.parent], tenant, timeout=240)
    finally:
        _restart(stack, "worker-ingest")
    items = records + 3
    assert (job.state, job.done, job.failed, job.total) == ("succeeded", items, 0, items)
    files = {Path(f.path).name: f for f in _files(stack, job.id)}
    assert (files["feed.jsonl"].records, files["feed.jsonl"].read_items) == (records, records)
    assert all(f.status == "done" for f in files.values())
    assert all(f.deliveries <= 2 for f in files.values())  # each take stored a part: none counts towards poison
    _assert_each_chunk_once(stack, tenant, items)


def test_a_worker_killed_in_the_middle_of_a_records_file_goes_on_after_its_last_stored_part(stack, tmp_path):
    tenant, records = "t-parts-kill", 150
    path = _records(tmp_path / "kill", records, 7000)
    with _without_redelivery(stack):
        _restart(stack, "worker-ingest", **NO_REDELIVERY, **SLOW_PARTS)
        job_id = stack.submit([path], tenant)
        _wait_for(lambda: any(20 <= f.read_items < 100 for f in _files(stack, job_id)), "no part was stored")
        stack.kill_worker("worker-ingest")
        [killed] = _files(stack, job_id)
        with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
            kept = session.query(Document).filter_by(tenant=tenant).count()
        assert kept == killed.read_items and killed.status == "pending"  # the stored parts outlive the worker

        stack.start_worker("worker-ingest", **NO_REDELIVERY)
        job = stack.wait(job_id, timeout=120)
    assert (job.state, job.done, job.failed, job.total) == ("succeeded", records, 0, records)
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
        read = {s["stage"]: s for s in job_stats(session, repo.get_job(session, job_id)).as_list()}["read"]
    assert read["items_in"] == records  # the parts stored before the kill were not read into documents again
    _assert_each_chunk_once(stack, tenant, records)
