"""Word, PowerPoint, Excel (Office Open XML) and RTF files, each through its usual library, to text in reading order."""

from __future__ import annotations

import contextlib
import io
import zipfile
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, time
from functools import partial

import docx
import docx.exceptions
import docx.opc.exceptions
import lxml.etree
import openpyxl
import openpyxl.utils.exceptions
import pptx
import pptx.exc
import pptx.package
import xlrd
import xlrd.compdoc
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.package import OpcPackage
from docx.opc.part import Part
from openpyxl.worksheet._read_only import ReadOnlyWorksheet
from pptx.parts.presentation import PresentationPart
from pptx.shapes.group import GroupShape
from striprtf.striprtf import rtf_to_text

from pipeline.errors import InputError, Reason
from pipeline.formats import wordml
from pipeline.formats.common import (
    MALFORMED,
    OLE_MAGIC,
    as_utc,
    corrupt,
    decode,
    markup_to_text,
    one_line,
    parse_xml,
    properties,
    table_row,
    text_or_none,
)
from pipeline.formats.records import column_names, guarded_record, has_text_column, read_csv
from pipeline.types import RawDocument, Rejected

_OOXML_ERRORS = (
    *MALFORMED,
    docx.exceptions.PythonDocxError,  # InvalidXmlError: a required element or attribute is missing
    docx.opc.exceptions.OpcError,
    pptx.exc.PythonPptxError,
    openpyxl.utils.exceptions.InvalidFileException,
    OSError,  # openpyxl: "File contains no valid workbook part"; the bytes are in memory, so no real I/O fails
)
_WORD_BODY = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}body"
_CORE_PART = "docProps/core.xml"
_APP_PART = "docProps/app.xml"
_MAX_CHUNK_DEPTH = 3  # a Word document imported into one imported into one ...
_WORD_TYPES = ("application/vnd.openxmlformats-officedocument.wordprocessingml", "application/vnd.ms-word")
_DC = "{http://purl.org/dc/elements/1.1/}"
_CP = "{http://schemas.openxmlformats.org/package/2006/metadata/core-properties}"
_DCTERMS = "{http://purl.org/dc/terms/}"
# PowerPoint's diagrams (SmartArt) and DrawingML text; a chart's points read per series
_DGM = "{http://schemas.openxmlformats.org/drawingml/2006/diagram}"
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_MAX_CHART_POINTS = 100
_APP_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/extended-properties}"


def _body(kind: str, blocks: Iterable[str], separator: str = "\n") -> str:
    body = separator.join(block for block in blocks if block.strip())
    if not body.strip():
        raise InputError(Reason.EMPTY, f"{kind} holds no text")
    return body


def read_docx(data: bytes, source: str) -> RawDocument:
    """A Word document (.docx, and .docm, .dotx, .dotm, which python-docx's Document refuses) as it reads with its
    tracked changes accepted: body, text boxes and tables in document order, a blank line apart (so a heading ends a
    sentence for the chunker), then footnotes and endnotes (`wordml` says what is read and what is not)."""
    try:
        blocks = _word_blocks(data, 0)
        title, created, described = _core_properties(data, pages=True)
        metadata = properties(**described)
    except _OOXML_ERRORS as exc:
        raise corrupt("DOCX", exc) from None
    return RawDocument(
        source=source,
        body=_body("DOCX", blocks, "\n\n"),
        content_type="docx",
        title=text_or_none(title),
        published=as_utc(created),
        metadata=metadata,
    )


def _word_blocks(data: bytes, depth: int) -> list[str]:
    package = OpcPackage.open(io.BytesIO(data))
    main = package.main_document_part
    body = _part_xml(main).find(_WORD_BODY)
    if body is None:
        raise InputError(Reason.CORRUPT_FILE, "DOCX has no Word document body (another kind of Office file?)")
    blocks = list(wordml.blocks(body, partial(_alt_chunk, main, depth)))
    for rel in main.rels.values():
        if rel.reltype in (RT.FOOTNOTES, RT.ENDNOTES) and not rel.is_external:
            blocks.extend(wordml.notes(_part_xml(rel.target_part)))
    return blocks


