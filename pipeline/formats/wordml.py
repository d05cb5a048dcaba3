"""Word's body XML (WordprocessingML) to text blocks, as the document reads with its tracked changes accepted.

python-docx's paragraph text keeps only the runs and hyperlinks directly in a paragraph, and its block iteration only
paragraphs and tables directly in the body: a tracked insertion, a content control (forms, templates, cover pages,
tables of contents), a field's result, a smart tag and a text box all vanish from it. This walks the XML instead.

Read: paragraphs with everything inside them (insertions, content controls unless they show their placeholder,
fields' results, smart tags, hyperlinks), text boxes after the paragraph that anchors them, tables a row per line
(a horizontally merged cell once, a vertically merged one repeated in every row it spans), imported chunks
(`w:altChunk`, read by the caller), and footnotes and endnotes.
Not read: deleted and moved-away text, hidden text, field instructions, a ruby's phonetic guide, the table of contents
(the headings again), comments, headers and footers (page furniture that repeats on every page).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from lxml import etree

from pipeline.formats.common import table_row

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_OFF = ("0", "false", "off")

# Inside a paragraph: what stands for a character, and what holds no text of the document.
_CHARACTERS = {_W + "tab": "\t", _W + "ptab": "\t", _W + "br": "\n", _W + "cr": "\n", _W + "noBreakHyphen": "-"}
# rt: a ruby's phonetic guide, read as its base text
_SKIPPED = {
    _W + name
    for name in ("pPr", "rPr", "sdtPr", "sdtEndPr", "del", "moveFrom", "instrText", "delText", "delInstrText", "rt")
}
# Elements that wrap blocks (paragraphs, tables) in the body, a cell, a note or a text box.
_BLOCK_WRAPPERS = {_W + name for name in ("customXml", "ins", "moveTo", "smartTag")}
_R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_NOTE_SEPARATORS = ("separator", "continuationSeparator", "continuationNotice")
_MAX_COLUMNS = 64  # Word's tables have at most 63; a damaged file's gridBefore must not allocate millions


# relationship id of an imported chunk -> its text
ChunkReader = Callable[[str], str]


def _no_chunk(rel_id: str) -> str:
    return ""


def blocks(container: etree._Element, chunk: ChunkReader = _no_chunk) -> Iterator[str]:
    """The text blocks of a body, table cell, note or text box, in reading order (empty ones included). `chunk`
    reads an imported chunk (`w:altChunk`: HTML, text, RTF or a whole document that generators embed as a part of
    its own) from its relationship id."""
    for child in container:
        tag = child.tag
        if tag == _W + "p":
            boxes: list[str] = []
            yield "".join(_inline(child, boxes, chunk))
            yield from boxes
        elif tag == _W + "tbl":
            yield "\n".join(_table_rows(child, chunk))
        elif tag == _W + "sdt":
            if (content := _shown_content(child)) is not None:
                yield from blocks(content, chunk)
        elif tag in _BLOCK_WRAPPERS:
            yield from blocks(child, chunk)
        elif tag == _MC + "AlternateContent" and (choice := child.find(_MC + "Choice")) is not None:
            yield from blocks(choice, chunk)
        elif tag == _W + "altChunk" and (rel_id := child.get(_R + "id")):
            yield chunk(rel_id)


def notes(root: etree._Element) -> Iterator[str]:
    """The footnotes or endnotes of a footnotes.xml or endnotes.xml part, one block each, Word's separators left out."""
    for note in root:
        if note.tag in (_W + "footnote", _W + "endnote") and note.get(_W + "type") not in _NOTE_SEPARATORS:
            yield "\n".join(block for block in blocks(note) if block.strip())


def _inline(element: etree._Element, boxes: list[str], chunk: ChunkReader) -> Iterator[str]:
    """A paragraph's characters; the blocks of text boxes anchored in it go to boxes."""
    for child in element:
        tag = child.tag
        if not isinstance(tag, str) or tag in _SKIPPED:
            continue  # a comment or processing instruction; markup without the document's text
        if tag == _W + "t":
            yield child.text or ""
        elif tag in _CHARACTERS:
            yield _CHARACTERS[tag]
        elif tag == _W + "r" and _hidden(child):
            continue
        elif tag == _W + "txbxContent":
            boxes.extend(blocks(child, chunk))
        elif tag == _W + "sdt":
            if (content := _shown_content(child)) is not None:
                yield from _inline(content, boxes, chunk)
        elif tag == _MC + "AlternateContent":
            if (choice := child.find(_MC + "Choice")) is not None:  # mc:Fallback repeats it for older readers
                yield from _inline(choice, boxes, chunk)
        else:  # a run, hyperlink, insertion, field, smart tag, drawing on its way to a text box
            yield from _inline(child, boxes, chunk)


def _hidden(run: etree._Element) -> bool:
    vanish = run.find(f"{_W}rPr/{_W}vanish")
    return vanish is not None and vanish.get(_W + "val", "true") not in _OFF


def _shown_content(sdt: etree._Element) -> etree._Element | None:
    """A content control's content; None while it shows its placeholder ("Click or tap here to enter text."), or
    when it is a table of contents (the headings again, with page numbers)."""
    placeholder = sdt.find(f"{_W}sdtPr/{_W}showingPlcHdr")
    if placeholder is not None and placeholder.get(_W + "val", "true") not in _OFF:
        return None
    gallery = sdt.find(f"{_W}sdtPr/{_W}docPartObj/{_W}docPartGallery")
    if gallery is not None and gallery.get(_W + "val", "") == "Table of Contents":
        return None
    return sdt.find(_W + "sdtContent")


def _table_rows(table: etree._Element, chunk: ChunkReader) -> Iterator[str]:
    above: dict[int, str] = {}  # grid column -> the text a vertically merged cell continues
    for row in _children(table, _W + "tr"):
        column = min(_int_val(row.find(f"{_W}trPr/{_W}gridBefore"), 0), _MAX_COLUMNS)
        cells: list[str] = [""] * column
        for cell in _children(row, _W + "tc"):
            properties = cell.find(_W + "tcPr")
            merge = properties.find(_W + "vMerge") if properties is not None else None
            if merge is not None and merge.get(_W + "val", "continue") == "continue":
                text = above.get(column, "")
            else:
                text = "\n".join(block for block in blocks(cell, chunk) if block.strip())
            above[column] = text
            cells.append(text)
            span = properties.find(_W + "gridSpan") if properties is not None else None
            column += max(1, _int_val(span, 1))
        if line := table_row(cells):
            yield line


def _children(element: etree._Element, tag: str) -> Iterator[etree._Element]:
    """Rows of a table or cells of a row, also those a content control or custom XML element wraps."""
    for child in element:
        if child.tag == tag:
            yield child
        elif child.tag == _W + "sdt":
            if (content := _shown_content(child)) is not None:
                yield from _children(content, tag)
        elif child.tag in _BLOCK_WRAPPERS:
            yield from _children(child, tag)


def _int_val(element: etree._Element | None, default: int) -> int:
    value = element.get(_W + "val", "") if element is not None else ""
    return int(value) if value.isdigit() else default
