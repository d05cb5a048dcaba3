"""The Office, OpenDocument, EPUB, e-mail and RTF readers, on files the writing libraries make at run time.

Each format is checked for its text in reading order (tables as " | " rows), title, published date and metadata,
and for corrupt input (truncated, random bytes under its suffix, a zip without the expected parts): exactly one
Rejected with reason corrupt_file and a one-line detail, never an exception.
"""

from __future__ import annotations

import email
import io
import json
import random
import zipfile
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.policy import default
from email.utils import format_datetime
from pathlib import Path

import docx
import openpyxl
import pptx
import pytest
import xlsxwriter
import xlwt
from ebooklib import epub
from odf import dc, meta
from odf.opendocument import OpenDocumentSpreadsheet, OpenDocumentText
from odf.table import Table, TableCell, TableRow
from odf.text import H, List, ListItem, P
from pptx.util import Inches

from pipeline.errors import Reason
from pipeline.formats import SUPPORTED_SUFFIXES, read_path
from pipeline.formats.mail import MAX_DEPTH
from pipeline.jobs.counting import count_items
from pipeline.types import RawDocument, Rejected
from tests.unit.test_formats import make_pdf
from tests.unit.test_formats_archive import make_tar, make_zip

MAX = 2_000_000
CREATED = datetime(2023, 4, 5, 6, 7, 8)
TABLE = [["Region", "Units", "Revenue"], ["North", "12", "3400"]]


def read_all(path: Path, max_bytes: int = MAX) -> list[RawDocument | Rejected]:
    return list(read_path(path, max_bytes))


def only_doc(path: Path) -> RawDocument:
    items = read_all(path)
    assert len(items) == 1 and isinstance(items[0], RawDocument), items
    return items[0]


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- fixture writers (also used by bench/formats_fidelity.py) ---


def make_docx(heading: str, paragraphs: list[str], table: list[list[str]], title: str | None = None) -> bytes:
    document = docx.Document()
    document.add_heading(heading, level=1)
    for text in paragraphs[:1]:
        document.add_paragraph(text)
    grid = document.add_table(rows=len(table), cols=len(table[0]))
    for r, row in enumerate(table):
        for c, value in enumerate(row):
            grid.cell(r, c).text = value
    for text in paragraphs[1:]:
        document.add_paragraph(text)
    props = document.core_properties
    props.title, props.author, props.subject, props.keywords = title or "", "Ada Writer", "Sales", "north, units"
    props.created = CREATED
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_pptx(slides: list[tuple[str, list[str], str]], table: list[list[str]] | None = None) -> bytes:
    deck = pptx.Presentation()
    deck.core_properties.title = "Quarterly deck"
    deck.core_properties.author = "Bo Presenter"
    deck.core_properties.created = CREATED
    for n, (title, bullets, notes) in enumerate(slides):
        slide = deck.slides.add_slide(deck.slide_layouts[1 if n == 0 or table is None else 5])
        slide.shapes.title.text = title
        if n == 0 or table is None:
            frame = slide.placeholders[1].text_frame
            frame.text = bullets[0]
            for bullet in bullets[1:]:
                frame.add_paragraph().text = bullet
        else:
            box = slide.shapes.add_textbox(Inches(1), Inches(1.5), Inches(6), Inches(1)).text_frame
            box.text = " ".join(bullets)
            shape = slide.shapes.add_table(len(table), len(table[0]), Inches(1), Inches(3), Inches(6), Inches(1))
            for r, row in enumerate(table):
                for c, value in enumerate(row):
                    shape.table.cell(r, c).text = value
        slide.notes_slide.notes_text_frame.text = notes
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def make_xlsx(sheets: dict[str, list[list[object]]], formula: bool = True) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    if formula:
        first = book.worksheets[0]
        first.cell(row=first.max_row + 1, column=2, value=f"=SUM(B2:B{first.max_row})")
    book.properties.title, book.properties.creator, book.properties.created = "Budget book", "Cy Counter", CREATED
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def make_ods(sheets: dict[str, list[list[object]]]) -> bytes:
    document = OpenDocumentSpreadsheet()
    document.meta.addElement(dc.Title(text="Budget sheet"))
    document.meta.addElement(dc.Creator(text="Di Sheets"))
    document.meta.addElement(meta.CreationDate(text=CREATED.isoformat()))
    for name, rows in sheets.items():
        table = Table(name=name)
        for row in rows:
            element = TableRow()
            for value in row:
                element.addElement(_ods_cell(value))
            element.addElement(TableCell(numbercolumnsrepeated=1000))  # the empty rest of the row, as Calc writes
            table.addElement(element)
        filler = TableRow(numberrowsrepeated=1_000_000)
        filler.addElement(TableCell(numbercolumnsrepeated=1024))
        table.addElement(filler)  # the empty rest of the sheet
        document.spreadsheet.addElement(table)
    out = io.BytesIO()
    document.write(out)
    return out.getvalue()


