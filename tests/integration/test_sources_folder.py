"""Folder sources end to end: re-syncs ingest new and edited files and forget deleted ones, and the
index and SQL agree after every sync."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from pipeline.types import document_id
from tests.fixtures import article
from tests.sources_support import add, chunks_of, counts_agree, documents, run_now

pytestmark = pytest.mark.integration


def test_folder_resync_adds_edits_and_deletes(stack, tmp_path):
    tenant = "t-folder-sync"
    folder = tmp_path / "watched"
    folder.mkdir()
    for i in range(3):
        (folder / f"a{i}.txt").write_text(article(2000 + i))
    (folder / "copy-of-a0.txt").write_text(article(2000).upper())  # an exact duplicate of a0
    (folder / "notes.jsonl").write_text(
        "\n".join(json.dumps({"id": f"note-{n}", "text": article(2100 + n)}) for n in (1, 2))
    )
    sid = add(stack, "folder", str(folder), tenant)
    path = {name: str(folder / name) for name in ("a0.txt", "a1.txt", "a2.txt", "a3.txt", "copy-of-a0.txt")}
    doc = {name: document_id(tenant, p) for name, p in path.items()}

    src, job = run_now(stack, sid)
    assert (job.kind, job.state, job.done, job.skipped) == ("folder", "succeeded", 5, 1), src.last_error
    assert src.last_status.startswith("5 new, 0 changed, 0 deleted")
    counts_agree(stack, tenant)

    (folder / "a1.txt").write_text(article(2201, sentences=30))  # edited
    (folder / "a2.txt").unlink()  # deleted
    (folder / "a3.txt").write_text(article(2003))  # added
    a2_chunks = chunks_of(stack, tenant, doc["a2.txt"])
    assert a2_chunks > 0
    src, job = run_now(stack, sid)
    assert sorted(job.inputs) == [path["a1.txt"], path["a3.txt"]]
    assert (job.state, job.done, job.unchanged, job.skipped) == ("succeeded", 2, 0, 0)
    assert src.last_status.startswith("1 new, 1 changed, 1 deleted (1 documents removed), 3 unchanged")
    docs = documents(stack, tenant)
    assert path["a2.txt"] not in docs  # deleted through the one delete path: rows, chunks and dedup state
    assert chunks_of(stack, tenant, doc["a2.txt"]) == 0
    assert docs[path["a1.txt"]].text.startswith(article(2201, sentences=30)[:40])
    counts_agree(stack, tenant)

    src, job = run_now(stack, sid)  # nothing changed: no job at all
    assert job is None and src.last_status.startswith("0 new, 0 changed, 0 deleted")

    # the original goes; its duplicate is all that is left of that text, so it becomes the indexed copy
    (folder / "a0.txt").unlink()
    src, job = run_now(stack, sid)
    assert job.inputs == [path["copy-of-a0.txt"]] and (job.done, job.skipped) == (1, 0)
    docs = documents(stack, tenant)
    assert path["a0.txt"] not in docs and chunks_of(stack, tenant, doc["a0.txt"]) == 0
    assert docs[path["copy-of-a0.txt"]].status == "indexed"
    assert chunks_of(stack, tenant, doc["copy-of-a0.txt"]) == docs[path["copy-of-a0.txt"]].chunk_count > 0
    counts_agree(stack, tenant)

    # a deleted file that comes back is indexed again; a deleted records file takes its records along
    (folder / "a2.txt").write_text(article(2002))
    (folder / "notes.jsonl").unlink()
    src, job = run_now(stack, sid)
    assert (job.done, job.unchanged) == (1, 0)
    docs = documents(stack, tenant)
    assert docs[path["a2.txt"]].status == "indexed"
    assert chunks_of(stack, tenant, doc["a2.txt"]) == a2_chunks
    assert "note-1" not in docs and "note-2" not in docs
    assert chunks_of(stack, tenant, document_id(tenant, "note-1")) == 0
    counts_agree(stack, tenant)


def test_missing_folder_is_an_error_not_a_deletion(stack, tmp_path):
    tenant = "t-folder-gone"
    folder = tmp_path / "share"
    folder.mkdir()
    (folder / "keep.txt").write_text(article(2300))
    sid = add(stack, "folder", str(folder), tenant)
    assert run_now(stack, sid)[1].done == 1
    (folder / "keep.txt").rename(tmp_path / "keep.txt")
    folder.rmdir()  # as if the share were unmounted
    src, job = run_now(stack, sid)
    assert job is None and src.failures == 1 and "does not exist" in src.last_error
    assert documents(stack, tenant)[str(folder / "keep.txt")].status == "indexed"
    assert counts_agree(stack, tenant) > 0


def test_items_gone_from_a_changed_file_leave_at_the_next_sync(stack, tmp_path):
    tenant = "t-folder-items"
    folder = tmp_path / "exports"
    folder.mkdir()

    def notes(*numbers: int) -> None:
        lines = (json.dumps({"id": f"item-{n}", "text": article(2400 + n)}) for n in numbers)
        (folder / "notes.jsonl").write_text("\n".join(lines))

    def bundle(**members: str) -> None:
        with zipfile.ZipFile(folder / "bundle.zip", "w") as archive:
            for name, text in members.items():
                archive.writestr(name, text)

    notes(1, 2, 3)
    bundle(**{"x.txt": article(2410), "y.txt": article(2411)})
    (folder / "plain.txt").write_text(article(2412))
    Path(os.fsdecode(bytes(folder) + b"/caf\xe9.txt")).write_text(article(2413))  # a Latin-1 name
    sid = add(stack, "folder", str(folder), tenant)
    member = {name: f"{folder / 'bundle.zip'}#{name}" for name in ("x.txt", "y.txt")}
    src, job = run_now(stack, sid)
    assert job.done == 6
    assert src.last_status.endswith(
        f"1 file(s) skipped, their names are not UTF-8 or too long (rename them): {folder}/caf\ufffd.txt"
    ), src.last_status

    notes(1, 3, 4)  # item-2 left the export, item-4 came
    bundle(**{"x.txt": article(2410)})  # y.txt left the archive
    src, job = run_now(stack, sid)
    assert (job.done, job.unchanged) == (1, 3)
    src, job = run_now(stack, sid)  # the next sync, after the job that read the changed files ended
    assert job is None
    assert "2 document(s) of items gone from changed files removed" in src.last_status, src.last_status
    docs = documents(stack, tenant)
    assert {"item-1", "item-3", "item-4", member["x.txt"], str(folder / "plain.txt")} <= set(docs)
    assert "item-2" not in docs and member["y.txt"] not in docs
    assert chunks_of(stack, tenant, document_id(tenant, "item-2")) == 0
    assert chunks_of(stack, tenant, document_id(tenant, member["y.txt"])) == 0
    counts_agree(stack, tenant)
    src, job = run_now(stack, sid)
    assert job is None and "gone from changed files" not in src.last_status  # counted once

    # an export that breaks does not empty the index: every line refused keeps its records
    (folder / "notes.jsonl").write_text("{not json\n{nor this\n")
    run_now(stack, sid)
    src, job = run_now(stack, sid)
    assert "gone from changed files" not in src.last_status
    assert {"item-1", "item-3", "item-4"} <= set(documents(stack, tenant))
    counts_agree(stack, tenant)


def test_an_export_that_drops_hundreds_of_rows_is_pruned_in_bounded_batches(stack, tmp_path):
    """More items gone than one of the prune's IN lists holds (500): its batches together find every one."""
    tenant = "t-folder-many"
    folder = tmp_path / "exports"
    folder.mkdir()
    words = "harbour crane quay ledger tide beacon ferry anchor buoy dock".split()

    def export(rows: range) -> None:
        lines = (
            json.dumps({"id": f"row-{n}", "text": f"Row {n}: {words[n % 10]} {n * 7} {words[n // 10 % 10]}"})
            for n in rows
        )
        (folder / "export.jsonl").write_text("\n".join(lines))

    export(range(1, 601))
    sid = add(stack, "folder", str(folder), tenant)
    src, job = run_now(stack, sid)
    assert job.done == 600, (job.state, job.error)
    export(range(1, 6))  # the export keeps five rows
    src, job = run_now(stack, sid)
    assert (job.done, job.unchanged) == (0, 5)
    src, job = run_now(stack, sid)
    assert "595 document(s) of items gone from changed files removed" in src.last_status, src.last_status
    assert set(documents(stack, tenant)) == {f"row-{n}" for n in range(1, 6)}
    counts_agree(stack, tenant)
