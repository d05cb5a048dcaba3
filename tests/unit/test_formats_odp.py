"""OpenDocument presentations (.odp) and templates (.otp, .ott, .ots), written by odfpy: slides in order with their
frames' text, tables a row per line, and speaker notes."""

from __future__ import annotations

import io

import pytest
from odf import dc, draw, presentation
from odf.opendocument import OpenDocumentPresentation
from odf.text import P

from pipeline.errors import Reason
from pipeline.formats import SUPPORTED_SUFFIXES
from tests.unit.test_formats_office import (
    TABLE,
    make_ods,
    make_odt,
    odf_table,
    only_doc,
    read_all,
    write,
)


def make_odp(slides: list[tuple[str, list[str], str]], table: list[list[str]] | None = None) -> bytes:
    deck = OpenDocumentPresentation()
    deck.meta.addElement(dc.Title(text="Harbour review"))
    deck.meta.addElement(dc.Creator(text="Io Speaker"))
    for n, (title, lines, notes) in enumerate(slides, 1):
        page = draw.Page(name=f"page{n}", masterpagename="")
        for text in [title, *lines]:
            frame = draw.Frame(width="20cm", height="2cm", x="1cm", y="1cm")
            box = draw.TextBox()
            box.addElement(P(text=text))
            frame.addElement(box)
            page.addElement(frame)
        if table is not None and n == len(slides):
            frame = draw.Frame(width="20cm", height="5cm", x="1cm", y="8cm")
            frame.addElement(odf_table(table))
            page.addElement(frame)
        speaker = presentation.Notes()
        frame = draw.Frame(width="20cm", height="5cm", x="1cm", y="1cm")
        box = draw.TextBox()
        box.addElement(P(text=notes))
        frame.addElement(box)
        speaker.addElement(frame)
        page.addElement(speaker)
        deck.presentation.addElement(page)
    out = io.BytesIO()
    deck.write(out)
    return out.getvalue()


SLIDES = [("Welcome", ["Agenda: cranes"], "Speak slowly"), ("Numbers", ["Key figures"], "Ask questions")]


@pytest.mark.parametrize("suffix", [".odp", ".otp"])
def test_slides_frames_tables_and_notes_in_order(tmp_path, suffix):
    doc = only_doc(write(tmp_path, f"deck{suffix}", make_odp(SLIDES, TABLE)))
    first, second = doc.body.split("\n\n")
    assert first.splitlines() == ["Welcome", "Agenda: cranes", "Speak slowly"]
    assert second.splitlines() == [
        "Numbers",
        "Key figures",
        "Region | Units | Revenue",
        "North | 12 | 3400",
        "Ask questions",
    ]
    assert (doc.content_type, doc.title, doc.metadata) == (
        "odp",
        "Harbour review",
        {"author": "Io Speaker", "slides": 2},
    )


def test_text_and_spreadsheet_templates_read_as_their_documents(tmp_path):
    text = only_doc(write(tmp_path, "memo.ott", make_odt("Heading", ["Paragraph."], TABLE, ["item"])))
    sheet = only_doc(write(tmp_path, "budget.ots", make_ods({"S": [["a", 1]]})))
    assert (text.content_type, sheet.content_type) == ("odt", "ods")
    assert {".odp", ".otp", ".ott", ".ots"} <= SUPPORTED_SUFFIXES


def test_a_deck_without_text_is_empty_and_another_kind_is_corrupt(tmp_path):
    (empty,) = read_all(write(tmp_path, "blank.odp", make_odp([("", [], "")])))
    assert empty.reason == Reason.EMPTY
    (other,) = read_all(write(tmp_path, "sheet.odp", make_ods({"S": [["a", 1]]})))
    assert other.reason == Reason.CORRUPT_FILE and "office:presentation" in other.detail
