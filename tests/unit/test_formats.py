import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.errors import Reason
from pipeline.formats import SUPPORTED_SUFFIXES, iter_files, parse_datetime, read_path
from pipeline.formats.files import split_names
from pipeline.types import RawDocument, Rejected

MAX = 1_000_000


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A minimal PDF written by hand, with one Helvetica text line per page and a real xref."""
    n_pages = len(pages)
    font_id = 3 + 2 * n_pages
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>"
        % (b" ".join(b"%d 0 R" % (3 + 2 * i) for i in range(n_pages)), n_pages),
    ]
    for i, text in enumerate(pages):
        stream = b"BT /F1 12 Tf 72 720 Td (%s) Tj ET" % text.encode("latin-1")
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R"
            b" /Resources << /Font << /F1 %d 0 R >> >> >>" % (4 + 2 * i, font_id)
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    trailer_extra = b""
    if title is not None:
        objects.append(b"<< /Title (%s) >>" % title.encode("latin-1"))
        trailer_extra = b" /Info %d 0 R" % len(objects)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, trailer_extra, xref)
    return bytes(out)


def read_all(path: Path, max_bytes: int = MAX) -> list[RawDocument | Rejected]:
    return list(read_path(path, max_bytes))


def only(items):
    assert len(items) == 1, items
    return items[0]


def test_txt_utf8_and_source_is_resolved_path(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("Héllo wörld\nline two\n", encoding="utf-8")
    doc = only(read_all(p))
    assert isinstance(doc, RawDocument)
    assert doc.body == "Héllo wörld\nline two\n"
    assert doc.source == str(p.resolve())
    assert (doc.content_type, doc.is_markup, doc.title) == ("txt", False, None)


def test_utf8_bom_and_utf16_bom(tmp_path):
    (tmp_path / "bom8.txt").write_bytes(b"\xef\xbb\xbfCaf\xc3\xa9")
    (tmp_path / "bom16.txt").write_bytes("Grüße, 世界".encode("utf-16"))
    assert only(read_all(tmp_path / "bom8.txt")).body == "Café"
    assert only(read_all(tmp_path / "bom16.txt")).body == "Grüße, 世界"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_bom_is_text_and_nul_heavy_binary_is_not(tmp_path, encoding):
    text = "id,text\nr1,Die Hafenbehörde meldet einen Rekord.\nr2,Größer als je zuvor.\n"  # a Windows export
    (tmp_path / "export.csv").write_bytes(text.encode(encoding))
    assert [item.body for item in read_all(tmp_path / "export.csv")] == [
        "Die Hafenbehörde meldet einen Rekord.",
        "Größer als je zuvor.",
    ]
    for binary in (b"\x00\x00\x01\x00" * 500, b"A\x00\x01\x00\x02\x00\x03\x00" * 300, b"\x00" * 64):
        (tmp_path / "blob.txt").write_bytes(binary)
        assert only(read_all(tmp_path / "blob.txt")).reason == Reason.BINARY


def test_latin1_text_is_detected_not_rejected(tmp_path):
    p = tmp_path / "fr.txt"
    text = "Café naïve, crème brûlée à l'hôtel.\nDéjà vu: garçon, façade, Noël.\n"
    p.write_bytes(text.encode("latin-1"))
    assert only(read_all(p)).body == text


def test_central_european_text_keeps_its_code_page(tmp_path):
    p = tmp_path / "pl.txt"
    text = "Zażółć gęślą jaźń. Pchnąć w tę łódź jeża lub ośm skrzyń fig."
    p.write_bytes(text.encode("cp1250"))
    assert only(read_all(p)).body == text


def test_random_bytes_rejected(tmp_path):
    p = tmp_path / "noise.txt"
    p.write_bytes(os.urandom(4096))
    rej = only(read_all(p))
    assert isinstance(rej, Rejected)
    assert rej.reason in (Reason.BINARY, Reason.DECODE_ERROR)
    assert rej.stage == "read"


def test_control_heavy_file_without_nul_is_binary(tmp_path):
    p = tmp_path / "ctl.txt"
    p.write_bytes(b"ab\x01\x02\x03cd\x04\x05\x06" * 50)
    assert only(read_all(p)).reason == Reason.BINARY


def test_bad_utf16_after_bom_is_decode_error(tmp_path):
    p = tmp_path / "bad16.txt"
    p.write_bytes(b"\xff\xfeA\x00\x00\xdc")  # lone low surrogate
    assert only(read_all(p)).reason == Reason.DECODE_ERROR


@pytest.mark.parametrize("content", [b"", b"  \n\t\r\n  "])
def test_empty_and_whitespace_files(tmp_path, content):
    p = tmp_path / "e.md"
    p.write_bytes(content)
    assert only(read_all(p)).reason == Reason.EMPTY


def test_too_large_checked_before_reading(tmp_path, monkeypatch):
    p = tmp_path / "big.txt"
    p.write_text("x" * 101)

    def boom(self):
        raise AssertionError("file was read")

    monkeypatch.setattr(Path, "read_bytes", boom)
    rej = only(read_all(p, max_bytes=100))
    assert rej.reason == Reason.TOO_LARGE
    assert "101" in rej.detail


def test_missing_and_unsupported(tmp_path):
    assert only(read_all(tmp_path / "nope.txt")).reason == Reason.NOT_FOUND
    (tmp_path / "x.exe").write_bytes(b"MZ\x90\x00")
    rej = only(read_all(tmp_path / "x.exe"))
    assert rej.reason == Reason.UNSUPPORTED_TYPE and ".exe" in rej.detail


def test_a_symlink_loop_is_a_dead_letter_under_its_own_name(tmp_path):
    (tmp_path / "loop.txt").symlink_to("loop.txt")
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    rej = only(read_all(tmp_path / "loop.txt"))
    assert rej.reason == Reason.NOT_FOUND and "symbolic links" in rej.detail
    assert rej.source == str(tmp_path / "loop.txt")
    rej = only(read_all(tmp_path / "a"))
    assert rej.reason == Reason.UNSUPPORTED_TYPE and rej.source == str(tmp_path / "a")
    # the folder listing names them as files, each then read into its dead letter
    assert [p.name for p in iter_files([tmp_path])] == ["a", "b", "loop.txt"]


def test_a_file_that_grows_past_the_limit_while_read_is_too_large(tmp_path, monkeypatch):
    p = tmp_path / "growing.txt"
    p.write_text("x" * 50)
    real_open = Path.open

    def grown(self, *args, **kwargs):  # appended to between its stat and its read
        with open(self, "a") as f:
            f.write("x" * 100)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", grown)
    rej = only(read_all(p, max_bytes=100))
    assert rej.reason == Reason.TOO_LARGE and "grew" in rej.detail


def test_markdown_title_skips_code_fences(tmp_path):
    p = tmp_path / "n.md"
    p.write_text("```sh\n# not a title\n```\nintro\n\n## Sub\n# Real Title #\nbody\n")
    doc = only(read_all(p))
    assert (doc.content_type, doc.title) == ("md", "Real Title")


def test_html_is_raw_markup(tmp_path):
    p = tmp_path / "page.HTM"
    p.write_text("<html><body><p>Hi</p></body></html>")
    doc = only(read_all(p))
    assert (doc.content_type, doc.is_markup, doc.body) == ("html", True, p.read_text())


def test_pdf_pages_and_title(tmp_path):
    p = tmp_path / "doc.pdf"
    p.write_bytes(make_pdf(["Hello page one", "Second page"], title="My Report"))
    doc = only(read_all(p))
    assert doc.body == "Hello page one\n\f\nSecond page"
    assert (doc.content_type, doc.title) == ("pdf", "My Report")


def test_truncated_pdf_is_corrupt(tmp_path):
    data = make_pdf(["Hello page one"])
    p = tmp_path / "cut.pdf"
    p.write_bytes(data[: len(data) // 2])
    assert only(read_all(p)).reason == Reason.CORRUPT_PDF


def test_pdf_without_text_is_empty(tmp_path):
    p = tmp_path / "blank.pdf"
    p.write_bytes(make_pdf([""]))
    assert only(read_all(p)).reason == Reason.EMPTY


def test_jsonl_bad_line_rejects_only_that_line(tmp_path):
    p = tmp_path / "r.jsonl"
    lines = [
        json.dumps({"url": "https://ex.com/a", "text": "first", "lang": "en", "tags": ["x"]}),
        "",
        '{"text": "broken",',
        json.dumps({"body": "<p>second <b>bold</b></p>", "id": 7}),
        json.dumps({"content": "third", "title": "  T  "}),
    ]
    p.write_text("\n".join(lines) + "\n")
    out = read_all(p)
    docs = [o for o in out if isinstance(o, RawDocument)]
    rejects = [o for o in out if isinstance(o, Rejected)]
    assert [d.body for d in docs] == ["first", "<p>second <b>bold</b></p>", "third"]
    assert [d.source for d in docs] == ["https://ex.com/a", "7", f"{p.resolve()}#5"]
    assert docs[0].metadata == {"lang": "en", "tags": ["x"]}  # lists of scalars are metadata too (docs/metadata.md)
    assert [d.is_markup for d in docs] == [False, True, False]
    assert docs[2].title == "T"
    rej = only(rejects)
    assert rej.reason == Reason.INVALID_JSON
    assert "line 3" in rej.detail
    assert rej.source == f"{p.resolve()}#3"


def test_json_array_record_problems(tmp_path):
    p = tmp_path / "a.json"
    p.write_text(
        json.dumps(
            [
                {"text": "ok", "published": "2024-03-01T10:00:00Z"},
                {"title": "no text", "text": ""},
                "not an object",
                {"text": "rfc", "published": "Tue, 05 Mar 2024 08:30:00 +0100"},
                {"text": "bad date", "published": "last tuesday"},
            ]
        )
    )
    out = read_all(p)
    assert [type(o).__name__ for o in out] == ["RawDocument", "Rejected", "Rejected", "RawDocument", "RawDocument"]
    assert out[0].published == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert out[0].source == f"{p.resolve()}#1"
    assert out[1].reason == Reason.MISSING_TEXT_FIELD and "record 2" in out[1].detail
    assert out[2].reason == Reason.INVALID_JSON and "record 3" in out[2].detail
    assert out[3].published == datetime(2024, 3, 5, 7, 30, tzinfo=UTC)
    assert out[4].published is None


def test_json_single_object_and_invalid(tmp_path):
    (tmp_path / "o.json").write_text('{"url": "u1", "text": "one", "score": 3}')
    doc = only(read_all(tmp_path / "o.json"))
    assert (doc.source, doc.body, doc.metadata) == ("u1", "one", {"score": 3})
    (tmp_path / "bad.json").write_text('{"text": "x",\n oops}')
    rej = only(read_all(tmp_path / "bad.json"))
    assert rej.reason == Reason.INVALID_JSON and "line 2" in rej.detail
    (tmp_path / "n.json").write_text("42")
    assert only(read_all(tmp_path / "n.json")).reason == Reason.INVALID_JSON


def test_csv_records_metadata_and_published(tmp_path):
    p = tmp_path / "news.csv"
    p.write_text(
        "id,title,text,category,published\n"
        '001,First,"Body one, with comma",sport,2024-01-02\n'
        "002,Second,,tech,\n"
        "003,Third,Body three,,not a date\n"
    )
    out = read_all(p)
    first, missing, third = out
    assert (first.source, first.title, first.body) == ("001", "First", "Body one, with comma")
    assert first.metadata == {"category": "sport"}
    assert first.published == datetime(2024, 1, 2, tzinfo=UTC)
    assert first.content_type == "csv"
    assert missing.reason == Reason.MISSING_TEXT_FIELD and "row 2" in missing.detail
    assert third.metadata == {} and third.published is None


def test_csv_without_text_column_or_unparseable(tmp_path):
    (tmp_path / "a.csv").write_text("id,title\n1,x\n")
    assert only(read_all(tmp_path / "a.csv")).reason == Reason.MISSING_TEXT_FIELD
    (tmp_path / "b.csv").write_text('id,text\n1,"never closed\n2,x\n')
    assert only(read_all(tmp_path / "b.csv")).reason == Reason.INVALID_CSV


def test_a_csv_row_with_more_cells_than_its_header_is_its_own_dead_letter(tmp_path):
    """Before, one such row refused the whole file, and a file whose every row had one cell more (a comma in each
    text) was read shifted by a column: the id took the text's first half, the text its second."""
    (tmp_path / "shifted.csv").write_text("id,text\n1,hello, world\n2,fine\n")
    bad, good = read_all(tmp_path / "shifted.csv")
    assert (bad.source, bad.reason) == (f"{tmp_path / 'shifted.csv'}#1", Reason.INVALID_CSV)
    assert bad.detail == "row 1: 3 cells where the header has 2: quote a cell that holds ','"
    assert (good.source, good.body) == ("2", "fine")
    (tmp_path / "ragged.csv").write_text("id,text,desk\n1,ok\n2,bad,x,y\n3,fine,fx\n")
    first, ragged, third = read_all(tmp_path / "ragged.csv")
    assert (first.body, first.metadata) == ("ok", {})  # a short row lacks its last cells
    assert ragged.reason == Reason.INVALID_CSV and (third.body, third.metadata) == ("fine", {"desk": "fx"})
    (tmp_path / "open.csv").write_text('id,text\n1,ok\n2,"never closed\n3,x\n')
    first, rest = read_all(tmp_path / "open.csv")
    assert first.body == "ok" and rest.reason == Reason.INVALID_CSV and "rest of the file" in rest.detail


