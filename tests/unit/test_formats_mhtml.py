"""Web pages saved as one file (.mhtml, .mht), as Chromium writes them: the page's HTML part, cleaned as an .html file
is, and the address it was saved from."""

from __future__ import annotations

from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

import pytest

from pipeline.clean import clean
from pipeline.errors import Reason
from pipeline.formats import SUPPORTED_SUFFIXES, read_path
from pipeline.types import RawDocument, Rejected
from tests.unit.test_clean import ARTICLE_BODY

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def make_mhtml(html: str, location: str = "https://news.example/a/1") -> bytes:
    page = MIMEMultipart("related", type="text/html")
    page["From"] = "<Saved by Blink>"
    page["Snapshot-Content-Location"] = location
    page["Subject"] = "Rates rise"
    part = MIMEText(html, "html", "utf-8")
    part["Content-Location"] = location
    page.attach(part)
    image = MIMEImage(PNG, "png")
    image["Content-Location"] = "https://news.example/logo.png"
    page.attach(image)
    return page.as_bytes()


@pytest.mark.parametrize("suffix", [".mhtml", ".mht"])
def test_a_saved_page_is_read_as_its_html_with_its_address(tmp_path, suffix):
    path = tmp_path / f"page{suffix}"
    path.write_bytes(make_mhtml(f"<html><head><title>Rates – Daily</title></head><body>{ARTICLE_BODY}</body></html>"))
    (doc,) = read_path(path, 1_000_000)
    assert isinstance(doc, RawDocument) and (doc.content_type, doc.is_markup) == ("html", True)
    assert doc.metadata == {"url": "https://news.example/a/1"}
    cleaned = clean(doc)
    assert "The central bank raised rates again on Tuesday" in cleaned.text and "<p>" not in cleaned.text
    assert cleaned.metadata["url"] == "https://news.example/a/1"
    assert suffix in SUPPORTED_SUFFIXES


def test_a_mime_file_without_a_page_is_corrupt(tmp_path):
    path = tmp_path / "odd.mhtml"
    path.write_bytes(b"Subject: hi\nContent-Type: text/plain\n\njust text\n")
    (item,) = read_path(path, 1_000_000)
    assert isinstance(item, Rejected) and item.reason == Reason.CORRUPT_FILE and "text/html" in item.detail
