"""Batches bounded by bytes, chunks and characters, not only by count: read groups by file size, index batches
by the documents' chunks and text (repo.pending_documents), a larger item always alone."""

from __future__ import annotations

from migrations.runner import upgrade
from pipeline.jobs.revive import file_groups, groups
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import Document, DocumentStatus, Outcome
from pipeline.types import utcnow


def test_groups_stop_at_the_byte_bound_and_a_larger_file_goes_alone():
    ids, sizes = [1, 2, 3, 4, 5, 6], [10, 10, 100, 5, 5, 5]
    assert groups(ids, 16) == [ids]
    assert groups(ids, 16, sizes, 30) == [[1, 2], [3], [4, 5, 6]]
    assert groups(ids, 2, sizes, 30) == [[1, 2], [3], [4, 5], [6]]


def test_within_budget_takes_a_prefix_and_always_the_first():
    sizes = [("a", 10, 1000), ("b", 10, 1000), ("c", 500, 90_000), ("d", 1, 10)]
    assert repo.within_budget(sizes, 25, None) == ["a", "b"]
    assert repo.within_budget(sizes, None, 2500) == ["a", "b"]
    assert repo.within_budget(sizes[2:], 25, 2500) == ["c"]
    assert repo.within_budget(sizes, None, None) == ["a", "b", "c", "d"]


def test_pending_documents_and_file_groups_on_sql(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    files = []
    for name, size in [("small.txt", 100), ("big.txt", 5000), ("tiny.txt", 10)]:
        (tmp_path / name).write_bytes(b"x" * size)
        files.append(str(tmp_path / name))
    with session_scope(url) as s:
        job = repo.create_job(s, "t1", files)
        repo.add_job_files(s, job, files)
        ids = [f.id for f in repo.pending_files(s, job.id)]
        assert file_groups(s, ids, 16, 1000) == [[ids[0]], [ids[1]], [ids[2]]]
        assert file_groups(s, ids, 16, 10_000) == [ids]
        for n, (chunks, text) in enumerate([(3, "a" * 300), (40, "b" * 4000), (2, "c" * 20)]):
            doc_id = f"{n:032x}"
            s.add(
                Document(
                    id=doc_id,
                    tenant="t1",
                    source=f"s{n}",
                    status=DocumentStatus.CHUNKED,
                    content_type="txt",
                    content_hash="h",
                    cluster_id=doc_id,
                    created_at=utcnow(),
                    text=text,
                    chunk_count=chunks,
                )
            )
            s.flush()
            repo.set_outcome(s, job.id, doc_id, Outcome.PENDING, ids[0])
        s.flush()
        take = lambda **kw: [d.id[-1] for d in repo.pending_documents(s, job.id, [ids[0]], 128, **kw)]  # noqa: E731
        assert take() == ["0", "1", "2"]
        assert take(max_chunks=10) == ["0"]
        assert take(max_chars=4310) == ["0", "1"]
        assert take(max_chunks=10_000, max_chars=10_000) == ["0", "1", "2"]
