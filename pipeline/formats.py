"""Reading input files into RawDocuments; every problem becomes a Rejected, never an exception."""

from __future__ import annotations

import codecs
import contextlib
import io
import json
import math
import os
import re
import stat
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import pandas as pd
import pypdf
from charset_normalizer import from_bytes
from pypdf.errors import PyPdfError

from pipeline.errors import InputError, Reason, as_input_error
from pipeline.types import RawDocument, Rejected

SUPPORTED_SUFFIXES = frozenset({".txt", ".md", ".html", ".htm", ".pdf", ".json", ".jsonl", ".csv"})

TEXT_FIELDS = ("text", "body", "content")
SOURCE_FIELDS = ("url", "id")

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
# On short Western European text charset-normalizer often ranks cp1250/cp1257 first and
# turns "naïve" into "naďve". Any candidate it returns passed its own mess threshold, and
# it does not return cp1252 for genuine Central European or Cyrillic text, so cp1252
# (the likeliest legacy encoding here) wins whenever it is among the candidates.
_PREFERRED = ("cp1252", "latin_1", "iso8859_15")

_MD_TITLE = re.compile(r"#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*")
_FENCE = re.compile(r"[ \t]{0,3}(```|~~~)")
_MARKUP = re.compile(r"<[A-Za-z!/][^>]*>")
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


def iter_files(paths: list[Path]) -> Iterator[Path]:
    """Files named or under named folders, sorted, hidden ones skipped; unsupported ones too."""
    for path in paths:
        path = Path(path)
        if not path.is_dir():
            yield path
            continue
        yield from _walk(path)


def _walk(folder: Path) -> Iterator[Path]:
    # Files and folders sorted together, so the order is the one `find | sort` would give.
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return  # vanished or unreadable folder: nothing to ingest from it
    for entry in entries:
        if entry.name.startswith("."):
            continue
        # Symlinked folders are not followed: a link loop would never end.
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path))
        else:
            yield Path(entry.path)


def read_path(path: Path, max_bytes: int, base: Path | None = None) -> Iterator[RawDocument | Rejected]:
    """Yield the records of one file. `base` is accepted for callers but unused: sources
    are absolute paths so that a document keeps its identity whatever the working dir."""
    del base
    path = Path(path)
    source = str(path.resolve())
    suffix = path.suffix.lower()
    try:
        if suffix not in SUPPORTED_SUFFIXES:
            raise InputError(Reason.UNSUPPORTED_TYPE, f"unsupported file type {suffix or '(none)'!r}")
        data = _read_bytes(path, max_bytes)
        ctype = "html" if suffix == ".htm" else suffix[1:]
        if ctype == "pdf":
            yield _read_pdf(data, source)
            return
        text = _decode(data)
        if not text.strip():
            raise InputError(Reason.EMPTY, "file holds only whitespace")
        if ctype in ("txt", "md", "html"):
            yield RawDocument(
                source=source,
                body=text,
                content_type=ctype,
                is_markup=ctype == "html",
                title=_md_title(text) if ctype == "md" else None,
            )
        elif ctype == "json":
            yield from _read_json(text, source)
        elif ctype == "jsonl":
            yield from _read_jsonl(text, source)
        else:
            yield from _read_csv(text, source)
    except Exception as exc:  # noqa: BLE001 - whatever a reader raises is this file's dead letter, never the job's
        error = as_input_error(exc)
        yield Rejected(source=source, stage="read", reason=error.reason.value, detail=error.message)


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise InputError(Reason.NOT_FOUND, "not a regular file")
        # Size is checked before reading so that a huge upload never lands in memory.
        if st.st_size > max_bytes:
            raise InputError(Reason.TOO_LARGE, f"file is {st.st_size} bytes, limit is {max_bytes}")
        if st.st_size == 0:
            raise InputError(Reason.EMPTY, "file is 0 bytes")
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(Reason.NOT_FOUND, "file does not exist") from None
    except OSError as exc:
        # No better code exists for an unreadable file; the detail says what happened.
        raise InputError(Reason.NOT_FOUND, f"cannot read file: {exc.strerror or exc}") from None


def _decode(data: bytes) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise InputError(
                    Reason.DECODE_ERROR, f"{encoding} byte-order mark, but invalid {encoding} at byte {exc.start}"
                ) from None
    if b"\x00" in data:
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


def _md_title(text: str) -> str | None:
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (m := _MD_TITLE.fullmatch(line)):
            return m.group(1).strip()
    return None


def _read_pdf(data: bytes, source: str) -> RawDocument:
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise InputError(Reason.CORRUPT_PDF, "PDF is encrypted with a password")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        meta = reader.metadata
        title = meta.title if meta is not None else None
    except _PDF_ERRORS as exc:
        raise InputError(Reason.CORRUPT_PDF, f"unreadable PDF: {type(exc).__name__}: {exc}") from None
    body = "\n\n".join(p for p in pages if p)
    if not body:
        raise InputError(Reason.EMPTY, f"PDF has {len(pages)} page(s) but no extractable text")
    title = title.strip() if isinstance(title, str) and title.strip() else None
    return RawDocument(source=source, body=body, content_type="pdf", title=title)


