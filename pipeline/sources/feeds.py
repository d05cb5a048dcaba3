"""Feed bodies to items: RSS 2.0 (and RSS 1.0/RDF), Atom, JSON Feed and JSON lines.

XML goes through defusedxml: a DOCTYPE may be present, but entity declarations are refused
outright, which stops external entities (file or network reads) and entity-expansion bombs
before any expansion happens. feedparser alone would not: it resolves what its parser allows.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urljoin
from xml.etree.ElementTree import Element, ParseError, tostring

import defusedxml
import defusedxml.ElementTree as SafeET

from pipeline.formats import parse_datetime
from pipeline.sources.errors import FeedError

ATOM = "{http://www.w3.org/2005/Atom}"
RSS1 = "{http://purl.org/rss/1.0/}"
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
DC = "{http://purl.org/dc/elements/1.1/}"
_MARKUP = re.compile(r"<[A-Za-z!/][^>]*>")
_ID_KEYS = ("url", "link", "id", "guid")
_BODY_KEYS = ("text", "content", "body", "content_html", "content_text", "description", "summary")
_DATE_KEYS = ("published", "date_published", "pubDate", "date", "updated", "date_modified")


@dataclass
class FeedItem:
    identity: str  # the link, else the guid/id: the Document's source
    body: str
    is_html: bool
    title: str | None = None
    published: datetime | None = None
    link: str | None = None
    guid: str | None = None
    # the document's metadata (docs/metadata.md): what feeds say about an item besides its text
    categories: list[str] = field(default_factory=list)
    author: str | None = None


@dataclass
class ParsedFeed:
    format: str  # rss | rdf | atom | jsonfeed | jsonl
    items: list[FeedItem]
    title: str | None = None
    skipped: list[str] = field(default_factory=list)  # why items were left out


def parse_feed(data: bytes, content_type: str = "", base_url: str = "") -> ParsedFeed:
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if not head:
        raise FeedError("the feed is empty")
    if head == b"<":
        return parse_xml(data, base_url)
    if head in (b"{", b"["):
        return parse_json(data, content_type, base_url)
    raise FeedError(f"not a feed: the body starts with {data.lstrip()[:20]!r}, expected XML or JSON")


# --- XML ---------------------------------------------------------------------------------------


def parse_xml(data: bytes, base_url: str = "") -> ParsedFeed:
    try:
        root = SafeET.fromstring(data, forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise FeedError(f"refused unsafe XML ({type(exc).__name__}): feeds may not declare entities") from None
    except ParseError as exc:
        raise FeedError(f"malformed XML: {exc}") from None
    if root.tag == "rss" or root.tag == f"{RDF}RDF":
        return _rss(root, base_url)
    if root.tag == f"{ATOM}feed":
        return _atom(root, base_url)
    raise FeedError(f"unknown XML feed: root element <{_local(root.tag)}> is not rss, rdf:RDF or Atom feed")


def _rss(root: Element, base_url: str) -> ParsedFeed:
    rdf = root.tag != "rss"
    ns = RSS1 if rdf else ""
    channel = root.find(f"{ns}channel")
    entries = root.findall(f"{ns}item") if rdf else (channel.findall("item") if channel is not None else [])
    feed = ParsedFeed("rdf" if rdf else "rss", [], _text(channel.find(f"{ns}title")) if channel is not None else None)
    for n, el in enumerate(entries, 1):
        link = _text(el.find(f"{ns}link"))
        guid_el = el.find("guid")
        guid = _text(guid_el) or (el.get(f"{RDF}about") if rdf else None)
        if (
            not link
            and guid
            and guid_el is not None
            and guid_el.get("isPermaLink", "true") != "false"
            and guid.startswith(("http://", "https://"))
        ):
            link = guid
        body = _text(el.find(f"{CONTENT}encoded")) or _text(el.find(f"{ns}description"))
        date = _text(el.find("pubDate")) or _text(el.find(f"{DC}date"))
        about = {
            "categories": [_text(c) for c in el.findall("category") + el.findall(f"{DC}subject")],
            "author": _text(el.find(f"{DC}creator")) or _text(el.find("author")),
        }
        _add(feed, n, link, guid, _text(el.find(f"{ns}title")), body, None, date, base_url, about)
    return feed


def _atom(root: Element, base_url: str) -> ParsedFeed:
    feed = ParsedFeed("atom", [], _text(root.find(f"{ATOM}title")))
    for n, el in enumerate(root.findall(f"{ATOM}entry"), 1):
        links = el.findall(f"{ATOM}link")
        alternate = [ln for ln in links if ln.get("rel", "alternate") == "alternate" and ln.get("href")]
        candidates = alternate or [ln for ln in links if ln.get("href")]
        link = candidates[0] if candidates else None
        content = el.find(f"{ATOM}content")
        if content is not None and content.get("src"):
            content = None  # out-of-line content: the summary is what the feed carries
        body, is_html = _atom_text(content)
        if not body:
            body, is_html = _atom_text(el.find(f"{ATOM}summary"))
        date = _text(el.find(f"{ATOM}published")) or _text(el.find(f"{ATOM}updated"))
        title, _ = _atom_text(el.find(f"{ATOM}title"))
        _add(
            feed,
            n,
            link.get("href") if link is not None else None,
            _text(el.find(f"{ATOM}id")),
            title,
            body,
            is_html,
            date,
            base_url,
            {
                "categories": [c.get("term") or c.get("label") for c in el.findall(f"{ATOM}category")],
                "author": _text(el.find(f"{ATOM}author/{ATOM}name")),
            },
        )
    return feed


def _atom_text(el: Element | None) -> tuple[str | None, bool | None]:
    if el is None:
        return None, None
    kind = el.get("type", "text")
    if kind == "xhtml":
        # the markup is inline XML in the XHTML namespace: drop the namespace, serialise as HTML
        for node in el.iter():
            node.tag = _local(node.tag)
        inner = (el.text or "") + "".join(tostring(child, encoding="unicode", method="html") for child in el)
        return inner.strip() or None, True
    return _text(el), kind == "html" or None


# --- JSON Feed and JSON lines ---------------------------------------------------------------------


def parse_json(data: bytes, content_type: str = "", base_url: str = "") -> ParsedFeed:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FeedError(f"JSON feed is not UTF-8 (byte {exc.start})") from None
    lines_declared = any(t in content_type.lower() for t in ("ndjson", "jsonl", "json-seq", "jsonlines"))
    if not lines_declared:
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None  # several values: JSON lines
        if isinstance(value, dict) and ("items" in value or "jsonfeed.org" in str(value.get("version", ""))):
            return _jsonfeed(value, base_url)
        if isinstance(value, list):
            return _records(((n, v) for n, v in enumerate(value, 1)), "jsonl", base_url)
        if value is not None and "\n" not in text.strip():
            return _records([(1, value)], "jsonl", base_url)
    return _jsonl(text, base_url)


def _jsonfeed(value: dict, base_url: str) -> ParsedFeed:
    items = value.get("items")
    if not isinstance(items, list):
        raise FeedError("malformed JSON Feed: 'items' is not a list")
    base = value.get("home_page_url") if isinstance(value.get("home_page_url"), str) else base_url
    feed = ParsedFeed("jsonfeed", [], _str(value.get("title")))
    for n, item in enumerate(items, 1):
        if not isinstance(item, dict):
            feed.skipped.append(f"item {n}: not an object")
            continue
        html_body = _str(item.get("content_html"))
        body = html_body or _str(item.get("content_text")) or _str(item.get("summary"))
        _add(
            feed,
            n,
            _str(item.get("url")) or _str(item.get("external_url")),
            _str(item.get("id")),
            _str(item.get("title")),
            body,
            bool(html_body) or None,
            _str(item.get("date_published")) or _str(item.get("date_modified")),
            base or base_url,
            _json_about(item),
        )
    return feed


def _jsonl(text: str, base_url: str) -> ParsedFeed:
    rows, bad = [], []
    # "\n" only, as in pipeline.formats: a JSON string may hold a raw U+2028
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            rows.append((n, json.loads(line)))
        except json.JSONDecodeError as exc:
            bad.append(f"line {n}: invalid JSON at column {exc.colno}: {exc.msg}")
    if not rows:
        raise FeedError(f"malformed JSON lines: {bad[0] if bad else 'no records'}")
    feed = _records(rows, "jsonl", base_url)
    feed.skipped = bad + feed.skipped
    return feed


def _records(rows, fmt: str, base_url: str) -> ParsedFeed:
    feed = ParsedFeed(fmt, [])
    for n, obj in rows:
        if not isinstance(obj, dict):
            feed.skipped.append(f"record {n}: not an object")
            continue
        ident = {k: _str(obj.get(k)) for k in _ID_KEYS}
        body = next((_str(obj.get(k)) for k in _BODY_KEYS if _str(obj.get(k))), None)
        date = next((_str(obj.get(k)) for k in _DATE_KEYS if _str(obj.get(k))), None)
        _add(
            feed,
            n,
            ident["url"] or ident["link"],
            ident["guid"] or ident["id"],
            _str(obj.get("title")),
            body,
            None,
            date,
            base_url,
            _json_about(obj),
        )
    return feed


def _json_about(obj: dict) -> dict:
    """Categories and author of a JSON Feed item (tags, authors[].name) or a JSON lines record."""
    tags: object = next((obj[k] for k in ("tags", "categories", "category") if obj.get(k)), [])
    authors = obj.get("authors")
    people: list = authors if isinstance(authors, list) else [obj.get("author")]
    names = [p.get("name") if isinstance(p, dict) else p for p in people]
    return {
        "categories": [_str(t) for t in (tags if isinstance(tags, list) else [tags])],
        "author": next((_str(name) for name in names if _str(name)), None),
    }


# --- shared ------------------------------------------------------------------------------------


def _add(
    feed: ParsedFeed,
    n: int,
    link: str | None,
    guid: str | None,
    title: str | None,
    body: str | None,
    is_html: bool | None,
    date: str | None,
    base_url: str,
    about: dict | None = None,
) -> None:
    link = urljoin(base_url, link.strip()) if link and link.strip() else None
    guid = guid.strip() if guid and guid.strip() else None
    identity = link or guid
    title = " ".join(title.split()) if title and title.strip() else None
    body = body.strip() if body and body.strip() else title  # a title-only item is still news
    if not identity:
        feed.skipped.append(f"item {n}: no link or guid to identify it")
        return
    if not body:
        feed.skipped.append(f"item {n} ({identity}): no title or content")
        return
    markup = is_html if is_html is not None else bool(_MARKUP.search(body))
    about = about or {}
    categories = [" ".join(c.split()) for c in about.get("categories") or [] if c and c.strip()]
    author = " ".join(about["author"].split()) if about.get("author") and about["author"].strip() else None
    categories = list(dict.fromkeys(categories))
    feed.items.append(FeedItem(identity, body, markup, title, parse_datetime(date), link, guid, categories, author))


def _text(el: Element | None) -> str | None:
    if el is None:
        return None
    text = "".join(el.itertext()).strip()
    return text or None


def _str(value: object) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    return value.strip() or None if isinstance(value, str) else None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else str(tag)
