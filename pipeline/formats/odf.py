"""OpenDocument text (.odt), spreadsheets (.ods) and presentations (.odp), and their templates: content.xml and
meta.xml read with lxml, in reading order.

Not odfpy: on XML it cannot parse, odfpy prints the whole part (the document's text) to stdout, where a worker's
log would keep it, and goes on with a partial document. The two parts read here are a small, stable schema.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator

from pipeline.errors import InputError, Reason
from pipeline.formats.common import MALFORMED, as_utc, corrupt, parse_xml, properties, table_row, text_or_none
from pipeline.types import RawDocument

_OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_META = "{urn:oasis:names:tc:opendocument:xmlns:meta:1.0}"
_DRAW = "{urn:oasis:names:tc:opendocument:xmlns:drawing:1.0}"
_DC = "{http://purl.org/dc/elements/1.1/}"

# A repeated cell or row stands for copies; an empty one for the rest of the sheet (a million rows, 16,384
# columns). Empty runs are never expanded; filled ones up to this many copies.
_MAX_REPEAT = 100
_ROW_GROUPS = {_TABLE + name for name in ("table-header-rows", "table-rows", "table-row-group")}
_CELLS = {_TABLE + "table-cell", _TABLE + "covered-table-cell"}
_CONTAINERS = {_TEXT + name for name in ("list", "list-item", "list-header", "section", "index-body")}
_PARAGRAPHS = {_TEXT + "p", _TEXT + "h"}
_NOT_TEXT = {_OFFICE + "annotation", _TEXT + "note-citation"}  # comments; the footnote's number


def read_odt(data: bytes, source: str) -> RawDocument:
    """Headings, paragraphs, lists and tables in document order, a blank line apart; tables a row per line."""
    try:
        body, info = _load(data, "text", "ODT")
        blocks = [block for block in _odt_blocks(body) if block.strip()]
    except MALFORMED as exc:
        raise corrupt("ODT", exc) from None
    return _document(source, "odt", blocks, info, pages=_int(info.get("page-count")))


def read_ods(data: bytes, source: str) -> RawDocument:
    """Per sheet a line with its name, then its non-empty rows: cached values, dates ISO, as for XLSX."""
    try:
        body, info = _load(data, "spreadsheet", "ODS")
        sheets = body.findall(_TABLE + "table")
        names = [sheet.get(_TABLE + "name") or f"Sheet{n}" for n, sheet in enumerate(sheets, 1)]
        texts = ["\n".join([name, *rows]) for name, sheet in zip(names, sheets) if (rows := list(_table_rows(sheet)))]
    except MALFORMED as exc:
        raise corrupt("ODS", exc) from None
    return _document(source, "ods", texts, info, sheets=len(names), sheet_names=names)


def read_odp(data: bytes, source: str) -> RawDocument:
    """Per slide the text of its frames in drawing order (tables a row per line), then its speaker notes; slides a
    blank line apart, as for PPTX."""
    try:
        body, info = _load(data, "presentation", "ODP")
        slides = [_slide_text(page) for page in body.iter(_DRAW + "page")]
    except MALFORMED as exc:
        raise corrupt("ODP", exc) from None
    return _document(source, "odp", [text for text in slides if text.strip()], info, slides=len(slides))


def _slide_text(page) -> str:
    lines: list[str] = []
    for element in page.iter(_TEXT + "p", _TEXT + "h", _TABLE + "table"):
        if element.tag == _TABLE + "table":
            lines.extend(_table_rows(element))
        elif not any(ancestor.tag == _TABLE + "table" for ancestor in element.iterancestors()):
            lines.append(_text(element))  # a table's paragraphs are its rows, above
    return "\n".join(line for line in lines if line.strip())


def _document(source: str, ctype: str, blocks: list[str], info: dict[str, str], **counts: object) -> RawDocument:
    """The blocks a blank line apart, with the meta fields and the counts of the kind of file."""
    if not blocks:
        raise InputError(Reason.EMPTY, f"{ctype.upper()} holds no text")
    author = info.get("creator") or info.get("initial-creator")
    return RawDocument(
        source=source,
        body="\n\n".join(blocks),
        content_type=ctype,
        title=text_or_none(info.get("title")),
        published=as_utc(info.get("creation-date")),
        metadata=properties(author=author, subject=info.get("subject"), keywords=info.get("keyword"), **counts),
    )


def _load(data: bytes, kind: str, label: str):
    """office:text or office:spreadsheet, and the meta fields; another kind of ODF file is refused as corrupt."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        content = parse_xml(archive.read("content.xml"))
        meta = parse_xml(archive.read("meta.xml")) if "meta.xml" in archive.namelist() else None
    body = content.find(f"{_OFFICE}body/{_OFFICE}{kind}")
    if body is None:
        raise InputError(Reason.CORRUPT_FILE, f"{label} has no office:{kind} body (another kind of OpenDocument file?)")
    return body, _meta(meta)