@pytest.mark.parametrize(
    "name, content",
    [
        ("semicolons.csv", "id;text;price\n1;Le marché a baissé, nettement;3,5\n"),
        ("tabs.tsv", "id\ttext\tprice\n1\tLe marché a baissé, nettement\t3,5\n"),
        ("pipes.csv", "id|text|price\n1|Le marché a baissé, nettement|3,5\n"),
    ],
)
def test_csv_delimiters_are_found_from_the_header(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    doc = only(read_all(tmp_path / name))
    assert (doc.source, doc.body, doc.metadata) == ("1", "Le marché a baissé, nettement", {"price": "3,5"})


def test_csv_columns_without_a_name_or_named_twice_keep_their_cells(tmp_path):
    (tmp_path / "cols.csv").write_text("id,text,text,\n1,a,b,c\n")
    doc = only(read_all(tmp_path / "cols.csv"))
    assert (doc.body, doc.metadata) == ("a", {"text.1": "b", "column_4": "c"})
    (tmp_path / "lines.ndjson").write_text('{"id": "n", "text": "newline-delimited JSON"}\n')
    assert only(read_all(tmp_path / "lines.ndjson")).content_type == "jsonl"


def test_iter_files_recursive_sorted_skips_hidden(tmp_path):
    for rel in ["b.txt", "a/z.md", "a/y.docx", ".hidden.txt", ".git/x.txt", "a/.secret/s.txt"]:
        f = tmp_path / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("x")
    single = tmp_path / "b.txt"
    got = list(iter_files([tmp_path, single]))
    assert got == [tmp_path / "a/y.docx", tmp_path / "a/z.md", tmp_path / "b.txt", single]
    assert ".exe" not in SUPPORTED_SUFFIXES


def test_symlinked_folders_are_followed_once_and_a_folder_loop_ends(tmp_path):
    shared = tmp_path / "shared"
    (shared / "deep").mkdir(parents=True)
    (shared / "deep" / "d.md").write_text("x")
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "s.txt").write_text("x")
    (root / "linked").symlink_to(shared)  # a data folder linked in: read as if it were here
    (root / "sub" / "up").symlink_to(root)  # a loop back to the folder ingested
    (root / "z_again").symlink_to(shared / "deep")  # a folder reached twice: read once
    (root / "gone.txt").symlink_to(tmp_path / "missing.txt")
    got = [p.relative_to(root) for p in iter_files([root])]
    assert got == [Path("gone.txt"), Path("linked/deep/d.md"), Path("sub/s.txt")]
    # a dangling link's dead letter names the link the user has, not a target they never named
    rej = only(read_all(root / "gone.txt"))
    assert rej.reason == Reason.NOT_FOUND and rej.source == str(root / "gone.txt")


