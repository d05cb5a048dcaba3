"""Cleaning: markup to main text, then one normalisation for every document."""

from __future__ import annotations

import contextlib
import html
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import NamedTuple

import lxml.etree
import lxml.html
import trafilatura
from trafilatura.settings import Document

from pipeline.errors import Reason
from pipeline.formats.common import one_line, parse_datetime
from pipeline.metadata import MAX_KEYS, MAX_LIST_ITEMS
from pipeline.types import CleanDocument, RawDocument, Rejected

# \r is handled before this runs; every other C0/C1 control except \t and \n goes,
# and a BOM left mid-text by concatenated files with it.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff]")
_NEWLINES = re.compile(r"\r\n?")
# Patterns start with a literal run so that re can skip ahead instead of trying every
# position; "[ \t]+" costs ~10x more on ordinary prose because every space matches.
_SPACE_RUNS = re.compile(r"  +")
_BLANK_LINES = re.compile(r"\n\n\n+")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
# The PDF reader puts one between pages (pipeline/formats/pdf.py); elsewhere it is a control character like any.
_PAGE_BREAK = "\f"
_PAGED_TYPES = ("pdf", "image")  # bodies whose pages the readers separate by form feeds (a PDF, a TIFF's pages)
# Page metadata: meta names (lowercased) that state when a page was published, in no order of preference (a page
# states one); strings kept to this many characters; JSON-LD objects looked through per level.
_DATE_META = frozenset(
    {
        "article:published_time",
        "og:published_time",
        "datepublished",
        "date",
        "pubdate",
        "publishdate",
        "publish-date",
        "publish_date",
        "dc.date",
        "dc.date.issued",
        "dcterms.date",
        "dcterms.issued",
        "dcterms.created",
        "citation_publication_date",
        "sailthru.date",
        "parsely-pub-date",
    }
)
_MAX_PAGE_VALUE = 1000
_MAX_LD_ITEMS = 50
# lxml refuses str input that declares its own encoding; the text is already decoded.
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)

# Pruned before trafilatura too: with favor_recall it keeps menus on short pages.
# A <header> inside an article usually holds its headline, so only page headers go.
_BOILERPLATE_XPATHS = [
    *(f"//{tag}" for tag in ("script", "style", "nav", "footer", "aside", "noscript", "template", "iframe", "form")),
    "//header[not(ancestor::article) and not(ancestor::main)]",
]
_BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "figcaption",
        "figure",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "li",
        "main",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "td",
        "th",
        "tr",
        "ul",
    }
)


def normalize_text(text: str) -> str:
    """NFKC, controls out, whitespace collapsed, lines trimmed, at most one blank line."""
    text = _NEWLINES.sub("\n", text)
    text = unicodedata.normalize("NFKC", text)  # has its own fast path for normalised text
    text = _CONTROL.sub("", text)
    if "\t" in text:
        text = text.replace("\t", " ")
    if "  " in text:
        text = _SPACE_RUNS.sub(" ", text)
    # Runs are single spaces now, so one pass each way trims every line.
    text = text.replace(" \n", "\n").replace("\n ", "\n")
    return _BLANK_LINES.sub("\n\n", text).strip()


def clean(doc: RawDocument) -> CleanDocument | Rejected:
    title, body, published, metadata = doc.title, doc.body, doc.published, doc.metadata
    if doc.is_markup:
        page = extract_markup(doc.body)
        body, title = page.text, title or page.title
        published = published or page.published
        metadata = _with_page(metadata, page.metadata)
    page_starts = None
    if doc.content_type in _PAGED_TYPES and _PAGE_BREAK in body:
        text, page_starts = paged_text(body)
    else:
        text = normalize_text(body)
    if not text:
        what = "no main text found in markup" if doc.is_markup else "only whitespace or control characters"
        return Rejected(
            source=doc.source, stage="clean", reason=Reason.EMPTY.value, detail=f"empty after cleaning: {what}"
        )
    if title is not None:
        title = " ".join(normalize_text(title).split()) or None
    return CleanDocument(
        source=doc.source,
        text=text,
        content_type=doc.content_type,
        title=title,
        published=published,
        metadata=dict(metadata),
        page_starts=page_starts,
        origin=doc.origin,
    )


def paged_text(body: str) -> tuple[str, list[int]]:
    """Pages (split at form feeds) normalised one by one and joined by a blank line, as normalize_text would
    join them, with the offset where each page starts. An empty page starts (and ends) where the one before ended."""
    text, starts = "", []
    for page in body.split(_PAGE_BREAK):
        page = normalize_text(page)
        if page and text:
            text += "\n\n"
        starts.append(len(text))
        text += page
    return text, starts


class Page(NamedTuple):
    text: str
    title: str | None
    published: datetime | None  # only a date the page states in its markup, never one guessed from its text
    metadata: dict  # author, site, description, categories, tags, url: what the page's head says of it


