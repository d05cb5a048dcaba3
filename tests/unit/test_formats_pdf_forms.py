"""PDF document information (author, subject, keywords, creation date) and filled forms: a form's values live in its
fields' widgets, not in the text layer, and are read onto the page that shows them."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from pypdf import PdfReader, PdfWriter
from pypdf.generic import ArrayObject, DictionaryObject, FloatObject, NameObject, NumberObject, TextStringObject

from pipeline.errors import Reason
from pipeline.formats import read_path
from pipeline.types import RawDocument, Rejected
from tests.unit.test_formats import make_pdf


def name(value: str) -> NameObject:
    return NameObject(value)


def widget(writer: PdfWriter, page: int, fields: dict, parent=None):
    annotation = DictionaryObject(
        {
            name("/Type"): name("/Annot"),
            name("/Subtype"): name("/Widget"),
            name("/Rect"): ArrayObject([FloatObject(72), FloatObject(600), FloatObject(300), FloatObject(620)]),
            **{name(k): v for k, v in fields.items()},
        }
    )
    if parent is not None:
        annotation[name("/Parent")] = parent
    ref = writer._add_object(annotation)
    writer.pages[page].setdefault(name("/Annots"), ArrayObject()).append(ref)
    return ref


def form_pdf(info: dict | None = None) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["Application form", "Page two"]))))
    text = TextStringObject
    fields = [
        widget(
            writer,
            0,
            {"/FT": name("/Tx"), "/T": text("applicant"), "/TU": text("Full name"), "/V": text("Ada  Lovelace")},
        ),
        widget(writer, 0, {"/FT": name("/Btn"), "/T": text("agree"), "/V": name("/Yes")}),
        widget(writer, 0, {"/FT": name("/Btn"), "/T": text("newsletter"), "/V": name("/Off")}),
        widget(writer, 0, {"/FT": name("/Tx"), "/T": text("empty"), "/V": text("")}),
        widget(writer, 1, {"/FT": name("/Ch"), "/T": text("topics"), "/V": ArrayObject([text("rates"), text("fx")])}),
    ]
    # a radio group: the field holds the name and value, its two kids are the widgets on the page
    group = writer._add_object(
        DictionaryObject(
            {
                name("/FT"): name("/Btn"),
                name("/T"): text("plan"),
                name("/V"): name("/Gold"),
                name("/Ff"): NumberObject(49152),
            }
        )
    )
    kids = [widget(writer, 1, {"/AS": name("/Gold")}, group), widget(writer, 1, {"/AS": name("/Off")}, group)]
    group.get_object()[name("/Kids")] = ArrayObject(kids)
    writer._root_object[name("/AcroForm")] = DictionaryObject({name("/Fields"): ArrayObject([*fields, group])})
    if info is not None:
        writer.add_metadata(info)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def read_one(tmp_path, data: bytes) -> RawDocument | Rejected:
    path = tmp_path / "form.pdf"
    path.write_bytes(data)
    (item,) = read_path(path, 10_000_000)
    return item


def test_a_filled_forms_values_are_read_onto_their_pages(tmp_path):
    doc = read_one(tmp_path, form_pdf())
    assert isinstance(doc, RawDocument), doc
    first, second = doc.body.split("\n\f\n")
    assert first.splitlines() == ["Application form", "Full name: Ada Lovelace", "agree: Yes"]
    assert second.splitlines() == ["Page two", "topics: rates, fx", "plan: Gold"]
    assert doc.metadata["form_fields"] == 4


def test_document_information_gives_author_subject_keywords_and_date(tmp_path):
    info = {
        "/Title": "Loan application",
        "/Author": "Bank  Ltd",
        "/Subject": "Loans",
        "/Keywords": "loan, form",
        "/CreationDate": "D:20240102030405+01'00'",
    }
    doc = read_one(tmp_path, form_pdf(info))
    assert doc.title == "Loan application"
    assert doc.published == datetime(2024, 1, 2, 2, 4, 5, tzinfo=UTC)
    assert {k: doc.metadata[k] for k in ("author", "subject", "keywords")} == {
        "author": "Bank Ltd",
        "subject": "Loans",
        "keywords": "loan, form",
    }


def test_a_creation_date_that_does_not_parse_is_no_date_not_a_corrupt_pdf(tmp_path):
    doc = read_one(tmp_path, form_pdf({"/CreationDate": "yesterday-ish", "/Author": "Ann"}))
    assert isinstance(doc, RawDocument) and doc.published is None and doc.metadata["author"] == "Ann"


def test_a_field_whose_parents_loop_loses_its_line_not_the_pdf(tmp_path):
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["Text layer"]))))
    first = widget(writer, 0, {"/T": TextStringObject("a")})
    second = writer._add_object(
        DictionaryObject({NameObject("/T"): TextStringObject("b"), NameObject("/Parent"): first})
    )
    first.get_object()[NameObject("/Parent")] = second
    out = io.BytesIO()
    writer.write(out)
    doc = read_one(tmp_path, out.getvalue())
    assert isinstance(doc, RawDocument) and doc.body == "Text layer", doc


def test_a_pdf_of_a_form_with_no_text_layer_is_read_from_its_fields(tmp_path):
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf([""]))))
    widget(writer, 0, {"/T": TextStringObject("city"), "/V": TextStringObject("Lyon")})
    out = io.BytesIO()
    writer.write(out)
    doc = read_one(tmp_path, out.getvalue())
    assert isinstance(doc, RawDocument) and doc.body == "city: Lyon"
    blank = read_one(tmp_path, make_pdf([""]))
    assert isinstance(blank, Rejected) and blank.reason == Reason.EMPTY
