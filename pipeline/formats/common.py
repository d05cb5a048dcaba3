"""What several readers share: decoding bytes, dates, one-line details, archive checks, XML and XHTML to text."""

from __future__ import annotations

import codecs
import contextlib
import io
import math
import re
import struct
import xml.sax
import zipfile
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import lxml.etree
import lxml.html
from charset_normalizer import from_bytes

from pipeline.errors import InputError, Reason

# Longest BOMs first: the UTF-32-LE BOM begins with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# C0 controls that never appear in text files; tab, newlines, vertical tab and form feed do.
_CONTROL_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\x0b\x0c") + b"\x7f"
# Random bytes carry ~10% of these, real text almost none; 5% leaves room on both sides.
_MAX_CONTROL_RATIO = 0.05
_UTF16_SAMPLE = 4096  # bytes looked at to tell UTF-16 without a BOM from binary
# On short Western European text charset-normalizer often ranks cp1250/cp1257 first and
# turns "naïve" into "naďve". Any candidate it returns passed its own mess threshold, and
# it does not return cp1252 for genuine Central European or Cyrillic text, so cp1252
# (the likeliest legacy encoding here) wins whenever it is among the candidates.
_PREFERRED = ("cp1252", "latin_1", "iso8859_15")

# What the parsers under the archive formats (zipfile, lxml, ElementTree, SAX) raise on malformed input;
# readers add their library's own classes. Anything else is a bug of ours and becomes reader_error.
MALFORMED: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    struct.error,
    EOFError,
    LookupError,  # KeyError (a part the package names is missing), IndexError
    ValueError,
    TypeError,
    AttributeError,
    AssertionError,
    NotImplementedError,  # an unsupported compression method
    SyntaxError,  # lxml's XMLSyntaxError and ElementTree's ParseError
    lxml.etree.LxmlError,
    xml.sax.SAXException,
)
# Declared sizes bound what zipfile inflates, so this refuses a zip bomb before any part is parsed.
MAX_EXPANSION = 10
# Office saves a password-protected .docx/.xlsx/.pptx, and every .doc/.xls/.ppt, as an OLE compound file; the
# protected ones hold a stream named EncryptedPackage (directory names are UTF-16).
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")

# A parser without entity expansion or network: a document's DTD must not reach files or hosts.
_XML_PARSER = lxml.etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
_DROPPED_TAGS = ("script", "style", "template", "noscript", "head", "object", "svg")
_BLOCK_TAGS = (
    *("address", "article", "aside", "blockquote", "dd", "div", "dl", "dt", "figcaption", "figure", "footer"),
    *("h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section"),
    *("table", "tr", "ul", "caption"),
)
_BLANK_RUNS = re.compile(r"\n{3,}")
# Tables become text rows, one per line, so that a row stays one unit for the chunker.
CELL_SEPARATOR = " | "


def decode(data: bytes) -> str:
    """Bytes of a text file to str: a BOM decides, else UTF-8, else the likeliest legacy encoding."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise InputError(
                    Reason.DECODE_ERROR, f"{encoding} byte-order mark, but invalid {encoding} at byte {exc.start}"
                ) from None
    if b"\x00" in data:
        if (unmarked := _bomless_utf16(data)) is not None:
            return unmarked
        raise InputError(Reason.BINARY, "file contains NUL bytes")
    ratio = (len(data) - len(data.translate(None, _CONTROL_BYTES))) / len(data)
    if ratio > _MAX_CONTROL_RATIO:
        raise InputError(Reason.BINARY, f"{ratio:.0%} of bytes are control characters")
    with contextlib.suppress(UnicodeDecodeError):
        return data.decode("utf-8")
    results = from_bytes(data)
    best = results.best()
    if best is None:
        raise InputError(Reason.BINARY, "not UTF-8 and no plausible text encoding detected")
    candidates = {r.encoding for r in results}
    encoding = next((e for e in _PREFERRED if e in candidates), best.encoding)
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        raise InputError(Reason.DECODE_ERROR, f"cannot decode as detected {encoding}: {exc}") from None


def _bomless_utf16(data: bytes) -> str | None:
    """UTF-16 without a byte-order mark (some Windows exports): most text there is Latin script, whose every other
    byte is NUL, on the odd bytes for little-endian and the even ones for big-endian. None for anything else."""
    head = data[:_UTF16_SAMPLE]
    if len(data) % 2 or len(head) < 8:
        return None
    for encoding, zeros in (("utf-16-le", head[1::2]), ("utf-16-be", head[0::2])):
        if zeros.count(0) >= 0.9 * len(zeros):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                return None
            controls = sum(1 for c in text[: _UTF16_SAMPLE // 2] if c < " " and c not in "\t\n\r\x0b\x0c")
            return text if "\x00" not in text and controls <= _MAX_CONTROL_RATIO * min(len(text), 2048) else None
    return None


def parse_datetime(value: object) -> datetime | None:
    """ISO 8601, RFC 2822 or a Unix time (seconds, or milliseconds) to an aware datetime; naive values are taken
    as UTC."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _unix_time(float(value))
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(value)
        except (ValueError, TypeError, IndexError, OverflowError):
            return _unix_time(float(value)) if _NUMBER.fullmatch(value) else None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