def _ods_cell(value: object) -> TableCell:
    if isinstance(value, date):
        cell = TableCell(valuetype="date", datevalue=value.isoformat())
        cell.addElement(P(text=value.strftime("%d/%m/%Y")))
    elif isinstance(value, (int, float)):
        cell = TableCell(valuetype="float", value=str(value))
        cell.addElement(P(text=str(value)))
    elif value in (None, ""):
        cell = TableCell()
    else:
        cell = TableCell(valuetype="string")
        cell.addElement(P(text=str(value)))
    return cell


def make_odt(heading: str, paragraphs: list[str], table: list[list[str]], items: list[str]) -> bytes:
    document = OpenDocumentText()
    document.meta.addElement(dc.Title(text="Field notes"))
    document.meta.addElement(dc.Creator(text="Ed Author"))
    document.meta.addElement(dc.Subject(text="Survey"))
    document.meta.addElement(meta.Keyword(text="moss"))
    document.meta.addElement(meta.Keyword(text="lichen"))
    document.meta.addElement(meta.CreationDate(text=CREATED.isoformat()))
    document.meta.addElement(meta.DocumentStatistic(pagecount="2"))
    document.text.addElement(H(outlinelevel=1, text=heading))
    document.text.addElement(P(text=paragraphs[0]))
    listing = List()
    for item in items:
        entry = ListItem()
        entry.addElement(P(text=item))
        listing.addElement(entry)
    document.text.addElement(listing)
    document.text.addElement(odf_table(table))
    for text in paragraphs[1:]:
        document.text.addElement(P(text=text))
    out = io.BytesIO()
    document.write(out)
    return out.getvalue()


def odf_table(rows: list[list[str]]) -> Table:
    grid = Table(name="T1")
    for row in rows:
        element = TableRow()
        for value in row:
            cell = TableCell()
            cell.addElement(P(text=value))
            element.addElement(cell)
        grid.addElement(element)
    return grid


def make_epub(chapters: list[tuple[str, list[str]]], path: Path) -> bytes:
    book = epub.EpubBook()
    book.set_identifier("urn:uuid:docpipe-test")
    book.set_title("The Moss Gardener")
    book.set_language("en")
    book.add_author("Fay Novelist")
    book.add_metadata("DC", "date", "2021-05-04")
    book.add_metadata("DC", "subject", "Gardening")
    items = []
    for n, (title, paragraphs) in enumerate(chapters, 1):
        chapter = epub.EpubHtml(title=title, file_name=f"chap_{n:02d}.xhtml", lang="en")
        chapter.content = (
            f"<html><head><title>{title}</title><style>p {{ color: red }}</style></head><body>"
            f"<h1>{title}</h1>{''.join(f'<p>{p}</p>' for p in paragraphs)}"
            "<script>var hidden = 'scriptword';</script></body></html>"
        )
        book.add_item(chapter)
        items.append(chapter)
    book.toc = items
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *items]
    epub.write_epub(str(path), book)
    return path.read_bytes()


def make_eml(body: str, attachments: list[tuple[str, bytes, str]], subject: str = "Quarterly figures") -> bytes:
    message = EmailMessage()
    message["From"] = "Gil Sender <gil@example.com>"
    message["To"] = "team@example.com"
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime(2024, 2, 3, 10, 0, tzinfo=UTC))
    message["Message-ID"] = "<abc123@example.com>"
    message.set_content(body)
    for filename, data, mime in attachments:
        maintype, subtype = mime.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()


