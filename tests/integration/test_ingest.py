"""End-to-end ingest through real Celery workers, noida-db and SQL."""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from pipeline.index import count_chunks
from pipeline.retrieve import filtered_search, search
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import Document
from pipeline.types import document_id
from tests.fixtures import article, near_copy
from tests.unit.test_formats_mbox import with_id, write_mbox
from tests.unit.test_formats_office import make_eml
from tests.unit.test_formats_pdf_forms import form_pdf
from tests.unit.test_formats_wordml import make_word, p, r

pytestmark = pytest.mark.integration


def _read_alias(stack) -> str:
    return f"{stack.settings().index_prefix}-read"


def _counts_agree(stack, tenant: str) -> int:
    es = stack.es()
    es.indices.refresh(index=_read_alias(stack))
    in_es = count_chunks(es, _read_alias(stack), tenant=tenant)
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
        in_sql = repo.chunk_total(session, tenant)
    assert in_es == in_sql
    return in_es


def _folder(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(4):
        (folder / f"a{i}.txt").write_text(article(i))
    (folder / "copy-of-a0.txt").write_text("  " + article(0).upper() + "\n")  # exact after normalising
    (folder / "near-a1.txt").write_text(near_copy(article(1)))
    (folder / "page.html").write_text(
        "<html><head><title>Harbour report</title><script>var tracker = 1;</script></head><body>"
        "<nav>Home | About | Contact</nav><article><h1>Harbour report</h1><p>"
        + article(10)
        + " The lighthouse keeper counted seventeen quokkas.</p></article></body></html>"
    )
    (folder / "feed.jsonl").write_text(
        json.dumps({"id": "rec-1", "title": "One", "text": article(20), "published": "2024-03-01T10:00:00Z"})
        + "\n"
        + json.dumps({"id": "rec-2", "title": "Two", "text": article(21)})
        + "\n"
    )
    return folder


def test_folder_ingest_dedups_indexes_and_second_run_is_unchanged(stack, tmp_path):
    tenant = "t-folder"
    folder = _folder(tmp_path)
    job = stack.run_job([folder], tenant)
    assert job.state == "succeeded", job.error
    # 4 articles + html + 2 records indexed; an exact and a near copy skipped
    assert (job.total, job.done, job.skipped, job.unchanged, job.failed) == (9, 7, 2, 0, 0)
    chunks = _counts_agree(stack, tenant)
    assert chunks == job.chunks > 0

    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
        a0 = session.get(Document, document_id(tenant, str(folder / "a0.txt")))
        dup = session.get(Document, document_id(tenant, str(folder / "copy-of-a0.txt")))
        near = session.get(Document, document_id(tenant, str(folder / "near-a1.txt")))
        a1 = session.get(Document, document_id(tenant, str(folder / "a1.txt")))
        rec = session.get(Document, document_id(tenant, "rec-1"))
        page = session.get(Document, document_id(tenant, str(folder / "page.html")))
        assert (dup.status, dup.duplicate_kind, dup.duplicate_of, dup.cluster_id) == (
            "duplicate",
            "exact",
            a0.id,
            a0.id,
        )
        assert (near.status, near.duplicate_kind, near.cluster_id) == ("duplicate", "near", a1.id)
        assert near.similarity >= 0.8
        assert rec.title == "One" and rec.published.year == 2024
        assert "tracker" not in page.text and "Home | About" not in page.text
        assert page.title == "Harbour report"

    hits = search(stack.es(), _read_alias(stack), tenant, "seventeen quokkas lighthouse", "bm25", 3)
    assert hits[0].source.endswith("page.html")

    again = stack.run_job([folder], tenant)
    assert again.state == "succeeded"
    assert (again.total, again.done, again.unchanged, again.skipped) == (9, 0, 9, 0)
    assert _counts_agree(stack, tenant) == chunks


def test_archives_are_read_member_by_member(stack, tmp_path):
    tenant = "t-archive"
    folder = tmp_path / "in"
    folder.mkdir()
    rows = "".join(json.dumps({"id": f"zip-rec-{n}", "text": article(n)}) + "\n" for n in (32, 33))
    with zipfile.ZipFile(folder / "bundle.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.txt", article(30))
        archive.writestr("docs/b.md", "# Harbour cranes\n\n" + article(31) + " Nine pelicans nested on crane four.")
        archive.writestr("rows.jsonl", rows)
        archive.writestr("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog")
        archive.writestr(".hidden.txt", article(35))
    notes = article(34).encode()
    with tarfile.open(folder / "notes.tar.gz", "w:gz") as archive:
        info = tarfile.TarInfo("minutes/notes.txt")
        info.size = len(notes)
        archive.addfile(info, io.BytesIO(notes))
    job = stack.run_job([folder], tenant)
    assert job.state == "partial", job.error
    assert (job.total, job.done, job.failed) == (6, 5, 1)  # counted before reading: members, not archives
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
        (letter,) = repo.dead_letters(session, job.id)
        assert (letter.source, letter.reason) == (f"{folder / 'bundle.zip'}#broken.pdf", "corrupt_pdf")
        assert letter.path == str(folder / "bundle.zip")  # replay reads the archive again
        guide = session.get(Document, document_id(tenant, f"{folder / 'bundle.zip'}#docs/b.md"))
        assert guide.title == "Harbour cranes" and guide.meta["filename"] == "docs/b.md"
    hits = search(stack.es(), _read_alias(stack), tenant, "nine pelicans nested crane", "bm25", 3)
    assert hits[0].source == f"{folder / 'bundle.zip'}#docs/b.md"
    assert _counts_agree(stack, tenant) == job.chunks
    again = stack.run_job([folder], tenant)
    assert (again.total, again.done, again.unchanged, again.failed) == (6, 0, 5, 1)


def test_what_office_markdown_mail_and_forms_hold_is_found_and_filtered(stack, tmp_path):
    """Text that only the readers of this change see (a tracked insertion, a form's value, front matter's tags, a
    mailbox's messages) travels through real workers into the index and filters."""
    tenant = "t-hidden-text"
    folder = tmp_path / "in"
    folder.mkdir()
    insertion = '<w:ins w:id="1" w:author="A"><w:r><w:t>seventeen walruses guard the quay</w:t></w:r></w:ins>'
    (folder / "lease.docx").write_bytes(make_word(p(r(article(40) + " Also "), insertion)))
    front = "---\ntitle: Harbour log\ndate: 2024-03-05\ntags: [harbour, cranes]\n---\n"
    (folder / "log.md").write_text(front + "# Not the title\n\n" + article(41))
    (folder / "form.pdf").write_bytes(form_pdf())
    mails = [with_id(make_eml(article(42), [("n.txt", article(43).encode(), "text/plain")]), "<m1@x>")]
    mails.append(with_id(make_eml(article(44), [], subject="Second"), "<m2@x>"))
    write_mbox(folder / "Inbox.mbox", mails)
    job = stack.run_job([folder], tenant)
    assert (job.state, job.total, job.done) == ("succeeded", 6, 6), job.error
    es, alias = stack.es(), _read_alias(stack)
    es.indices.refresh(index=alias)
    box = str((folder / "Inbox.mbox").resolve())
    for query, source in [
        ("seventeen walruses guard the quay", str(folder / "lease.docx")),
        ("Ada Lovelace full name", str(folder / "form.pdf")),
    ]:
        assert search(es, alias, tenant, query, "bm25", 1)[0].source == source
    tagged = filtered_search(es, alias, tenant, "harbour", "bm25", 10, where=["tags=cranes"])
    assert {hit.source for hit in tagged.hits} == {str(folder / "log.md")}
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
        log = session.get(Document, document_id(tenant, str(folder / "log.md")))
        assert (log.title, log.meta["tags"]) == ("Harbour log", ["harbour", "cranes"])
        assert session.get(Document, document_id(tenant, f"{box}#m2@x")).title == "Second"
        assert session.get(Document, document_id(tenant, f"{box}#m1@x#attachment/1/n.txt")) is not None
    assert _counts_agree(stack, tenant) == job.chunks


def test_edited_document_replaces_exactly_its_chunks(stack, tmp_path):
    tenant = "t-edit"
    folder = tmp_path / "docs"
    folder.mkdir()
    long_doc, other = folder / "long.txt", folder / "other.txt"
    long_doc.write_text(article(100, sentences=60))
    other.write_text(article(101, sentences=30))
    assert stack.run_job([folder], tenant).state == "succeeded"
    es, alias = stack.es(), _read_alias(stack)
    long_id, other_id = document_id(tenant, str(long_doc)), document_id(tenant, str(other))
    es.indices.refresh(index=alias)
    before_long = count_chunks(es, alias, tenant=tenant, doc_id=long_id)
    before_other = count_chunks(es, alias, tenant=tenant, doc_id=other_id)
    assert before_long > 3

    long_doc.write_text(article(200, sentences=15))  # a different, shorter text: fewer chunks
    job = stack.run_job([folder], tenant)
    assert (job.state, job.done, job.unchanged) == ("succeeded", 1, 1)
    es.indices.refresh(index=alias)
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
        doc = session.get(Document, long_id)
        expected, new_hash = doc.chunk_count, doc.content_hash
    assert 0 < expected < before_long
    assert count_chunks(es, alias, tenant=tenant, doc_id=long_id) == expected
    stale = es.count(
        index=alias,
        query={"bool": {"filter": [{"term": {"doc_id": long_id}}], "must_not": [{"term": {"content_hash": new_hash}}]}},
    )["count"]
    assert stale == 0
    assert count_chunks(es, alias, tenant=tenant, doc_id=other_id) == before_other
    _counts_agree(stack, tenant)


def test_near_copy_in_a_later_job_is_caught(stack, tmp_path):
    tenant = "t-later"
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir(), second.mkdir()
    (first / "story.txt").write_text(article(300, sentences=20))
    (second / "syndicated.txt").write_text(near_copy(article(300, sentences=20), changes=3))
    assert stack.run_job([first], tenant).done == 1
    job = stack.run_job([second], tenant)
    assert (job.state, job.skipped, job.done) == ("succeeded", 1, 0)
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
        dup = session.get(Document, document_id(tenant, str(second / "syndicated.txt")))
        assert dup.cluster_id == document_id(tenant, str(first / "story.txt"))
    _counts_agree(stack, tenant)


def test_bad_inputs_become_dead_letters_and_the_rest_is_indexed(stack, tmp_path):
    tenant = "t-bad"
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good1.txt").write_text(article(400))
    (folder / "good2.md").write_text("# Title\n\n" + article(401))
    (folder / "empty.txt").write_bytes(b"")
    (folder / "garbage.txt").write_bytes(bytes(range(256)) * 40)
    (folder / "bad-utf8.txt").write_bytes(b"\xef\xbb\xbfvalid start \xff\xfe\xfa broken")
    (folder / "truncated.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<<")
    (folder / "huge.txt").write_text(article(402) * 400)  # over the 200 kB limit the test stack sets
    (folder / "records.json").write_text(
        json.dumps([{"id": "ok-1", "text": article(403)}, {"id": "no-text", "title": "no body here"}])
    )
    (folder / "program.exe").write_bytes(b"MZ\x90\x00")
    Path(os.fsdecode(bytes(folder) + b"/caf\xe9.txt")).write_text(article(404))  # a Latin-1 name: SQL cannot hold it
    job = stack.run_job([folder], tenant)
    assert job.state == "partial"
    assert (job.done, job.failed, job.total) == (3, 8, 11)
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
        reasons = {d.source.rsplit("/", 1)[-1]: d.reason for d in repo.dead_letters(session, job.id)}
    assert reasons == {
        "empty.txt": "empty",
        "garbage.txt": "binary",
        "bad-utf8.txt": "decode_error",
        "truncated.pdf": "corrupt_pdf",
        "huge.txt": "too_large",
        "records.json#2": "missing_text_field",
        "program.exe": "unsupported_type",
        "caf\ufffd.txt": "invalid_name",
    }
    _counts_agree(stack, tenant)