def _alt_chunk(main: Part, depth: int, rel_id: str) -> str:
    """An imported chunk's text: report generators embed HTML, text, RTF or a whole Word document as a part of its
    own, which Word shows in place. Another kind, or one nested past _MAX_CHUNK_DEPTH, reads as nothing."""
    rel = main.rels.get(rel_id)
    if rel is None or rel.is_external:
        return ""
    part = rel.target_part
    kind = part.content_type.split(";")[0].strip().lower()
    try:
        if kind in ("text/html", "application/xhtml+xml"):
            return markup_to_text(decode(part.blob))  # decode refuses a binary one
        if kind == "text/plain":
            return decode(part.blob)
        if kind in ("application/rtf", "text/rtf"):
            return rtf_to_text(decode(part.blob), errors="ignore")
        if kind.startswith(_WORD_TYPES) and depth < _MAX_CHUNK_DEPTH:
            if part.blob.startswith(b"PK"):  # a whole .docx package
                found = _word_blocks(part.blob, depth + 1)
            else:  # its main document part alone
                body = parse_xml(part.blob).find(_WORD_BODY)
                found = list(wordml.blocks(body)) if body is not None else []
            return "\n\n".join(block for block in found if block.strip())
    except (InputError, *_OOXML_ERRORS):  # an empty, binary or broken chunk: nothing to show, the document goes on
        return ""
    return ""


def _core_properties(data: bytes, pages: bool = False) -> tuple[str | None, datetime | None, dict[str, object]]:
    """Title, created and (author, subject, keywords) from docProps/core.xml, read here for every Office Open XML
    format: the libraries make up what a package lacks (openpyxl: author "openpyxl" and created now; python-docx:
    "Word Document"). With `pages`, also the page count Word writes into docProps/app.xml (python-docx keeps its
    template's). A part that is missing or does not parse gives nothing; the document is still read."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        core, app = _package_xml(archive, _CORE_PART), _package_xml(archive, _APP_PART) if pages else None
    described: dict[str, object] = {}
    title = created = None
    if core is not None:
        title, created = _field(core, _DC + "title"), as_utc(_field(core, _DCTERMS + "created"))
        for key, tag in (("author", _DC + "creator"), ("subject", _DC + "subject"), ("keywords", _CP + "keywords")):
            described[key] = _field(core, tag)
    count = _field(app, _APP_NS + "Pages") if app is not None else None
    if count is not None and count.strip().isdigit():
        described["pages"] = int(count)
    return title, created, described


def _package_xml(archive: zipfile.ZipFile, name: str) -> lxml.etree._Element | None:
    try:
        return parse_xml(archive.read(name)) if name in archive.namelist() else None
    except MALFORMED:
        return None


def _field(root: lxml.etree._Element, tag: str) -> str | None:
    element = root.find(tag)
    return "".join(element.itertext()) if element is not None else None


def _part_xml(part: Part) -> lxml.etree._Element:
    """A package part's XML: python-docx parsed the parts it knows; the others (a .docm's body) are parsed here."""
    element = getattr(part, "element", None)
    return element if element is not None else parse_xml(part.blob)


def read_pptx(data: bytes, source: str) -> RawDocument:
    """Per slide its title, its text frames and tables in shape order, its notes; slides a blank line apart. Also a
    .pptm, .ppsx (slide show) or .potx (template), which python-pptx's Presentation refuses but reads alike."""
    try:
        package = pptx.package.Package.open(io.BytesIO(data))
        main = package.main_document_part
        if not isinstance(main, PresentationPart):
            raise InputError(Reason.CORRUPT_FILE, "PPTX has no PowerPoint presentation (another kind of Office file?)")
        slides = [_slide_text(slide) for slide in main.presentation.slides]
        title, created, described = _core_properties(data)
        metadata = properties(**described, slides=len(slides))
    except _OOXML_ERRORS as exc:
        raise corrupt("PPTX", exc) from None
    return RawDocument(
        source=source,
        body=_body("PPTX", slides, "\n\n"),
        content_type="pptx",
        title=text_or_none(title),
        published=as_utc(created),
        metadata=metadata,
    )


