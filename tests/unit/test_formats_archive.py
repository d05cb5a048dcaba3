"""Archives (.zip and tars) and compressed files: every member read as a file of its name, named inside its
archive; hidden members passed over; bombs, broken archives, oversized members and deep nesting refused; the
items after a stored part found without reading the members before it; the count equal to what is read."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from pipeline.errors import Reason
from pipeline.formats import SUPPORTED_SUFFIXES, read_path
from pipeline.formats import files as dispatcher
from pipeline.formats.archive import MAX_DEPTH
from pipeline.formats.files import count_items
from pipeline.types import RawDocument, Rejected
from tests.unit.test_formats import make_pdf

MAX = 1_000_000
RECORDS = "\n".join(json.dumps({"id": f"rec-{n}", "text": f"record number {n} of the export"}) for n in (1, 2))
MEMBERS: dict[str, bytes] = {
    "notes.txt": b"Plain notes about the harbour project.",
    "docs/guide.md": b"# Guide\n\nHow the harbour cranes are serviced.",
    "docs/": b"",  # a folder entry
    "docs/.DS_Store": b"\x00\x00\x00\x01Bud1",
    "__MACOSX/docs/._guide.md": b"\x00\x05\x16\x07",
    "export/records.jsonl": RECORDS.encode(),
    "report.pdf": make_pdf(["Quarterly harbour report"]),
    "tool.exe": b"MZ\x90\x00",
    "empty.txt": b"",
}
# What a read of MEMBERS yields, in archive order: (name inside the archive or record id, reason or None)
EXPECTED = [
    ("notes.txt", None),
    ("docs/guide.md", None),
    ("rec-1", None),
    ("rec-2", None),
    ("report.pdf", None),
    ("tool.exe", "unsupported_type"),
    ("empty.txt", "empty"),
]


def make_zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def make_tar(members: dict[str, bytes], mode: str = "w:gz") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name.rstrip("/"))
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def summary(items: list[RawDocument | Rejected], path: Path) -> list[tuple[str, str | None]]:
    prefix = f"{path.resolve()}#"
    return [(item.source.removeprefix(prefix), item.reason if isinstance(item, Rejected) else None) for item in items]


def test_archive_types_are_supported():
    assert {".zip", ".tar", ".tgz", ".tbz2", ".txz", ".gz", ".bz2", ".xz"} <= SUPPORTED_SUFFIXES


def test_zip_members_are_read_as_files_named_inside_the_archive(tmp_path):
    path = write(tmp_path, "bundle.zip", make_zip(MEMBERS))
    items = list(read_path(path, MAX))
    assert summary(items, path) == EXPECTED
    notes, guide, rec1, _, report = items[:5]
    assert isinstance(notes, RawDocument) and notes.body == "Plain notes about the harbour project."
    assert notes.metadata == {"archive": str(path.resolve()), "filename": "notes.txt"}
    assert isinstance(guide, RawDocument) and guide.title == "Guide" and guide.content_type == "md"
    assert isinstance(rec1, RawDocument) and rec1.body == "record number 1 of the export"
    assert rec1.metadata["filename"] == "export/records.jsonl"
    assert isinstance(report, RawDocument) and report.content_type == "pdf" and report.metadata["pages"] == 1
    assert count_items(path, MAX) == len(EXPECTED)


@pytest.mark.parametrize(
    ("name", "mode"),
    [("b.tar", "w"), ("b.tar.gz", "w:gz"), ("b.tgz", "w:gz"), ("b.tar.bz2", "w:bz2"), ("b.txz", "w:xz")],
)
def test_tars_are_read_as_zips_are(tmp_path, name, mode):
    path = write(tmp_path, name, make_tar(MEMBERS, mode))
    assert summary(list(read_path(path, MAX)), path) == EXPECTED
    assert count_items(path, MAX) == len(EXPECTED)


def test_a_compressed_file_is_read_as_the_file_it_holds(tmp_path):
    path = write(tmp_path, "notes.txt.gz", gzip.compress(b"Minutes of the harbour board meeting."))
    (doc,) = read_path(path, MAX)
    assert isinstance(doc, RawDocument) and doc.source == str(path.resolve()) and doc.content_type == "txt"
    assert doc.body == "Minutes of the harbour board meeting."
    path = write(tmp_path, "export.jsonl.bz2", bz2.compress(RECORDS.encode()))
    assert [item.source for item in read_path(path, MAX)] == ["rec-1", "rec-2"]
    assert count_items(path, MAX) == 2
    (unknown,) = read_path(write(tmp_path, "data.gz", gzip.compress(b"what is this")), MAX)
    assert isinstance(unknown, Rejected) and unknown.reason == Reason.UNSUPPORTED_TYPE


def test_a_compressed_e_mail_is_counted_as_one_without_reading_it(tmp_path, monkeypatch):
    path = write(tmp_path, "mail.eml.gz", gzip.compress(b"Subject: hi\nFrom: a@x\n\nBody text.\n"))
    assert [item.body.strip() for item in read_path(path, MAX)] == ["Body text."]
    monkeypatch.setattr("pipeline.formats.files._read_file", lambda *a, **k: pytest.fail("read to be counted"))
    assert count_items(path, MAX) == 1  # as a plain .eml: its attachments add to the total as they are read


def test_skip_finds_the_items_after_a_stored_part_without_reading_single_item_members(tmp_path, monkeypatch):
    nested = make_zip({"inner/one.txt": b"first inner text", "inner/rows.csv": b"id,text\nr1,row one\nr2,row two\n"})
    path = write(tmp_path, "outer.zip", make_zip({**MEMBERS, "more/nested.zip": nested, "last.txt": b"the end"}))
    full = [(item.source, item.reason if isinstance(item, Rejected) else None) for item in read_path(path, MAX)]
    assert len(full) == len(EXPECTED) + 4
    for skip in range(len(full) + 2):
        got = [
            (item.source, item.reason if isinstance(item, Rejected) else None)
            for item in read_path(path, MAX, skip=skip)
        ]
        assert got == full[skip:], skip
    pdf_reads = []
    monkeypatch.setitem(dispatcher._BINARY_READERS, ".pdf", lambda data, source: pdf_reads.append(source))
    assert [item.source for item in read_path(path, MAX, skip=5)][0].endswith("#tool.exe")
    assert count_items(path, MAX) == len(full)
    assert pdf_reads == []  # neither the skip nor the count read the PDF


def test_a_member_over_the_size_limit_is_its_own_dead_letter(tmp_path):
    path = write(tmp_path, "b.zip", make_zip({"big.txt": b"word " * 400, "small.txt": b"a small text"}))
    big, small = read_path(path, 1_000)
    assert isinstance(big, Rejected) and big.reason == Reason.TOO_LARGE and big.source.endswith("#big.txt")
    assert isinstance(small, RawDocument)


def test_an_archive_that_unpacks_past_ten_times_the_limit_is_refused_whole(tmp_path):
    bomb = make_zip({f"zeros-{n}.txt": b"0" * 1_900 for n in range(12)})  # 22,800 bytes unpacked, 1.4 kB packed
    (item,) = read_path(write(tmp_path, "bomb.zip", bomb), 2_000)
    assert isinstance(item, Rejected) and item.reason == Reason.TOO_LARGE and "zip bomb" in item.detail
    (item,) = read_path(write(tmp_path, "bomb.txt.gz", gzip.compress(b"0" * 5_000)), 2_000)
    assert isinstance(item, Rejected) and item.reason == Reason.TOO_LARGE


def test_broken_archives_are_corrupt(tmp_path):
    data = make_zip(MEMBERS)
    for name, broken in [
        ("cut.zip", data[: len(data) // 2]),
        ("cut.tgz", make_tar(MEMBERS)[:300]),
        ("cut.txt.gz", gzip.compress(b"some text here")[:-6]),
        ("renamed.zip", b"this is no zip at all"),
    ]:
        (item,) = read_path(write(tmp_path, name, broken), MAX)
        assert isinstance(item, Rejected) and item.reason == Reason.CORRUPT_FILE, (name, item)


def test_archives_inside_archives_are_read_to_a_bounded_depth(tmp_path):
    data = make_zip({"deepest.txt": b"at the bottom"})
    for level in range(MAX_DEPTH + 1, 0, -1):
        data = make_zip({f"level-{level}.txt": f"text of level {level}".encode(), f"level-{level}.zip": data})
    path = write(tmp_path, "top.zip", data)
    items = list(read_path(path, MAX))
    texts = [item.body for item in items if isinstance(item, RawDocument)]
    assert texts == [f"text of level {level}" for level in range(1, MAX_DEPTH + 2)]  # the top one and 3 inside
    (deep,) = [item for item in items if isinstance(item, Rejected)]
    assert deep.reason == Reason.TOO_DEEP
    assert deep.source.endswith("#level-1.zip#level-2.zip#level-3.zip#level-4.zip")