def make_rtf(paragraphs: list[str]) -> bytes:
    escaped = [p.replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}") for p in paragraphs]
    body = "".join(f"{p}\\par\n" for p in escaped)
    return (
        "{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0\\froman Times New Roman;}}"
        "{\\info{\\title Hidden info title}}\\f0\\fs24 " + body + "}"
    ).encode("ascii")


# --- DOCX ---


def test_docx_paragraphs_and_table_in_reading_order(tmp_path):
    data = make_docx(
        "Sales report", ["First paragraph here.", "Closing words."], [*TABLE, ["South", "7", "1900"]], "Q3"
    )
    doc = only_doc(write(tmp_path, "r.docx", data))
    assert doc.body.split("\n\n") == [
        "Sales report",
        "First paragraph here.",
        "Region | Units | Revenue\nNorth | 12 | 3400\nSouth | 7 | 1900",
        "Closing words.",
    ]
    assert (doc.content_type, doc.is_markup, doc.title) == ("docx", False, "Q3")
    assert doc.published == CREATED.replace(tzinfo=UTC)
    # pages: what the saving application wrote into docProps/app.xml (python-docx keeps its template's 1)
    assert doc.metadata == {"author": "Ada Writer", "subject": "Sales", "keywords": "north, units", "pages": 1}


def test_docx_merged_cells_come_once_and_an_untitled_document_has_no_title(tmp_path):
    document = docx.Document()
    grid = document.add_table(rows=2, cols=3)
    grid.cell(0, 0).merge(grid.cell(0, 1)).text = "Wide"
    grid.cell(0, 2).text = "Narrow"
    grid.cell(1, 1).text = "middle"
    document.core_properties.title = ""
    out = io.BytesIO()
    document.save(out)
    doc = only_doc(write(tmp_path, "m.docx", out.getvalue()))
    assert doc.body == "Wide | Narrow\n | middle"
    assert doc.title is None


# --- PPTX ---


def test_pptx_slides_titles_text_tables_and_notes(tmp_path):
    slides = [("Welcome", ["Agenda item one", "Agenda item two"], "Speak slowly"), ("Numbers", ["Key figures"], "Ask")]
    doc = only_doc(write(tmp_path, "d.pptx", make_pptx(slides, TABLE)))
    first, second = doc.body.split("\n\n")
    assert first.splitlines() == ["Welcome", "Agenda item one", "Agenda item two", "Speak slowly"]
    assert second.splitlines() == ["Numbers", "Key figures", "Region | Units | Revenue", "North | 12 | 3400", "Ask"]
    assert (doc.content_type, doc.title, doc.published) == ("pptx", "Quarterly deck", CREATED.replace(tzinfo=UTC))
    assert doc.metadata == {"author": "Bo Presenter", "slides": 2}


# --- XLSX / XLSM ---

SHEETS: dict[str, list[list[object]]] = {
    "Budget": [["Item", "Amount", "Bought"], ["Paper", 12.5, datetime(2024, 3, 1)], ["Ink", 30, None]],
    "Notes": [["remember the ink"], [], [None, "second column only"]],
}


@pytest.mark.parametrize("suffix", [".xlsx", ".xlsm"])
def test_xlsx_sheets_rows_values_and_dates(tmp_path, suffix):
    doc = only_doc(write(tmp_path, f"b{suffix}", make_xlsx(SHEETS)))
    budget, notes = doc.body.split("\n\n")
    # The formula row: openpyxl stores no cached value, so the cell is empty, never "=SUM(...)".
    assert budget.splitlines() == ["Budget", "Item | Amount | Bought", "Paper | 12.5 | 2024-03-01", "Ink | 30"]
    assert notes.splitlines() == ["Notes", "remember the ink", " | second column only"]
    assert "=" not in doc.body
    assert (doc.content_type, doc.title, doc.published) == ("xlsx", "Budget book", CREATED.replace(tzinfo=UTC))
    assert doc.metadata == {"author": "Cy Counter", "sheets": 2, "sheet_names": ["Budget", "Notes"]}