def _slide_text(slide) -> str:
    title = slide.shapes.title
    lines = [title.text_frame.text] if title is not None and title.has_text_frame else []
    for shape in slide.shapes:
        if title is None or shape.shape_id != title.shape_id:
            lines.extend(_shape_lines(shape))
    if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
        lines.append(slide.notes_slide.notes_text_frame.text)
    # python-pptx writes a line break inside a paragraph as a vertical tab
    return "\n".join(line.replace("\v", "\n") for line in lines if line.strip())


def _shape_lines(shape) -> Iterator[str]:
    if isinstance(shape, GroupShape):
        for member in shape.shapes:
            yield from _shape_lines(member)
    elif shape.has_text_frame:
        yield shape.text_frame.text
    elif getattr(shape, "has_table", False) and shape.has_table:
        for row in shape.table.rows:
            yield table_row(cell.text for cell in row.cells)
    elif getattr(shape, "has_chart", False) and shape.has_chart:
        yield from _guarded(_chart_lines, shape)
    elif shape.element.find(f".//{_DGM}relIds") is not None:
        yield from _guarded(_smartart_lines, shape)


def _guarded(lines: Callable[[object], Iterator[str]], shape) -> list[str]:
    """A chart's or diagram's lines; a part that does not parse loses its lines, not the deck."""
    try:
        return list(lines(shape))
    except _OOXML_ERRORS:
        return []


def _chart_lines(shape) -> Iterator[str]:
    """A chart's title, then per series its name and its points (`North 12, South 7`), as a reader sees them."""
    chart = shape.chart
    if chart.has_title and chart.chart_title.has_text_frame:
        yield chart.chart_title.text_frame.text
    for plot in chart.plots:
        categories = [cell_text(category) for category in plot.categories]
        for series in plot.series:
            points = [
                f"{category} {cell_text(value)}".strip()
                for category, value in zip(categories or [""] * len(series.values), series.values)
                if value is not None
            ]
            yield f"{series.name}: {', '.join(points[:_MAX_CHART_POINTS])}"


def _smartart_lines(shape) -> Iterator[str]:
    """A SmartArt diagram's text (its data part's points), which python-pptx does not read."""
    rel_id = shape.element.find(f".//{_DGM}relIds").get(_R + "dm")
    root = parse_xml(shape.part.related_part(rel_id).blob)
    for point in root.iter(_DGM + "pt"):
        text = point.find(_DGM + "t")
        if text is not None:
            yield "\n".join("".join(p.itertext()) for p in text.iter(_A + "p"))


def read_xlsx(data: bytes, source: str) -> Iterator[RawDocument | Rejected]:
    """A workbook whose every non-empty sheet starts with a header row naming a text column (`text`, `body` or
    `content`, any case) is a table of records, read as a CSV file is: one document per row, with the sheet's name
    in its metadata (`sheet`). Any other workbook is one document: per sheet a line with its name, then its
    non-empty rows. Formulas give their cached values (data_only)."""
    try:
        # read_only streams rows instead of building every cell; it needs the close() below.
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            sheets = [(sheet.title, _sheet_rows(sheet)) for sheet in book.worksheets]
        finally:
            book.close()
        names = [name for name, _ in sheets]
        title, created, described = _core_properties(data)
        metadata = properties(**described, sheets=len(names), sheet_names=names)
    except _OOXML_ERRORS as exc:
        raise corrupt("XLSX", exc) from None
    yield from _workbook(sheets, source, "xlsx", metadata, title, created)


def read_xls(data: bytes, source: str) -> Iterator[RawDocument | Rejected]:
    """A legacy (Excel 97-2003) workbook, read as an .xlsx one is. An ".xls" that is an HTML table or delimited
    text, as many web exports are, is read as what it is."""
    if not data.startswith(OLE_MAGIC):
        yield from _xls_in_disguise(data, source)
        return
    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True)
        try:
            sheets = [(sheet.name, _xls_rows(book, sheet)) for sheet in book.sheets()]
        finally:
            book.release_resources()
    except xlrd.XLRDError as exc:
        if "encrypted" in str(exc).lower():
            raise InputError(Reason.ENCRYPTED, "XLS is password-protected: save it without one and replay") from None
        raise corrupt("XLS", exc) from None
    except (*MALFORMED, xlrd.compdoc.CompDocError, OSError) as exc:
        raise corrupt("XLS", exc) from None
    names = [name for name, _ in sheets]
    metadata = properties(author=book.user_name or None, sheets=len(names), sheet_names=names)
    yield from _workbook(sheets, source, "xls", metadata, None, None)


