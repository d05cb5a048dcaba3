"""PDF: the text layer page by page, and Tesseract OCR for pages that are only images (scans)."""

from __future__ import annotations

import io
import zlib

import pypdf
from PIL import Image
from pypdf.errors import PyPdfError

from pipeline.errors import InputError, Reason
from pipeline.formats.common import one_line, text_or_none
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
# An embedded image pypdf or Pillow cannot decode (JBIG2, odd colour spaces) is not text either way.
_IMAGE_ERRORS = (*_PDF_ERRORS, OSError, NotImplementedError, Image.DecompressionBombError)


def read_pdf(data: bytes, source: str) -> RawDocument:
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise InputError(Reason.CORRUPT_PDF, "PDF is encrypted with a password")
        rulings = [RulingCounter() for _ in reader.pages]
        pages = [(page.extract_text(visitor_operand_before=r) or "").strip() for page, r in zip(reader.pages, rulings)]
        scanned = [n for n, text in enumerate(pages) if not text and len(reader.pages[n].images) > 0]
        meta = reader.metadata
        title = meta.title if meta is not None else None
    except _PDF_ERRORS as exc:
        raise InputError(Reason.CORRUPT_PDF, one_line(f"unreadable PDF: {type(exc).__name__}: {exc}")) from None
    metadata: dict = {"pages": len(pages)}
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
    if not any(pages):
        what = f"{len(scanned)} page(s) of images and OCR found no text" if scanned else "no extractable text"
        raise InputError(Reason.EMPTY, f"PDF has {len(pages)} page(s): {what}")
    # Blank pages keep their place, so that the n-th part between form feeds is page n.
    return RawDocument(
        source=source,
        body=PAGE_BREAK.join(pages),
        content_type="pdf",
        title=text_or_none(title),
        metadata=metadata,
    )


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
