"""Word documents as they read with tracked changes accepted: what python-docx's own text leaves out is read (an
insertion, a content control, a field's result, a text box, a merged table, footnotes), what is not the document's
text is not (deleted, moved-away and hidden text, placeholders, field codes); templates, macro-enabled files and
slide shows are read as the documents they are.

The packages are written here from their XML, as Word writes it, so each construct is exactly the one tested.
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime

import pytest

from pipeline.errors import Reason
from pipeline.formats import SUPPORTED_SUFFIXES
from pipeline.types import RawDocument, Rejected
from tests.unit.test_formats_office import make_pptx, make_xlsx, only_doc, read_all, write

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
NS = (
    f'xmlns:w="{W}" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
    'xmlns:v="urn:schemas-microsoft-com:vml" '
    'xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" '
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
    'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
)
DOCX_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
DOCM_MAIN = "application/vnd.ms-word.document.macroEnabled.main+xml"
DOTX_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_CORE = (
    '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><dc:title>Lease</dc:title><dc:creator>Ann</dc:creator>'
    '<dcterms:created xsi:type="dcterms:W3CDTF">2024-02-03T04:05:06Z</dcterms:created></cp:coreProperties>'
)


def p(*runs: str) -> str:
    return "<w:p>" + "".join(runs) + "</w:p>"


def r(text: str, hidden: bool = False) -> str:
    props = "<w:rPr><w:vanish/></w:rPr>" if hidden else ""
    return f'<w:r>{props}<w:t xml:space="preserve">{text}</w:t></w:r>'


def make_word(
    body: str,
    footnotes: str | None = None,
    endnotes: str | None = None,
    main_type: str = DOCX_MAIN,
    core: bool = True,
    chunks: tuple[tuple[str, str, bytes], ...] = (),
) -> bytes:
    """A Word package from its body XML: [Content_Types].xml, the package and document relationships, the notes,
    and imported chunks (file name, content type, bytes), related as rIdChunk1, rIdChunk2, ..."""
    overrides = [("/word/document.xml", main_type)]
    rels = []
    parts: dict[str, str | bytes] = {}
    for n, (name, kind, data) in enumerate(chunks, 1):
        parts[f"word/{name}"] = data
        overrides.append((f"/word/{name}", kind))
        rels.append(f'<Relationship Id="rIdChunk{n}" Type="{_REL}/aFChunk" Target="{name}"/>')
    parts["word/document.xml"] = f"<w:document {NS}><w:body>{body}<w:sectPr/></w:body></w:document>"
    for name, notes in (("footnotes", footnotes), ("endnotes", endnotes)):
        if notes is not None:
            parts[f"word/{name}.xml"] = f"<w:{name} {NS}>{notes}</w:{name}>"
            overrides.append(
                (f"/word/{name}.xml", f"application/vnd.openxmlformats-officedocument.wordprocessingml.{name}+xml")
            )
            rels.append(f'<Relationship Id="rId{len(rels) + 1}" Type="{_REL}/{name}" Target="{name}.xml"/>')
    package_rels = [f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="word/document.xml"/>']
    if core:
        parts["docProps/core.xml"] = _CORE
        overrides.append(("/docProps/core.xml", "application/vnd.openxmlformats-package.core-properties+xml"))
        package_rels.append(
            '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/'
            'core-properties" Target="docProps/core.xml"/>'
        )
    types = "".join(f'<Override PartName="{name}" ContentType="{kind}"/>' for name, kind in overrides)
    parts["[Content_Types].xml"] = (
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        f'<Default Extension="xml" ContentType="application/xml"/>{types}</Types>'
    )
    relationships = (
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{}</Relationships>'
    )
    parts["_rels/.rels"] = relationships.format("".join(package_rels))
    parts["word/_rels/document.xml.rels"] = relationships.format("".join(rels))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, xml in parts.items():
            archive.writestr(name, xml)
    return out.getvalue()


def body_of(tmp_path, body: str, **kwargs) -> str:
    return only_doc(write(tmp_path, "w.docx", make_word(body, **kwargs))).body


def test_tracked_changes_read_as_accepted(tmp_path):
    body = p(
        r("The rent is "),
        '<w:ins w:id="1" w:author="A"><w:r><w:t>900</w:t></w:r></w:ins>',
        '<w:del w:id="2" w:author="A"><w:r><w:delText>800</w:delText></w:r></w:del>',
        r(" euros"),
        '<w:moveFrom w:id="3" w:author="A"><w:r><w:t> MOVEDAWAY</w:t></w:r></w:moveFrom>',
        r(" a month."),
        '<w:moveTo w:id="4" w:author="A"><w:r><w:t> Moved here.</w:t></w:r></w:moveTo>',
    )
    assert body_of(tmp_path, body) == "The rent is 900 euros a month. Moved here."


def test_content_controls_fields_smart_tags_and_links_are_read_but_not_placeholders_codes_or_hidden_text(tmp_path):
    body = "".join(
        [
            '<w:sdt><w:sdtPr><w:alias w:val="Cover"/></w:sdtPr><w:sdtContent>'
            + p(r("Annual report 2024"))
            + "</w:sdtContent></w:sdt>",
            p(
                r("Tenant: "),
                "<w:sdt><w:sdtPr/><w:sdtContent>" + r("Bob Smith") + "</w:sdtContent></w:sdt>",
                r(", landlord: "),
                "<w:sdt><w:sdtPr><w:showingPlcHdr/></w:sdtPr><w:sdtContent>"
                + r("Click or tap here to enter text.")
                + "</w:sdtContent></w:sdt>",
            ),
            p(
                '<w:r><w:fldChar w:fldCharType="begin"/></w:r>',
                '<w:r><w:instrText> DATE \\@ "d MMMM" </w:instrText></w:r>',
                '<w:r><w:fldChar w:fldCharType="separate"/></w:r>',
                r("3 February"),
                '<w:r><w:fldChar w:fldCharType="end"/></w:r>',
                '<w:fldSimple w:instr="PAGE">' + r(" page 7") + "</w:fldSimple>",
                '<w:smartTag w:uri="u" w:element="place">' + r(" in Paris") + "</w:smartTag>",
                '<w:hyperlink r:id="rId9">' + r(" (site)") + "</w:hyperlink>",
                r(" SECRETNOTE", hidden=True),
                r("\u00a0end"),
            ),
        ]
    )
    assert body_of(tmp_path, body).split("\n\n") == [
        "Annual report 2024",
        "Tenant: Bob Smith, landlord: ",
        "3 February page 7 in Paris (site)\u00a0end",
    ]


def test_a_text_box_is_read_once_after_its_paragraph(tmp_path):
    box = "<w:txbxContent>" + p(r("Boxed fact one.")) + p(r("Boxed fact two.")) + "</w:txbxContent>"
    drawing = (
        '<w:r><mc:AlternateContent><mc:Choice Requires="wps"><w:drawing><wp:anchor><a:graphic><a:graphicData>'
        f"<wps:wsp><wps:txbx>{box}</wps:txbx></wps:wsp></a:graphicData></a:graphic></wp:anchor></w:drawing>"
        f"</mc:Choice><mc:Fallback><w:pict><v:shape><v:textbox>{box}</v:textbox></v:shape></w:pict></mc:Fallback>"
        "</mc:AlternateContent></w:r>"
    )
    body = p(r("Anchor paragraph."), drawing) + p(r("Next paragraph."))
    assert body_of(tmp_path, body).split("\n\n") == [
        "Anchor paragraph.",
        "Boxed fact one.",
        "Boxed fact two.",
        "Next paragraph.",
    ]


def cell(text: str, props: str = "") -> str:
    return f"<w:tc><w:tcPr>{props}</w:tcPr>{p(r(text)) if text else p()}</w:tc>"


def test_tables_keep_columns_through_merges_and_read_nested_tables(tmp_path):
    nested = "<w:tbl><w:tr>" + cell("inner a") + cell("inner b") + "</w:tr></w:tbl>"
    table = (
        "<w:tbl>"
        + "<w:tr>" + cell("Region", '<w:vMerge w:val="restart"/>')
        + cell("Q1 and Q2", '<w:gridSpan w:val="2"/>') + "</w:tr>"
        + "<w:tr>" + cell("", "<w:vMerge/>") + cell("10") + cell("20") + "</w:tr>"
        + '<w:tr><w:trPr><w:gridBefore w:val="1"/></w:trPr>' + cell("30") + cell("40") + "</w:tr>"
        + "<w:tr>" + f"<w:tc><w:tcPr/>{p(r('outer'))}{nested}</w:tc>" + cell("") + cell("") + "</w:tr>"
        + "<w:tr>" + cell("") + "</w:tr>"
        + "</w:tbl>"
    )  # fmt: skip
    assert body_of(tmp_path, p(r("Before.")) + table).split("\n\n") == [
        "Before.",
        "Region | Q1 and Q2\nRegion | 10 | 20\n | 30 | 40\nouter inner a | inner b",
    ]


def test_footnotes_and_endnotes_follow_the_body_without_separators(tmp_path):
    separators = (
        '<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote>'
        '<w:footnote w:type="continuationSeparator" w:id="0"><w:p><w:r><w:t>----</w:t></w:r></w:p></w:footnote>'
    )
    footnotes = separators + '<w:footnote w:id="1">' + p(r("Source: the 2023 census.")) + "</w:footnote>"
    endnotes = '<w:endnote w:id="1">' + p(r("See the appendix.")) + p(r("Second line.")) + "</w:endnote>"
    body = p(r("Population grew."), '<w:r><w:footnoteReference w:id="1"/></w:r>')
    assert body_of(tmp_path, body, footnotes=footnotes, endnotes=endnotes).split("\n\n") == [
        "Population grew.",
        "Source: the 2023 census.",
        "See the appendix.\nSecond line.",
    ]


@pytest.mark.parametrize(("suffix", "main_type"), [(".docm", DOCM_MAIN), (".dotx", DOTX_MAIN), (".docx", DOCX_MAIN)])
def test_macro_enabled_documents_and_templates_are_read_with_their_properties(tmp_path, suffix, main_type):
    doc = only_doc(write(tmp_path, f"lease{suffix}", make_word(p(r("Clause one.")), main_type=main_type)))
    assert (doc.body, doc.content_type, doc.title) == ("Clause one.", "docx", "Lease")
    assert doc.published == datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC) and doc.metadata == {"author": "Ann"}


def test_a_package_without_properties_has_none_made_up(tmp_path):
    doc = only_doc(write(tmp_path, "bare.docx", make_word(p(r("Only text.")), core=False)))
    assert (doc.title, doc.published, doc.metadata) == (None, None, {})


def test_another_office_file_named_docx_is_corrupt_not_empty(tmp_path):
    (item,) = read_all(write(tmp_path, "deck.docx", make_pptx([("Title", ["Bullet"], "Notes")])))
    assert isinstance(item, Rejected) and item.reason == Reason.CORRUPT_FILE and "Word document body" in item.detail
    (item,) = read_all(write(tmp_path, "doc.pptx", make_word(p(r("Text.")))))
    assert isinstance(item, Rejected) and item.reason == Reason.CORRUPT_FILE, item


def _with_main_type(data: bytes, old: str, new: str) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        parts = {info.filename: archive.read(info) for info in archive.infolist()}
    parts["[Content_Types].xml"] = parts["[Content_Types].xml"].replace(old.encode(), new.encode())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return out.getvalue()


PPTX_MAIN = "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"


@pytest.mark.parametrize(
    ("suffix", "main_type"),
    [
        (".ppsx", "application/vnd.openxmlformats-officedocument.presentationml.slideshow.main+xml"),
        (".potx", "application/vnd.openxmlformats-officedocument.presentationml.template.main+xml"),
        (".pptm", "application/vnd.ms-powerpoint.presentation.macroEnabled.main+xml"),
    ],
)
def test_slide_shows_templates_and_macro_enabled_decks_are_read(tmp_path, suffix, main_type):
    deck = _with_main_type(make_pptx([("Welcome", ["Agenda"], "Speak slowly")]), PPTX_MAIN, main_type)
    doc = only_doc(write(tmp_path, f"deck{suffix}", deck))
    assert doc.body.splitlines() == ["Welcome", "Agenda", "Speak slowly"] and doc.title == "Quarterly deck"


def test_workbook_templates_are_read_and_every_office_flavour_is_supported(tmp_path):
    book = _with_main_type(
        make_xlsx({"S": [["text", "n"], ["hello", 1]]}),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.template.main+xml",
    )
    items = read_all(write(tmp_path, "book.xltx", book))
    assert [item.body for item in items if isinstance(item, RawDocument)] == ["hello"], items
    flavours = {".docm", ".dotx", ".dotm", ".pptm", ".ppsx", ".ppsm", ".potx", ".potm", ".xltx", ".xltm"}
    assert flavours <= SUPPORTED_SUFFIXES


def _without_core(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        parts = {
            info.filename: archive.read(info) for info in archive.infolist() if info.filename != "docProps/core.xml"
        }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for part, data in parts.items():
            archive.writestr(part, data)
    return out.getvalue()


@pytest.mark.parametrize("suffix", [".xlsx", ".pptx"])
def test_a_workbook_or_deck_without_properties_gets_no_made_up_author_or_date(tmp_path, suffix):
    # openpyxl would say author "openpyxl", created now; python-pptx "PowerPoint Presentation"
    made = make_xlsx({"S": [["a", "b"], ["x", 1]]}) if suffix == ".xlsx" else make_pptx([("T", ["B"], "N")])
    doc = only_doc(write(tmp_path, f"bare{suffix}", _without_core(made)))
    assert (doc.title, doc.published) == (None, None)
    assert not {"author", "subject", "keywords"} & set(doc.metadata), doc.metadata


def test_the_table_of_contents_and_ruby_guides_are_not_read_again(tmp_path):
    toc = (
        '<w:sdt><w:sdtPr><w:docPartObj><w:docPartGallery w:val="Table of Contents"/></w:docPartObj></w:sdtPr>'
        "<w:sdtContent>" + p(r("Contents")) + p(r("Introduction\t1")) + "</w:sdtContent></w:sdt>"
    )
    guide, base = "<w:rt><w:r><w:t>とうきょう</w:t></w:r></w:rt>", "<w:rubyBase><w:r><w:t>東京</w:t></w:r></w:rubyBase>"
    ruby = f"<w:r><w:ruby>{guide}{base}</w:ruby></w:r>"
    body = toc + p(r("Introduction")) + p(ruby, r("に住む。"))
    assert body_of(tmp_path, body).split("\n\n") == ["Introduction", "東京に住む。"]


def test_imported_chunks_are_read_in_place(tmp_path):
    inner = make_word(p(r("Inner document text.")))
    chunks = (
        ("chunk1.html", "text/html", b"<html><body><h1>Imported</h1><p>HTML chunk text.</p></body></html>"),
        ("chunk2.txt", "text/plain", b"Plain chunk text."),
        ("chunk3.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", inner),
        ("chunk4.bin", "application/octet-stream", b"\x00\x01"),
        ("chunk5.html", "text/html", b"\x00\x00\x00binary"),
    )
    body = p(r("Before.")) + "".join(f'<w:altChunk r:id="rIdChunk{n}"/>' for n in range(1, 6)) + p(r("After."))
    assert body_of(tmp_path, body, chunks=chunks).split("\n\n") == [
        "Before.",
        "Imported",
        "HTML chunk text.",
        "Plain chunk text.",
        "Inner document text.",
        "After.",
    ]