def _meta(root) -> dict[str, str]:
    """Dublin Core and meta: fields by local name (keywords joined), and page-count from document-statistic."""
    info: dict[str, str] = {}
    fields = root.find(_OFFICE + "meta") if root is not None else None
    for element in fields if fields is not None else ():
        if not isinstance(element.tag, str) or not element.tag.startswith((_DC, _META)):
            continue
        name = element.tag.rpartition("}")[2]
        if name == "document-statistic":
            info["page-count"] = element.get(_META + "page-count", "")
        elif name == "keyword":
            info["keyword"] = ", ".join(filter(None, (info.get("keyword"), _text(element).strip())))
        else:
            info.setdefault(name, _text(element).strip())
    return info


def _odt_blocks(element) -> Iterator[str]:
    for child in element:
        if child.tag in _PARAGRAPHS:
            yield _text(child)
        elif child.tag == _TABLE + "table":
            yield "\n".join(_table_rows(child))
        elif child.tag in _CONTAINERS:
            yield from _odt_blocks(child)


def _table_rows(table) -> Iterator[str]:
    for row in _rows(table):
        cells = [cell for cell in row if cell.tag in _CELLS]
        runs = [(_cell_text(cell), _int(cell.get(_TABLE + "number-columns-repeated")) or 1) for cell in cells]
        while runs and not runs[-1][0]:
            runs.pop()  # the empty rest of the row
        line = table_row(text for text, count in runs for _ in range(min(count, _MAX_REPEAT)))
        if line:
            yield from [line] * min(_int(row.get(_TABLE + "number-rows-repeated")) or 1, _MAX_REPEAT)


def _rows(element) -> Iterator:
    for child in element:
        if child.tag == _TABLE + "table-row":
            yield child
        elif child.tag in _ROW_GROUPS:
            yield from _rows(child)


def _cell_text(cell) -> str:
    """What the cell shows (its text:p), but a date as its ISO value; a bare value when it shows nothing."""
    kind = cell.get(_OFFICE + "value-type")
    if kind == "date" and (value := cell.get(_OFFICE + "date-value")):
        return value.removesuffix("T00:00:00")
    shown = " ".join(_text(p) for p in cell.iter(_TEXT + "p"))
    if not shown.strip() and kind in ("float", "percentage", "currency"):
        shown = cell.get(_OFFICE + "value", "")
    return shown


def _text(element) -> str:
    """An element's text with ODF's whitespace elements (text:s, text:tab, text:line-break) spelled out."""
    parts = [element.text or ""]
    for child in element:
        if child.tag == _TEXT + "s":
            parts.append(" " * min(_int(child.get(_TEXT + "c")) or 1, _MAX_REPEAT))
        elif child.tag == _TEXT + "tab":
            parts.append("\t")
        elif child.tag == _TEXT + "line-break":
            parts.append("\n")
        elif isinstance(child.tag, str) and child.tag not in _NOT_TEXT:
            parts.append(_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, str) and value.strip().isdigit() else None