def test_a_workbook_whose_sheets_have_a_text_column_is_a_table_of_records(tmp_path):
    """Spreadsheet exports of articles or tickets (a header row with a Text column) are read row by row, as their
    CSV export would be, not as one document of every row."""
    sheets: dict[str, list[list[object]]] = {
        "News": [["ID", "Headline", "Text", "Published"], ["n1", "Oil falls", "Crude fell.", datetime(2024, 3, 1)]],
        "More": [["id", "text", "score"], ["n2", "Gold rose.", 0.5], [None, "No id here.", None, "extra"]],
    }
    path = write(tmp_path, "news.xlsx", make_xlsx(sheets, formula=False))
    first, second, third = list(read_path(path, MAX))
    assert (first.source, first.title, first.body, first.content_type) == ("n1", "Oil falls", "Crude fell.", "xlsx")
    assert first.published == datetime(2024, 3, 1, tzinfo=UTC)
    assert first.metadata == {"Headline": "Oil falls", "sheet": "News"}  # a title under another name stays too
    assert (second.source, second.metadata) == ("n2", {"score": "0.5", "sheet": "More"})
    assert (third.source, third.body) == (f"{path.resolve()}#3", "No id here.")  # rows numbered through the book
    assert third.metadata == {"column_4": "extra", "sheet": "More"}
    assert count_items(path, MAX) == 3  # the job's total counts its rows before they are read
    # one sheet without such a header: the workbook is one document, as before
    mixed = write(tmp_path, "mixed.xlsx", make_xlsx({**sheets, "Notes": [["remember the ink"]]}, formula=False))
    assert "remember the ink" in only_doc(mixed).body