def extract_markup(markup: str) -> Page:
    """Main text, title, date and metadata of an HTML page; falls back to the body text when trafilatura,
    tuned for articles, finds nothing (short pages, bare fragments)."""
    result: Document | None = trafilatura.bare_extraction(  # type: ignore[assignment]  # a Document unless as_dict
        markup,
        favor_recall=True,
        include_comments=False,
        include_tables=True,
        with_metadata=True,
        prune_xpath=_BOILERPLATE_XPATHS,
    )
    text = result.text if result is not None else None
    title = result.title if result is not None else None
    if not title:
        match = _TITLE.search(markup)
        title = html.unescape(match.group(1)) if match else None
    if not text or not text.strip():
        text = _body_text(markup)
    return Page(text or "", title or None, stated_date(markup), _page_metadata(result))


def _with_page(own: dict, page: dict) -> dict:
    """What a record or feed item says of itself wins over its markup; the page's keys fill in without taking the
    document past the key limit (which would make it an invalid_metadata dead letter)."""
    merged = dict(own)
    for key, value in page.items():
        if key not in merged and len(merged) < MAX_KEYS:
            merged[key] = value
    return merged


def _page_metadata(result: Document | None) -> dict:
    """trafilatura's reading of the page's head (meta tags, OpenGraph, JSON-LD), bounded to what metadata keeps."""
    if result is None:
        return {}
    fields = {
        "author": result.author,
        "site": result.sitename,
        "description": result.description,
        "categories": result.categories,
        "tags": result.tags,
        "url": result.url,
    }
    out: dict = {}
    for key, value in fields.items():
        if isinstance(value, str) and value.strip():
            out[key] = one_line(value, _MAX_PAGE_VALUE)
        elif isinstance(value, list):
            items = [one_line(v, _MAX_PAGE_VALUE) for v in value if isinstance(v, str) and v.strip()]
            if items:
                out[key] = items[:MAX_LIST_ITEMS]
    return out


def stated_date(markup: str) -> datetime | None:
    """The publication date a page states: its meta tags (OpenGraph `article:published_time`, Dublin Core,
    `datePublished` and the common news names), a `datePublished` item or `<time pubdate>`, or JSON-LD's
    `datePublished`. Not a date found in its text, which may be any date the article mentions."""
    try:
        root = lxml.html.document_fromstring(_XML_DECL.sub("", markup, count=1))
    except (lxml.etree.ParserError, ValueError):
        return None
    for meta in root.iter("meta"):
        key = (meta.get("property") or meta.get("name") or meta.get("itemprop") or "").strip().lower()
        if key in _DATE_META and (found := parse_datetime(meta.get("content"))) is not None:
            return found
    for element in root.xpath("//*[@itemprop='datePublished'] | //time[@pubdate]"):
        if (found := parse_datetime(element.get("datetime") or element.get("content"))) is not None:
            return found
    for script in root.xpath("//script[@type='application/ld+json']"):
        with contextlib.suppress(ValueError, RecursionError):
            if (found := _json_ld_date(json.loads(script.text or ""))) is not None:
                return found
    return None


def _json_ld_date(value: object, depth: int = 0) -> datetime | None:
    """The first `datePublished` of a JSON-LD value (an object, a list of them, an `@graph`), a few levels deep."""
    if depth > 4:
        return None
    if isinstance(value, dict):
        if (found := parse_datetime(value.get("datePublished"))) is not None:
            return found
        value = [v for v in value.values() if isinstance(v, (dict, list))]
    if isinstance(value, list):
        for item in value[:_MAX_LD_ITEMS]:
            if (found := _json_ld_date(item, depth + 1)) is not None:
                return found
    return None


def _body_text(markup: str) -> str:
    markup = _XML_DECL.sub("", markup, count=1)
    try:
        root = lxml.html.document_fromstring(markup)
    except (lxml.etree.ParserError, ValueError):
        return ""
    for element in root.xpath(" | ".join(_BOILERPLATE_XPATHS)):
        element.drop_tree()
    # text_content() glues block elements together; explicit newlines keep paragraphs apart.
    for element in root.iter(*_BLOCK_TAGS):
        element.text = "\n" + (element.text or "")
        element.tail = "\n" + (element.tail or "")
    body = root.find("body")
    return (body if body is not None else root).text_content()


class Cleaner:
    """Cleans a stream; rejections from earlier steps pass through untouched. (Ingest counts what each
    stage keeps and drops in the job's accounts, pipeline/jobs/stats.py.)"""

    def run(self, items: Iterable[RawDocument | Rejected]) -> Iterator[CleanDocument | Rejected]:
        for item in items:
            yield item if isinstance(item, Rejected) else clean(item)