def test_a_json_export_envelope_is_read_as_its_records(tmp_path):
    envelope = {"total": 2, "next": None, "documents": [{"id": "a", "text": "one"}, {"id": "b", "text": "two"}]}
    (tmp_path / "export.json").write_text(json.dumps(envelope))
    assert [(d.source, d.body) for d in read_all(tmp_path / "export.json")] == [("a", "one"), ("b", "two")]
    # an object with its own text, or with two lists of objects, stays one record
    (tmp_path / "one.json").write_text(json.dumps({"text": "own", "items": [{"text": "x"}]}))
    assert [d.body for d in read_all(tmp_path / "one.json")] == ["own"]
    (tmp_path / "two.json").write_text(json.dumps({"a": [{"text": "x"}], "b": [{"text": "y"}]}))
    rej = only(read_all(tmp_path / "two.json"))
    assert rej.reason == Reason.MISSING_TEXT_FIELD


def test_record_fields_match_whatever_their_case_and_titles_and_dates_have_other_names(tmp_path):
    """Spreadsheet exports capitalise headers ("Text" was a missing text column), and news exports call the title
    a headline and the date a Unix timestamp."""
    (tmp_path / "sheet.csv").write_text("ID,Title,Text,Date,Desk\n7,Rates,Rates rose again,2024-01-02,markets\n")
    doc = only(read_all(tmp_path / "sheet.csv"))
    assert (doc.source, doc.title, doc.body) == ("7", "Rates", "Rates rose again")
    assert doc.published == datetime(2024, 1, 2, tzinfo=UTC)
    assert doc.metadata == {"Date": "2024-01-02", "Desk": "markets"}  # a date under another name stays metadata too
    lines = [
        {"URL": "https://n.example/a", "headline": "Oil falls", "body": "Crude fell.", "timestamp": 1700000000000},
        {"id": "b", "text": "Gold rose.", "published": "soon", "date": "2024-03-05T07:30:00Z"},  # the first that reads
    ]
    (tmp_path / "news.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    first, second = read_all(tmp_path / "news.jsonl")
    assert (first.source, first.title, first.published) == (
        "https://n.example/a",
        "Oil falls",
        datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC),
    )
    assert second.published == datetime(2024, 3, 5, 7, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "value,expected",
    [
        ("2024-05-06", datetime(2024, 5, 6, tzinfo=UTC)),
        ("2024-05-06T12:00:00+02:00", datetime(2024, 5, 6, 10, tzinfo=UTC)),
        ("Mon, 06 May 2024 12:00:00 GMT", datetime(2024, 5, 6, 12, tzinfo=UTC)),
        ("garbage", None),
        (12345, None),  # a count, not a time
        (2024, None),  # a year
        (True, None),
        (1700000000, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),  # Unix seconds
        (1700000000.5, datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)),
        (1700000000000, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),  # milliseconds
        ("1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("20240506", datetime(2024, 5, 6, tzinfo=UTC)),  # ISO basic, not a Unix time
        (10**30, None),
    ],
)
def test_parse_datetime(value, expected):
    assert parse_datetime(value) == expected


