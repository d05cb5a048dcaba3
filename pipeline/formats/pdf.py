"""PDF: the text layer page by page, and Tesseract OCR for pages that are only images (scans)."""

from __future__ import annotations

import io
import zlib
from datetime import datetime

import pypdf
from PIL import Image
from pypdf.errors import PyPdfError
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject

from pipeline.errors import InputError, Reason
from pipeline.formats.common import as_utc, one_line, properties, text_or_none
from pipeline.formats.ocr import INSTALL_HINT, ocr_enabled, ocr_image, ocr_languages, tesseract_path
from pipeline.formats.pdf_tables import RulingCounter, pages_with_tables
from pipeline.types import RawDocument

# Pages stay apart for whoever splits them: a form feed on a line of its own. Alone it would glue the last word
# of a page to the first of the next wherever the form feed is dropped (the cleaner drops control characters).
PAGE_BREAK = "\n\f\n"
# pypdf signals malformed input through whatever its parser trips over, not only
# PyPdfError; anything outside this list is a bug of ours and should surface.
_PDF_ERRORS = (
    PyPdfError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    AssertionError,
    RecursionError,
    zlib.error,
)
_MAX_WIDGETS = 10_000  # annotations read per page
_MAX_FIELD_DEPTH = 16  # a field's parents looked up (a parent loop ends)
# An embedded image pypdf or Pillow cannot decode (JBIG2, odd colour spaces) is not text either way.
_IMAGE_ERRORS = (*_PDF_ERRORS, OSError, NotImplementedError, Image.DecompressionBombError)


def read_pdf(data: bytes, source: str) -> RawDocument:
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise InputError(Reason.ENCRYPTED, "PDF is encrypted with a password: decrypt it (qpdf) and replay")
        rulings = [RulingCounter() for _ in reader.pages]
        pages = [(page.extract_text(visitor_operand_before=r) or "").strip() for page, r in zip(reader.pages, rulings)]
        scanned = [n for n, text in enumerate(pages) if not text and len(reader.pages[n].images) > 0]
        forms = [_form_lines(page) for page in reader.pages]
        title, published, described = _info(reader)
    except _PDF_ERRORS as exc:
        raise InputError(Reason.CORRUPT_PDF, one_line(f"unreadable PDF: {type(exc).__name__}: {exc}")) from None
    metadata: dict = {**described, "pages": len(pages)}
    tabled = _tables(data, [n for n, r in enumerate(rulings) if r.may_hold_table and pages[n]])
    for n, text in tabled.items():
        pages[n] = text
    if tabled:
        metadata["table_pages"] = len(tabled)
    if scanned:
        has_text = any(pages)
        if not ocr_enabled():
            if not has_text:
                raise InputError(
                    Reason.EMPTY, f"PDF has {len(scanned)} page(s) of images and no text layer; DOCPIPE_OCR is off"
                )
            metadata["pages_not_ocred"] = len(scanned)
        elif tesseract_path() is None:
            if not has_text:
                raise InputError(
                    Reason.NEEDS_OCR,
                    f"PDF has {len(scanned)} page(s) of images and no text layer; {INSTALL_HINT}",
                )
            # Text pages are worth indexing now; the count says what a Tesseract install would add.
            metadata["pages_not_ocred"] = len(scanned)
        else:
            languages = ocr_languages()
            for n in scanned:
                pages[n] = _ocr_page(reader.pages[n], n + 1, languages)
            metadata["ocr_pages"] = len(scanned)
    for n, lines in enumerate(forms):
        if lines:
            pages[n] = "\n".join([pages[n], *(line for line in lines if line not in pages[n])]).strip()
    if any(forms):
        metadata["form_fields"] = sum(map(len, forms))
    if not any(pages):
        what = f"{len(scanned)} page(s) of images and OCR found no text" if scanned else "no extractable text"
        raise InputError(Reason.EMPTY, f"PDF has {len(pages)} page(s): {what}")
    # Blank pages keep their place, so that the n-th part between form feeds is page n.
    return RawDocument(
        source=source,
        body=PAGE_BREAK.join(pages),
        content_type="pdf",
        title=text_or_none(title),
        published=published,
        metadata=metadata,
    )


def _info(reader: pypdf.PdfReader) -> tuple[object, datetime | None, dict]:
    """Title, creation date and (author, subject, keywords) from the document information dictionary. A date
    that does not parse (producers write many) is no date, not a corrupt PDF."""
    meta = reader.metadata
    if meta is None:
        return None, None, {}
    try:
        created = as_utc(meta.creation_date)
    except ValueError:
        created = None
    keywords = meta.get("/Keywords")
    keywords = keywords.get_object() if isinstance(keywords, IndirectObject) else keywords
    keywords = keywords if isinstance(keywords, str) else None
    return meta.title, created, properties(author=meta.author, subject=meta.subject, keywords=keywords)


def _form_lines(page: pypdf.PageObject) -> list[str]:
    """A filled form's values on this page, `Label: value` (the field's tooltip, else its name): the text layer
    holds only the form's printed labels, its values live in the fields' widgets. Unchecked boxes and empty fields
    are left out; a radio group's value comes once. A damaged annotation loses its line, not the PDF."""
    lines: list[str] = []
    try:
        annotations = page.get("/Annots")
        annotations = annotations.get_object() if annotations is not None else []
        for ref in list(annotations)[:_MAX_WIDGETS]:
            widget = ref.get_object()
            if not isinstance(widget, DictionaryObject) or widget.get("/Subtype") != "/Widget":
                continue
            value = _field_text(_inherited(widget, "/V"))
            label = _inherited(widget, "/TU") or _inherited(widget, "/T")
            line = f"{' '.join(str(label).split())}: {value}" if isinstance(label, str) and label.strip() else value
            if value and line not in lines:
                lines.append(line)
    except _PDF_ERRORS:
        pass
    return lines


def _inherited(field: DictionaryObject, key: str) -> object:
    """A field attribute, looked up the field's parents (a widget is often a kid of the field that holds it)."""
    for _ in range(_MAX_FIELD_DEPTH):
        if key in field:
            return field[key].get_object()
        parent = field.get("/Parent")
        parent = parent.get_object() if parent is not None else None
        if not isinstance(parent, DictionaryObject):
            return None
        field = parent
    return None


def _field_text(value: object) -> str:
    if isinstance(value, NameObject):  # a checkbox's or radio button's state
        return "" if value == "/Off" else value[1:]
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, ArrayObject):  # a list box's choices
        return ", ".join(text for item in value if (text := _field_text(item.get_object())))
    return ""


def _tables(data: bytes, pages: list[int]) -> dict[int, str]:
    """Pages rewritten with their tables as rows; {} when pdfplumber cannot parse what pypdf could: the rows are
    a refinement, and pypdf's text of those pages still holds every word."""
    if not pages:
        return {}
    from pdfminer.psexceptions import PSException  # pdfplumber loads for pages with rulings only
    from pdfplumber.utils.exceptions import PdfminerException

    try:
        return pages_with_tables(data, pages)
    except (*_PDF_ERRORS, PdfminerException, PSException):
        return {}


def _ocr_page(page: pypdf.PageObject, number: int, languages: str) -> str:
    """The text Tesseract reads in each embedded image of the page; pypdf gives the images, so no renderer."""
    texts = []
    images = page.images
    for index in range(len(images)):
        try:
            image = images[index].image  # decoded here: a stream pypdf or Pillow cannot decode holds no text
        except _IMAGE_ERRORS:
            continue
        if image is not None:
            texts.append(ocr_image(image, f"page {number}", languages))
    return "\n\n".join(t for t in texts if t)