def _read_json(text: str, source: str) -> Iterator[RawDocument | Rejected]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _json_error(exc, "") from None
    if isinstance(value, dict):
        yield _guarded_record(value, source, 1, "json", "record 1")
    elif isinstance(value, list):
        if not value:
            raise InputError(Reason.EMPTY, "JSON array has no records")
        for n, item in enumerate(value, 1):
            yield _guarded_record(item, source, n, "json", f"record {n}")
    else:
        raise InputError(
            Reason.INVALID_JSON, f"top-level JSON value is a {type(value).__name__}, not an object or array"
        )


def _read_jsonl(text: str, source: str) -> Iterator[RawDocument | Rejected]:
    # Split on "\n" only: JSON strings may hold raw U+2028 that splitlines() would cut on.
    # A record's number is its line number, so fixing or removing one line renumbers nothing.
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as exc:
            error = _json_error(exc, f"line {n}: ")
            yield Rejected(source=f"{source}#{n}", stage="read", reason=error.reason.value, detail=error.message)
            continue
        yield _guarded_record(value, source, n, "jsonl", f"line {n}")


def _read_csv(text: str, source: str) -> Iterator[RawDocument | Rejected]:
    # Every cell as a string: CSV carries no types, and inferred floats turn ids into "12.0".
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InputError(Reason.INVALID_CSV, f"cannot parse CSV: {exc}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if not any(f in frame.columns for f in TEXT_FIELDS):
        raise InputError(
            Reason.MISSING_TEXT_FIELD,
            f"CSV has no {'/'.join(TEXT_FIELDS)} column (columns: {', '.join(frame.columns)})",
        )
    if frame.empty:
        raise InputError(Reason.EMPTY, "CSV has a header but no rows")
    for n, row in enumerate(frame.to_dict("records"), 1):
        yield _guarded_record({k: v for k, v in row.items() if v != ""}, source, n, "csv", f"row {n}")


def _json_error(exc: ValueError | RecursionError, where: str) -> InputError:
    """json.loads's failures as reasons: syntax, nesting past the recursion limit, over-long integers."""
    if isinstance(exc, json.JSONDecodeError):
        # a JSON-lines record is one line: its line number is already in `where`
        at = f"column {exc.colno}" if where else f"line {exc.lineno} column {exc.colno}"
        return InputError(Reason.INVALID_JSON, f"{where}invalid JSON at {at}: {exc.msg}")
    if isinstance(exc, RecursionError):
        return InputError(Reason.TOO_DEEP, f"{where}JSON nested deeper than the parser's recursion limit")
    error = as_input_error(exc)
    return InputError(error.reason, f"{where}{error.message}")


def _guarded_record(obj: object, file_source: str, n: int, ctype: str, where: str) -> RawDocument | Rejected:
    # One record that trips a bug loses that record, not the rest of its file.
    try:
        return _record(obj, file_source, n, ctype, where)
    except Exception as exc:  # noqa: BLE001 - the record's dead letter carries the exception
        error = as_input_error(exc)
        return Rejected(f"{file_source}#{n}", "read", error.reason.value, f"{where}: {error.message}")


def _record(obj: object, file_source: str, n: int, ctype: str, where: str) -> RawDocument | Rejected:
    fallback = f"{file_source}#{n}"
    if not isinstance(obj, dict):
        return Rejected(
            source=fallback,
            stage="read",
            reason=Reason.INVALID_JSON.value,
            detail=f"{where}: expected an object, got {type(obj).__name__}",
        )
    text_key = next((k for k in TEXT_FIELDS if isinstance(obj.get(k), str) and obj[k].strip()), None)
    if text_key is None:
        present = [k for k in TEXT_FIELDS if k in obj]
        why = f"{', '.join(present)} empty or not a string" if present else "no such field"
        return Rejected(
            source=fallback,
            stage="read",
            reason=Reason.MISSING_TEXT_FIELD.value,
            detail=f"{where}: needs a non-empty {'/'.join(TEXT_FIELDS)} ({why})",
        )
    body = obj[text_key]
    source_key = next((k for k in SOURCE_FIELDS if isinstance(obj.get(k), (str, int)) and str(obj[k]).strip()), None)
    title = obj.get("title")
    consumed = {text_key, source_key, "title", "published"}
    return RawDocument(
        source=str(obj[source_key]).strip() if source_key else fallback,
        body=body,
        content_type=ctype,
        is_markup=body.lstrip().startswith("<") and _MARKUP.search(body) is not None,
        title=title.strip() if isinstance(title, str) and title.strip() else None,
        published=parse_datetime(obj.get("published")),
        metadata={k: v for k, v in obj.items() if k not in consumed and _is_scalar(v)},
    )


def _is_scalar(value: object) -> bool:
    # NaN and infinity are accepted by json.loads but are not JSON, so they would not index.
    return isinstance(value, (str, int, bool)) or (isinstance(value, float) and math.isfinite(value))


def parse_datetime(value: object) -> datetime | None:
    """ISO 8601 or RFC 2822 to an aware datetime; naive values are taken as UTC."""
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = parsedate_to_datetime(value)
        except (ValueError, TypeError, IndexError, OverflowError):
            return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