def _xls_in_disguise(data: bytes, source: str) -> Iterator[RawDocument | Rejected]:
    text = decode(data)
    if text.lstrip()[:1] == "<":
        yield RawDocument(source=source, body=text, content_type="html", is_markup=True)
    else:
        yield from read_csv(text, source)


def _xls_rows(book: xlrd.Book, sheet: xlrd.sheet.Sheet) -> list[list[str]]:
    rows = []
    for n in range(sheet.nrows):
        cells = []
        for cell in sheet.row(n):
            value = cell.value
            if cell.ctype == xlrd.XL_CELL_DATE:
                with contextlib.suppress(xlrd.xldate.XLDateError, OverflowError, ValueError):  # else its number
                    value = xlrd.xldate.xldate_as_datetime(value, book.datemode)
            elif cell.ctype in (xlrd.XL_CELL_ERROR, xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                value = None
            elif cell.ctype == xlrd.XL_CELL_BOOLEAN:
                value = bool(value)
            cells.append(cell_text(value))
        if any(cell.strip() for cell in cells):
            rows.append(cells)
    return rows


def _workbook(
    sheets: list[tuple[str, list[list[str]]]],
    source: str,
    ctype: str,
    metadata: dict,
    title: object,
    created: object,
) -> Iterator[RawDocument | Rejected]:
    """A workbook's sheets as records (every non-empty sheet's header names a text column) or as one document."""
    tables = [(name, rows) for name, rows in sheets if rows]
    if tables and all(has_text_column(rows[0]) for _, rows in tables):
        yield from _sheet_records(tables, source, ctype)
        return
    texts = ["\n".join([name, *(line for row in rows if (line := table_row(row)))]) for name, rows in tables]
    yield RawDocument(
        source=source,
        body=_body(ctype.upper(), texts, "\n\n"),
        content_type=ctype,
        title=text_or_none(title),
        published=as_utc(created),
        metadata=metadata,
    )


def _sheet_rows(sheet) -> list[list[str]]:
    """The sheet's rows with a value, each cell as text."""
    if isinstance(sheet, ReadOnlyWorksheet):
        # The stored dimension may claim a million rows; without it rows are as long as their last cell.
        sheet.reset_dimensions()
    rows = ([cell_text(value) for value in row] for row in sheet.iter_rows(values_only=True))
    return [row for row in rows if any(cell.strip() for cell in row)]


def _sheet_records(
    tables: list[tuple[str, list[list[str]]]], source: str, ctype: str
) -> Iterator[RawDocument | Rejected]:
    n = 0  # rows are numbered through the workbook: `<file>#<n>` names a row without a url or id
    for name, (header, *rows) in tables:
        width = max(len(header), *(len(row) for row in rows)) if rows else len(header)
        names = column_names(header + [""] * (width - len(header)))
        for row in rows:
            n += 1
            cells = {k: v for k, v in zip(names, row) if v != ""}
            yield guarded_record({**cells, "sheet": name}, source, n, ctype, f"sheet {name!r} row {n}")


def cell_text(value: object) -> str:
    """A spreadsheet value as text: dates ISO (a midnight datetime as a date), 3.0 as 3, nothing as ""."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() and value.tzinfo is None else value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value)


def read_rtf(data: bytes, source: str) -> RawDocument:
    """RTF is 7-bit text with escapes; striprtf decodes \\'xx by the file's code page, cp1252 by default."""
    if not data.lstrip().startswith(b"{\\rtf"):
        raise InputError(Reason.CORRUPT_FILE, "not an RTF file: it does not begin with {\\rtf")
    try:
        text = rtf_to_text(data.decode("cp1252", errors="replace"), errors="replace")
    except (ValueError, LookupError, OverflowError) as exc:  # a bad \u number, hex escape or font charset
        raise InputError(Reason.CORRUPT_FILE, one_line(f"unreadable RTF: {type(exc).__name__}: {exc}")) from None
    return RawDocument(source=source, body=_body("RTF", [text]), content_type="rtf")
