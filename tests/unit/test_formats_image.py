"""Image files (a scanned or photographed page) read by Tesseract: pages of a TIFF, EXIF orientation, and the
dead letters of a broken, oversized or unreadable image. The images are drawn here with Pillow."""

from __future__ import annotations

import io
from email.message import EmailMessage
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from pipeline.clean import clean
from pipeline.errors import Reason
from pipeline.formats import SUPPORTED_SUFFIXES, read_path
from pipeline.formats.image import MAX_PIXELS
from pipeline.types import CleanDocument, RawDocument, Rejected
from tests.unit.test_formats_pdf_ocr import (  # noqa: F401 - no_tesseract is a fixture
    font,
    make_scanned_pdf,
    no_tesseract,
    require_tesseract,
    words,
)

MAX = 5_000_000
PAGE_ONE = ["The quick brown fox jumps", "over the lazy dog near"]
PAGE_TWO = ["seventeen golden meadows", "beside a quiet river"]


def page(lines: list[str]) -> Image.Image:
    image = Image.new("L", (1400, 120 + 100 * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    for n, line in enumerate(lines):
        draw.text((60, 60 + 100 * n), line, font=font(), fill=0)
    return image


def encoded(image: Image.Image, kind: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, kind, **options)
    return out.getvalue()


def read_one(tmp_path: Path, name: str, data: bytes) -> RawDocument | Rejected:
    path = tmp_path / name
    path.write_bytes(data)
    items = list(read_path(path, MAX))
    assert len(items) == 1, items
    return items[0]


def assert_reads(text: str, lines: list[str]) -> None:
    expected = words(" ".join(lines))
    assert len(expected & words(text)) >= 0.8 * len(expected), (sorted(expected - words(text)), text)


def test_image_types_are_supported():
    assert {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"} <= SUPPORTED_SUFFIXES


@pytest.mark.parametrize(("name", "kind"), [("scan.png", "PNG"), ("photo.JPG", "JPEG"), ("scan.webp", "WEBP")])
def test_image_is_ocred(tmp_path, name, kind):
    require_tesseract()
    doc = read_one(tmp_path, name, encoded(page(PAGE_ONE), kind))
    assert isinstance(doc, RawDocument), doc
    assert doc.content_type == "image" and "\f" not in doc.body
    assert_reads(doc.body, PAGE_ONE)
    assert doc.metadata == {"pages": 1, "ocr_pages": 1, "image_format": kind, "width": 1400, "height": 320}


def test_multi_page_tiff_is_a_paged_document(tmp_path):
    require_tesseract()
    first, second = page(PAGE_ONE), page(PAGE_TWO)
    doc = read_one(tmp_path, "fax.tiff", encoded(first, "TIFF", save_all=True, append_images=[second]))
    assert isinstance(doc, RawDocument), doc
    one, two = doc.body.split("\f")
    assert_reads(one, PAGE_ONE)
    assert_reads(two, PAGE_TWO)
    assert doc.metadata["pages"] == 2 and doc.metadata["ocr_pages"] == 2
    cleaned = clean(doc)
    assert isinstance(cleaned, CleanDocument)
    assert cleaned.page_starts is not None and len(cleaned.page_starts) == 2  # chunks can name their pages
    assert "meadows" in cleaned.text[cleaned.page_starts[1] :].lower()


def test_animation_reads_its_first_frame_only(tmp_path):
    require_tesseract()
    data = encoded(page(PAGE_ONE), "GIF", save_all=True, append_images=[page(PAGE_TWO)])
    doc = read_one(tmp_path, "anim.gif", data)
    assert isinstance(doc, RawDocument), doc
    assert doc.metadata["pages"] == 1
    assert_reads(doc.body, PAGE_ONE)
    assert "meadows" not in doc.body.lower()


def test_exif_orientation_is_applied(tmp_path):
    require_tesseract()
    # Stored turned a quarter, as a camera held sideways stores it, with the tag that says how to turn it back.
    stored = page(PAGE_ONE).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    doc = read_one(tmp_path, "phone.jpg", encoded(stored, "JPEG", exif=exif))
    assert isinstance(doc, RawDocument), doc
    assert_reads(doc.body, PAGE_ONE)


def test_broken_image_is_corrupt(tmp_path):
    data = encoded(page(PAGE_ONE), "PNG")
    item = read_one(tmp_path, "cut.png", data[: len(data) // 2])
    assert isinstance(item, Rejected) and item.reason == Reason.CORRUPT_FILE
    assert item.detail.startswith("unreadable image")
    item = read_one(tmp_path, "not-an-image.jpg", b"just some text saved with the wrong name\n")
    assert isinstance(item, Rejected) and item.reason == Reason.CORRUPT_FILE


def test_oversized_image_is_refused_before_decoding(tmp_path):
    data = encoded(Image.new("1", (12_000, MAX_PIXELS // 12_000 + 1), 1), "PNG")  # blank: a few kB on disk
    item = read_one(tmp_path, "huge.png", data)
    assert isinstance(item, Rejected) and item.reason == Reason.TOO_LARGE
    assert "12000x8334 pixels" in item.detail


def test_an_image_with_a_side_tesseract_cannot_read_is_too_large(tmp_path):
    item = read_one(tmp_path, "strip.png", encoded(Image.new("1", (40_000, 20), 1), "PNG"))
    assert isinstance(item, Rejected) and item.reason == Reason.TOO_LARGE and "sides up to 32767" in item.detail


def test_blank_image_is_empty(tmp_path):
    require_tesseract()
    item = read_one(tmp_path, "blank.png", encoded(Image.new("L", (800, 600), 255), "PNG"))
    assert isinstance(item, Rejected) and item.reason == Reason.EMPTY
    assert item.detail == "OCR found no text in the image (1 page(s))"


def test_image_without_tesseract_needs_ocr(tmp_path, no_tesseract):
    item = read_one(tmp_path, "scan.png", encoded(page(PAGE_ONE), "PNG"))
    assert isinstance(item, Rejected) and item.reason == Reason.NEEDS_OCR
    assert "install Tesseract" in item.detail and "DOCPIPE_OCR=off" in item.detail


def test_image_with_ocr_off_is_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCPIPE_OCR", "off")
    item = read_one(tmp_path, "scan.png", encoded(page(PAGE_ONE), "PNG"))
    assert isinstance(item, Rejected) and item.reason == Reason.EMPTY and "DOCPIPE_OCR is off" in item.detail


def test_email_reads_an_attached_scan_but_not_an_inline_logo(tmp_path):
    require_tesseract()
    message = EmailMessage()
    message["Subject"], message["From"] = "Signed contract", "gil@example.com"
    message.set_content("The signed page is attached.")
    message.add_alternative('<p>The signed page is attached.</p><img src="cid:logo">', subtype="html")
    logo = encoded(page(["ACME"]), "PNG")
    message.get_payload()[1].add_related(
        logo, maintype="image", subtype="png", cid="<logo>", filename="logo.png", disposition="inline"
    )
    message.add_attachment(encoded(page(PAGE_ONE), "JPEG"), maintype="image", subtype="jpeg", filename="page.jpg")
    path = tmp_path / "m.eml"
    path.write_bytes(message.as_bytes())
    body, scan = list(read_path(path, MAX))
    assert isinstance(body, RawDocument) and body.metadata["attachments"] == ["logo.png", "page.jpg"]
    assert isinstance(scan, RawDocument), scan
    assert scan.source.endswith("#attachment/2/page.jpg") and scan.content_type == "image"
    assert_reads(scan.body, PAGE_ONE)


def test_ocr_languages_are_checked_against_tesseract_s_data(tmp_path, monkeypatch):
    require_tesseract()
    monkeypatch.setenv("DOCPIPE_OCR_LANGUAGES", "eng+zzz")  # no such language data is ever installed
    item = read_one(tmp_path, "scan.png", encoded(page(PAGE_ONE), "PNG"))
    assert isinstance(item, Rejected) and item.reason == Reason.NEEDS_OCR
    assert item.detail == (
        "Tesseract has no data for zzz (DOCPIPE_OCR_LANGUAGES): install it (Debian: apt-get install "
        "tesseract-ocr-zzz) or change the setting"
    )
    item = read_one(tmp_path, "scan.pdf", make_scanned_pdf(PAGE_ONE))  # a scanned PDF says the same
    assert isinstance(item, Rejected) and item.reason == Reason.NEEDS_OCR and "tesseract-ocr-zzz" in item.detail
    monkeypatch.setenv("DOCPIPE_OCR_LANGUAGES", "english; rm -rf")
    item = read_one(tmp_path, "scan.png", encoded(page(PAGE_ONE), "PNG"))
    assert isinstance(item, Rejected) and item.reason == Reason.NEEDS_OCR and "such as eng+deu" in item.detail
    monkeypatch.setenv("DOCPIPE_OCR_LANGUAGES", " eng, ")  # commas and spaces are taken as "+"
    doc = read_one(tmp_path, "scan.png", encoded(page(PAGE_ONE), "PNG"))
    assert isinstance(doc, RawDocument), doc
    assert_reads(doc.body, PAGE_ONE)
