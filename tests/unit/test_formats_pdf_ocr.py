"""PDF pages (form feeds between them, a page count) and OCR of pages that are only images.

The scanned PDFs are made here: Pillow draws text into an image and saves it as a one-page PDF. CI installs
tesseract-ocr; where it is missing the OCR test fails, saying so, rather than skipping.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pypdf
import pytest
from PIL import Image, ImageDraw, ImageFont

from pipeline.errors import Reason
from pipeline.formats import read_path
from pipeline.formats.pdf import PAGE_BREAK
from pipeline.types import RawDocument, Rejected
from tests.unit.test_formats import make_pdf

MAX = 5_000_000
SCANNED_LINES = ["The quick brown fox jumps", "over the lazy dog near", "seventeen golden meadows"]


def font(size: int = 48) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    found = sorted(Path("/usr/share/fonts").rglob("DejaVuSans.ttf")) if Path("/usr/share/fonts").is_dir() else []
    return ImageFont.truetype(str(found[0]), size) if found else ImageFont.load_default(size=size)


def make_scanned_pdf(lines: list[str]) -> bytes:
    """A PDF whose one page is an image of the lines: no text layer, as a scanner makes it."""
    image = Image.new("L", (1800, 120 + 100 * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    for n, line in enumerate(lines):
        draw.text((60, 60 + 100 * n), line, font=font(), fill=0)
    out = io.BytesIO()
    image.save(out, "PDF")
    return out.getvalue()


def merge_pdfs(*parts: bytes) -> bytes:
    writer = pypdf.PdfWriter()
    for part in parts:
        for page in pypdf.PdfReader(io.BytesIO(part)).pages:
            writer.add_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def read_one(tmp_path: Path, data: bytes) -> RawDocument | Rejected:
    path = tmp_path / "doc.pdf"
    path.write_bytes(data)
    items = list(read_path(path, MAX))
    assert len(items) == 1, items
    return items[0]


def words(text: str) -> set[str]:
    return {w.strip(".,;:!?").lower() for w in text.split()} - {""}


def require_tesseract() -> None:
    assert shutil.which("tesseract"), (
        "tesseract is not on PATH: install it (Debian: apt-get install tesseract-ocr) to run the OCR tests; "
        "CI installs it"
    )


@pytest.fixture
def no_tesseract(monkeypatch, tmp_path):
    """PATH without tesseract on it: what a host without the Debian package looks like."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_pages_are_form_feed_separated_and_counted(tmp_path):
    doc = read_one(tmp_path, make_pdf(["Page one text", "", "Page three text"], title="Three"))
    assert isinstance(doc, RawDocument)
    assert doc.body.split("\f") == ["Page one text\n", "\n\n", "\nPage three text"]
    assert [page.strip() for page in doc.body.split("\f")] == ["Page one text", "", "Page three text"]
    assert doc.body == PAGE_BREAK.join(["Page one text", "", "Page three text"])
    assert doc.metadata == {"pages": 3} and doc.title == "Three"


def test_scanned_pdf_is_ocred(tmp_path):
    require_tesseract()
    doc = read_one(tmp_path, make_scanned_pdf(SCANNED_LINES))
    assert isinstance(doc, RawDocument), doc
    expected = words(" ".join(SCANNED_LINES))
    found = words(doc.body)
    assert len(expected & found) >= 0.8 * len(expected), (sorted(expected - found), doc.body)
    assert doc.metadata == {"pages": 1, "ocr_pages": 1}


def test_mixed_pdf_ocrs_only_the_image_pages(tmp_path):
    require_tesseract()
    doc = read_one(tmp_path, merge_pdfs(make_pdf(["Typed cover page"]), make_scanned_pdf(SCANNED_LINES)))
    assert isinstance(doc, RawDocument), doc
    typed, scanned = (page.strip() for page in doc.body.split("\f"))
    assert typed == "Typed cover page"
    assert len(words(scanned) & words(" ".join(SCANNED_LINES))) >= 8
    assert doc.metadata == {"pages": 2, "ocr_pages": 1}


def test_scanned_pdf_without_tesseract_needs_ocr(tmp_path, no_tesseract):
    item = read_one(tmp_path, merge_pdfs(make_scanned_pdf(["one"]), make_scanned_pdf(["two"])))
    assert isinstance(item, Rejected) and item.reason == Reason.NEEDS_OCR
    assert item.detail == (
        "PDF has 2 page(s) of images and no text layer; install Tesseract (Debian: apt-get install tesseract-ocr) "
        "to OCR it, or set DOCPIPE_OCR=off to skip"
    )


def test_mixed_pdf_without_tesseract_keeps_its_text_pages(tmp_path, no_tesseract):
    doc = read_one(tmp_path, merge_pdfs(make_pdf(["Typed cover page"]), make_scanned_pdf(SCANNED_LINES)))
    assert isinstance(doc, RawDocument)
    assert [page.strip() for page in doc.body.split("\f")] == ["Typed cover page", ""]
    assert doc.metadata == {"pages": 2, "pages_not_ocred": 1}


def test_ocr_off_skips_image_pages(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCPIPE_OCR", "off")
    item = read_one(tmp_path, make_scanned_pdf(SCANNED_LINES))
    assert isinstance(item, Rejected) and item.reason == Reason.EMPTY and "DOCPIPE_OCR is off" in item.detail