@pytest.mark.parametrize(
    ("name", "ctype"),
    [("a.text", "txt"), ("app.log", "txt"), ("guide.rst", "txt"), ("n.org", "txt"), ("m.adoc", "txt")]
    + [("readme.markdown", "md"), ("page.xhtml", "html")],
)
def test_other_text_suffixes_are_read_as_text_markdown_or_html(tmp_path, name, ctype):
    path = tmp_path / name
    path.write_text("# Title line\n\nSome text of the file." if ctype != "html" else "<p>Some text of the file.</p>")
    doc = only(read_all(path))
    assert isinstance(doc, RawDocument) and doc.content_type == ctype and "Some text of the file." in doc.body
    assert doc.is_markup == (ctype == "html") and (doc.title == "Title line") == (ctype == "md")


def test_names_that_are_not_utf8_become_dead_letters_the_others_job_files(tmp_path):
    good = tmp_path / "plain.txt"
    bad = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.txt"))
    named, refused = split_names([good, bad])
    assert named == [str(good)]
    (letter,) = refused
    assert (letter.source, letter.stage, letter.reason) == (f"{tmp_path}/caf\ufffd.txt", "read", Reason.INVALID_NAME)
    letter.source.encode("utf-8")  # storable in SQL, JSON and Elasticsearch
    assert "rename it" in letter.detail


def test_the_readmes_formats_table_names_every_supported_suffix():
    """One source of truth: a suffix added to a reader shows up in the README's table, or this fails."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("## Formats") : readme.index("## What a job does")]
    named = set(re.findall(r"(?<![\w/])\.[a-z0-9]+", section))
    assert SUPPORTED_SUFFIXES - named == set()
    assert {name for name in named if name not in SUPPORTED_SUFFIXES} == set()  # nor one that is not read