def make_xls(sheets: dict[str, list[list[object]]]) -> bytes:
    book = xlwt.Workbook()
    dated = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    for name, rows in sheets.items():
        sheet = book.add_sheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value is None:
                    continue
                sheet.write(r, c, value, dated) if isinstance(value, datetime) else sheet.write(r, c, value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_a_legacy_xls_workbook_is_read_as_an_xlsx_one(tmp_path):
    records = {
        "News": [["ID", "Headline", "Text", "Published"], ["n1", "Oil falls", "Crude fell.", datetime(2024, 3, 1)]],
        "More": [["id", "text", "score"], ["n2", "Gold rose.", 0.5], [None, "No id here.", None, "extra"]],
    }
    path = write(tmp_path, "news.xls", make_xls(records))
    first, second, third = list(read_path(path, MAX))
    assert (first.source, first.title, first.body, first.content_type) == ("n1", "Oil falls", "Crude fell.", "xls")
    assert first.published == datetime(2024, 3, 1, tzinfo=UTC)  # a date cell, not its serial number
    assert (second.metadata, third.source) == ({"score": "0.5", "sheet": "More"}, f"{path.resolve()}#3")
    assert count_items(path, MAX) == 3
    budget = {"Budget": [["Item", "Amount", "Bought"], ["Paper", 12.5, datetime(2024, 3, 1)], ["Ink", 30, True]]}
    doc = only_doc(write(tmp_path, "budget.xls", make_xls(budget)))
    assert doc.body.splitlines() == ["Budget", "Item | Amount | Bought", "Paper | 12.5 | 2024-03-01", "Ink | 30 | True"]
    assert (doc.content_type, doc.metadata["sheet_names"]) == ("xls", ["Budget"])


def test_an_xls_that_is_html_or_delimited_text_is_read_as_what_it_is(tmp_path):
    html = b"<html><body><table><tr><td>Quarterly harbour figures</td><td>12</td></tr></table></body></html>"
    doc = only_doc(write(tmp_path, "report.xls", html))
    assert (doc.content_type, doc.is_markup) == ("html", True) and "Quarterly harbour figures" in doc.body
    rows = list(read_path(write(tmp_path, "export.xls", b"id\ttext\nt1\tFirst ticket.\nt2\tSecond ticket.\n"), MAX))
    assert [(r.source, r.body) for r in rows] == [("t1", "First ticket."), ("t2", "Second ticket.")]
    broken = read_all(write(tmp_path, "broken.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600))
    assert len(broken) == 1 and isinstance(broken[0], Rejected) and broken[0].reason == Reason.CORRUPT_FILE


def test_xlsx_formula_gives_its_cached_value(tmp_path):
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet("Totals")
    sheet.write_row(0, 0, ["a", 2])
    sheet.write_row(1, 0, ["b", 3])
    sheet.write_formula(2, 1, "=SUM(B1:B2)", None, 5)
    sheet.write_datetime(3, 0, datetime(2024, 1, 2, 13, 30), book.add_format({"num_format": "yyyy-mm-dd hh:mm"}))
    book.close()
    doc = only_doc(write(tmp_path, "t.xlsx", out.getvalue()))
    assert doc.body.splitlines() == ["Totals", "a | 2", "b | 3", " | 5", "2024-01-02T13:30:00"]


# --- ODS / ODT ---


def test_ods_sheets_rows_dates_and_repeats_are_bounded(tmp_path):
    sheets: dict[str, list[list[object]]] = {
        "Budget": [["Item", "Amount", "Bought"], ["Paper", 12.5, date(2024, 3, 1)]],
        "Notes": [["remember the ink"], [None, "second column only"]],
    }
    doc = only_doc(write(tmp_path, "b.ods", make_ods(sheets)))
    assert doc.body.split("\n\n") == [
        "Budget\nItem | Amount | Bought\nPaper | 12.5 | 2024-03-01",
        "Notes\nremember the ink\n | second column only",
    ]
    assert (doc.content_type, doc.title, doc.published) == ("ods", "Budget sheet", CREATED.replace(tzinfo=UTC))
    assert doc.metadata == {"author": "Di Sheets", "sheets": 2, "sheet_names": ["Budget", "Notes"]}


def test_odt_headings_paragraphs_lists_and_tables(tmp_path):
    data = make_odt("Mosses", ["Mosses grow in shade.", "End of notes."], TABLE, ["Sphagnum", "Hypnum"])
    doc = only_doc(write(tmp_path, "n.odt", data))
    assert doc.body.split("\n\n") == [
        "Mosses",
        "Mosses grow in shade.",
        "Sphagnum",
        "Hypnum",
        "Region | Units | Revenue\nNorth | 12 | 3400",
        "End of notes.",
    ]
    assert (doc.content_type, doc.title, doc.published) == ("odt", "Field notes", CREATED.replace(tzinfo=UTC))
    assert doc.metadata == {"author": "Ed Author", "subject": "Survey", "keywords": "moss, lichen", "pages": 2}


def test_odf_of_the_other_kind_is_corrupt(tmp_path):
    data = make_odt("Mosses", ["Mosses grow in shade."], TABLE, [])
    (item,) = read_all(write(tmp_path, "n.ods", data))
    assert isinstance(item, Rejected) and item.reason == Reason.CORRUPT_FILE and "office:spreadsheet" in item.detail


# --- EPUB ---


def test_epub_chapters_in_spine_order_as_text(tmp_path):
    chapters = [("Chapter One", ["Spores drift at dawn."]), ("Chapter Two", ["Rain feeds the carpet.", "The end."])]
    doc = only_doc(write(tmp_path, "b.epub", make_epub(chapters, tmp_path / "w.epub")))
    assert doc.body == "Chapter One\n\nSpores drift at dawn.\n\nChapter Two\n\nRain feeds the carpet.\n\nThe end."
    assert "scriptword" not in doc.body and "color" not in doc.body  # script and style dropped, nav not read
    assert (doc.content_type, doc.is_markup, doc.title) == ("epub", False, "The Moss Gardener")
    assert doc.published == datetime(2021, 5, 4, tzinfo=UTC)
    assert doc.metadata == {"author": "Fay Novelist", "subject": "Gardening", "language": "en", "chapters": 2}


# --- EML ---


def test_eml_body_and_each_readable_attachment(tmp_path):
    report = make_docx("Attached report", ["Inside the attachment."], TABLE)
    attachments = [
        ("report.docx", report, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("rows.csv", b"id,text\nr1,first row\nr2,second row\n", "text/csv"),
        ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog", "application/pdf"),
        ("logo.png", b"\x89PNG\r\n\x1a\n", "image/png"),
    ]
    path = write(tmp_path, "m.eml", make_eml("Hello team,\nfigures attached.", attachments))
    items = read_all(path)
    source = str(path.resolve())
    message, docx_doc, row1, row2, broken, logo = items
    assert isinstance(message, RawDocument) and message.source == source
    assert (message.body, message.title, message.content_type) == (
        "Hello team,\nfigures attached.",
        "Quarterly figures",
        "eml",
    )
    assert message.published == datetime(2024, 2, 3, 10, 0, tzinfo=UTC)
    assert message.metadata == {
        "from": "Gil Sender <gil@example.com>",
        "to": "team@example.com",
        "subject": "Quarterly figures",
        "date": "Sat, 03 Feb 2024 10:00:00 +0000",
        "message_id": "<abc123@example.com>",
        "attachments": ["report.docx", "rows.csv", "broken.pdf", "logo.png"],
    }
    assert isinstance(docx_doc, RawDocument) and docx_doc.source == f"{source}#attachment/1/report.docx"
    assert docx_doc.content_type == "docx" and "Inside the attachment." in docx_doc.body
    assert docx_doc.metadata["attachment_of"] == source and docx_doc.metadata["filename"] == "report.docx"
    assert [(r.source, r.body) for r in (row1, row2)] == [("r1", "first row"), ("r2", "second row")]
    assert all(r.metadata["attachment_of"] == source for r in (row1, row2))
    assert isinstance(broken, Rejected) and broken.source == f"{source}#attachment/3/broken.pdf"
    assert broken.reason == Reason.CORRUPT_PDF and "\n" not in broken.detail
    # an attached image is read (by OCR) as an image file is: this one is cut short
    assert isinstance(logo, Rejected) and logo.source == f"{source}#attachment/4/logo.png"
    assert logo.reason == Reason.CORRUPT_FILE


def test_eml_html_only_body_becomes_text(tmp_path):
    message = EmailMessage()
    message["Subject"] = "Newsletter"
    message.set_content(
        "<html><body><h1>News</h1><p>Moss <b>wins</b> prize.</p><script>x()</script></body></html>", "html"
    )
    doc = only_doc(write(tmp_path, "n.eml", message.as_bytes()))
    assert doc.body == "News\n\nMoss wins prize."
    assert doc.published is None and doc.metadata == {"subject": "Newsletter"}


def test_eml_attached_messages_are_read_to_a_bounded_depth(tmp_path):
    inner = make_eml("level 5", [], subject="m5")
    for level in range(4, 0, -1):
        outer = EmailMessage()
        outer["Subject"] = f"m{level}"
        outer.set_content(f"level {level}")
        if level % 2:  # attached as clients do: a 7bit message/rfc822 part
            outer.add_attachment(email.message_from_bytes(inner, policy=default), filename=f"m{level + 1}.eml")
        else:  # base64, which RFC 2046 forbids for message/rfc822 and some clients write all the same
            outer.add_attachment(inner, maintype="message", subtype="rfc822", filename=f"m{level + 1}.eml")
        inner = outer.as_bytes()
    items = read_all(write(tmp_path, "m1.eml", inner))
    assert [i.body for i in items[:-1]] == ["level 1", "level 2", "level 3", "level 4"]
    assert items[1].metadata["attachment_of"] == items[0].source and items[1].title == "m2"
    assert items[2].metadata["attachment_of"] == items[1].source
    deepest = items[-1]
    assert isinstance(deepest, Rejected) and deepest.reason == Reason.TOO_DEEP
    assert deepest.source.endswith("#attachment/1/m5.eml") and f"{MAX_DEPTH} levels" in deepest.detail


def test_eml_with_an_empty_body_still_yields_its_attachments(tmp_path):
    message = EmailMessage()
    message["Subject"] = "see attachment"
    message.add_attachment(b"just a text file", maintype="text", subtype="plain", filename="note.txt")
    (doc,) = read_all(write(tmp_path, "e.eml", message.as_bytes()))
    assert isinstance(doc, RawDocument) and doc.body == "just a text file" and doc.source.endswith("/1/note.txt")


# --- RTF ---


def test_rtf_text(tmp_path):
    data = make_rtf(["Hello {bold} world.", "Second paragraph."]).replace(b"world", b"w\\'f6rld \\u8364?")
    doc = only_doc(write(tmp_path, "r.rtf", data))
    assert doc.body.split() == ["Hello", "{bold}", "wörld", "€.", "Second", "paragraph."]
    assert "Hidden info title" not in doc.body and doc.content_type == "rtf"


def test_truncated_rtf_and_eml_keep_what_they_hold(tmp_path):
    # Neither format has a structure that truncation breaks: the text up to the cut is still the text.
    rtf = make_rtf(["Alpha beta gamma.", "Delta epsilon."])
    assert "Alpha beta" in only_doc(write(tmp_path, "t.rtf", rtf[: len(rtf) - 20])).body
    eml = make_eml("Alpha beta gamma delta.", [])
    assert "Alpha beta" in only_doc(write(tmp_path, "t.eml", eml[:-8])).body


# --- corrupt input: one Rejected, corrupt_file, one line ---

ARCHIVES = [".docx", ".pptx", ".xlsx", ".xlsm", ".ods", ".odt", ".epub"]


def _valid(suffix: str, tmp_path: Path) -> bytes:
    if suffix == ".docx":
        return make_docx("Heading", ["Paragraph."], TABLE)
    if suffix == ".pptx":
        return make_pptx([("Title", ["Bullet"], "Notes")])
    if suffix in (".xlsx", ".xlsm"):
        return make_xlsx(SHEETS)
    if suffix == ".ods":
        return make_ods({"S": [["a", 1]]})
    if suffix == ".odt":
        return make_odt("Heading", ["Paragraph."], TABLE, ["item"])
    return make_epub([("One", ["Text."])], tmp_path / "valid.epub")


def _replace_part(data: bytes, name: str, new: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        parts = {info.filename: archive.read(info) for info in archive.infolist()}
    return make_zip({**parts, name: new})


_MAIN_PART = {
    ".docx": "word/document.xml",
    ".pptx": "ppt/presentation.xml",
    ".xlsx": "xl/workbook.xml",
    ".xlsm": "xl/workbook.xml",
    ".ods": "content.xml",
    ".odt": "content.xml",
    ".epub": "META-INF/container.xml",
}


@pytest.mark.parametrize("suffix", ARCHIVES)
@pytest.mark.parametrize("damage", ["truncated", "random", "no_parts", "bad_xml", "main_part_gone"])
def test_corrupt_archives_are_one_corrupt_file_rejection(tmp_path, suffix, damage):
    valid = _valid(suffix, tmp_path)
    if damage == "truncated":
        data = valid[: len(valid) // 2]
    elif damage == "random":
        data = random.Random(7).randbytes(3000)
    elif damage == "no_parts":
        data = make_zip({"hello.txt": b"not an office file"})
    elif damage == "bad_xml":
        data = _replace_part(valid, _MAIN_PART[suffix], b"<?xml version='1.0'?><unclosed")
    else:
        with zipfile.ZipFile(io.BytesIO(valid)) as archive:
            kept = {i.filename: archive.read(i) for i in archive.infolist() if i.filename != _MAIN_PART[suffix]}
        data = make_zip(kept)
    items = read_all(write(tmp_path, f"bad{suffix}", data))  # raising here is the failure
    assert len(items) == 1, items
    (item,) = items
    assert isinstance(item, Rejected) and item.reason == Reason.CORRUPT_FILE, item
    assert item.stage == "read" and item.detail and "\n" not in item.detail and len(item.detail) <= 300


@pytest.mark.parametrize("suffix", [".rtf", ".eml"])
def test_random_bytes_as_rtf_or_eml_are_corrupt(tmp_path, suffix):
    (item,) = read_all(write(tmp_path, f"x{suffix}", random.Random(3).randbytes(2000).replace(b":", b";")))
    assert isinstance(item, Rejected) and item.reason == Reason.CORRUPT_FILE and "\n" not in item.detail


def test_a_zip_bomb_is_too_large_before_it_is_parsed(tmp_path):
    data = _replace_part(make_docx("Heading", ["Paragraph."], TABLE), "word/padding.bin", b"\0" * 2_000_000)
    (item,) = read_all(write(tmp_path, "bomb.docx", data), max_bytes=100_000)
    assert isinstance(item, Rejected) and item.reason == Reason.TOO_LARGE and "unpacks to" in item.detail


def test_empty_documents_are_empty_not_corrupt(tmp_path):
    document = docx.Document()
    out = io.BytesIO()
    document.save(out)
    (item,) = read_all(write(tmp_path, "e.docx", out.getvalue()))
    assert isinstance(item, Rejected) and item.reason == Reason.EMPTY


def test_new_suffixes_are_supported_and_metadata_is_json(tmp_path):
    assert {".docx", ".pptx", ".xlsx", ".xlsm", ".ods", ".odt", ".epub", ".eml", ".rtf"} <= SUPPORTED_SUFFIXES
    doc = only_doc(write(tmp_path, "b.xlsx", make_xlsx(SHEETS)))
    json.dumps(doc.metadata)
    path = write(tmp_path, "p.eml", make_eml("body", [("a.pdf", make_pdf(["Page text"]), "application/pdf")]))
    _, pdf_doc = read_all(path)
    assert pdf_doc.content_type == "pdf" and pdf_doc.body == "Page text" and pdf_doc.metadata["pages"] == 1


def test_an_ole_file_under_an_office_suffix_says_what_it_likely_is(tmp_path):
    data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(2000)
    (item,) = read_all(write(tmp_path, "locked.xlsx", data))
    assert isinstance(item, Rejected) and item.reason == Reason.CORRUPT_FILE and "legacy binary" in item.detail


@pytest.mark.parametrize("suffix", [*ARCHIVES, ".rtf", ".eml", ".xls", ".tgz"])
def test_damaged_files_never_raise_nor_fail_unforeseen(tmp_path, suffix):
    """Bytes flipped anywhere (zip headers, deflate streams) and XML parts cut or mangled inside a sound zip."""
    rng = random.Random(suffix)
    flat = (".rtf", ".eml", ".xls", ".tgz")  # no zip of XML parts inside
    if suffix == ".rtf":
        valid = make_rtf(["Hello world.", "Second paragraph."])
    elif suffix == ".eml":
        valid = make_eml("Body text.", [("r.docx", make_docx("H", ["P."], TABLE), "application/octet-stream")])
    elif suffix == ".xls":
        valid = make_xls({"S": [["id", "text", "when"], ["a", "First row.", datetime(2024, 1, 2)], ["b", "Two.", 3]]})
    elif suffix == ".tgz":
        valid = make_tar(
            {"a.txt": b"Hello world.", "d/b.docx": make_docx("H", ["P."], TABLE), "r.csv": b"id,text\n1,x"}
        )
    else:
        valid = _valid(suffix, tmp_path)
    for _ in range(40):
        if suffix in flat or rng.random() < 0.5:
            data = bytearray(valid)
            for _ in range(rng.randint(1, 5)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            with zipfile.ZipFile(io.BytesIO(valid)) as archive:
                parts = {info.filename: archive.read(info) for info in archive.infolist()}
            name = rng.choice(sorted(n for n in parts if n.endswith((".xml", ".xhtml", ".opf", ".rels"))))
            xml = bytearray(parts[name][: rng.randrange(len(parts[name]) + 1)] if rng.random() < 0.5 else parts[name])
            for _ in range(rng.randint(1, 3) if xml else 0):
                xml[rng.randrange(len(xml))] = rng.choice(b"<>/\"'=&x0 ")
            data = bytearray(make_zip({**parts, name: bytes(xml)}))
        for item in read_all(write(tmp_path, f"d{suffix}", bytes(data))):  # raising here is the failure
            if isinstance(item, Rejected):
                assert item.reason != Reason.READER_ERROR, item  # every foreseeable failure has its own reason
                assert item.detail and "\n" not in item.detail
            else:
                assert item.body.strip()