_NUMBER = re.compile(r"\d+(\.\d+)?")


def _unix_time(value: float) -> datetime | None:
    """Seconds since 1970 from 1e8 (1973) on, milliseconds from 1e11 on (exports write both); a smaller number
    (a year, a count) is no time."""
    if 1e11 <= value < 1e14:
        value /= 1000
    if not 1e8 <= value < 1e11:
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def as_utc(value: object) -> datetime | None:
    """A document property's date as aware UTC; the Office formats store naive UTC, strings are parsed."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset
        return None


def is_scalar(value: object) -> bool:
    # NaN and infinity are accepted by json.loads but are not JSON, so they would not index.
    return isinstance(value, (str, int, bool)) or (isinstance(value, float) and math.isfinite(value))


def one_line(text: object, limit: int = 300) -> str:
    """A dead letter's detail is one short line, whatever a library put in its message."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def corrupt(kind: str, exc: BaseException) -> InputError:
    return InputError(Reason.CORRUPT_FILE, one_line(f"unreadable {kind}: {type(exc).__name__}: {exc}"))


def properties(**values: object) -> dict:
    """Document properties for RawDocument.metadata: set strings (trimmed, one line) and counts only."""
    out: dict = {}
    for key, value in values.items():
        if isinstance(value, str):
            value = one_line(value, 1000)
        if value not in (None, "", []) and (is_scalar(value) or isinstance(value, list)):
            out[key] = value
    return out


def table_row(cells: Iterable[str]) -> str:
    """One table row as a line; trailing empty cells go, inner ones keep the columns in place."""
    texts = [" ".join(cell.split()) for cell in cells]
    while texts and not texts[-1]:
        texts.pop()
    return CELL_SEPARATOR.join(texts)


def text_or_none(value: object) -> str | None:
    return one_line(value, 1000) if isinstance(value, str) and value.strip() else None


def check_zip(data: bytes, kind: str, required: tuple[str, ...], max_unpacked: int) -> None:
    """Refuse what is not a zip of this kind, or inflates past max_unpacked, before a library loads every part."""
    if data.startswith(OLE_MAGIC):
        if _ENCRYPTED_PACKAGE in data:
            raise InputError(Reason.ENCRYPTED, f"{kind} is password-protected: save it without a password and replay")
        what = f"{kind} is an OLE compound file, a legacy binary Office file"
        raise InputError(Reason.CORRUPT_FILE, f"{what}: save it as .{kind.lower()}")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    # NotImplementedError: a zip version or feature zipfile does not support (this or a corrupt header says so)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        ValueError,
        OSError,
        EOFError,
        struct.error,
        NotImplementedError,
    ) as exc:
        raise InputError(Reason.CORRUPT_FILE, one_line(f"{kind} is not a readable zip archive: {exc}")) from None
    names = {info.filename for info in infos}
    missing = [name for name in required if name not in names]
    if missing:
        raise InputError(Reason.CORRUPT_FILE, f"{kind} archive lacks {', '.join(missing)}")
    if any(info.flag_bits & 0x1 for info in infos):
        raise InputError(Reason.ENCRYPTED, f"{kind} archive is encrypted with a password")
    unpacked = sum(info.file_size for info in infos)
    if unpacked > max_unpacked:
        raise InputError(
            Reason.TOO_LARGE, f"{kind} archive unpacks to {unpacked} bytes, limit is {max_unpacked} (zip bomb?)"
        )


def parse_xml(data: bytes) -> lxml.etree._Element:
    """A package's XML part (EPUB container and OPF): no entities, no DTD, no network."""
    return lxml.etree.fromstring(data, parser=_XML_PARSER)


def markup_to_text(markup: bytes | str) -> str:
    """HTML or XHTML to plain text: blocks on their own lines, table rows as cells joined with " | ".

    Unlike the cleaner's trafilatura pass this keeps every paragraph: an e-book chapter or a mail body is all content.
    """
    if isinstance(markup, str):
        markup = markup.encode("utf-8")  # bytes: lxml then honours (or ignores) an XML encoding declaration
    try:
        root = lxml.html.document_fromstring(markup)
    except (lxml.etree.ParserError, ValueError):
        return ""  # empty or whitespace-only document
    for element in root.xpath(" | ".join(f"//{tag}" for tag in _DROPPED_TAGS)):
        element.drop_tree()
    for row in root.iter("tr"):
        line = table_row(cell.text_content() for cell in row if cell.tag in ("td", "th"))
        tail = row.tail
        row.clear()
        row.text, row.tail = line, tail
    for element in root.iter("br"):
        element.tail = "\n" + (element.tail or "")
    for element in root.iter(*_BLOCK_TAGS):
        element.text = "\n" + (element.text or "")
        element.tail = "\n\n" + (element.tail or "")
    lines = (" ".join(line.split()) for line in root.text_content().split("\n"))
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()
