"""JSON, JSON Lines and CSV: one document per record, and one dead letter per record that cannot be one."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import datetime

from pipeline.errors import InputError, Reason, as_input_error
from pipeline.formats.common import is_scalar, parse_datetime
from pipeline.types import RawDocument, Rejected

# A record's fields by role, each role's names in order of preference; names match whatever their case ("Text",
# "URL": spreadsheet exports capitalise headers). Titles and dates under another name stay metadata too.
TEXT_FIELDS = ("text", "body", "content")
SOURCE_FIELDS = ("url", "id")
TITLE_FIELDS = ("title", "headline", "subject")
DATE_FIELDS = ("published", "published_at", "pubdate", "date", "datetime", "timestamp", "created_at")

_MARKUP = re.compile(r"<[A-Za-z!/][^>]*>")
csv.field_size_limit(2**31 - 1)  # a cell may be a whole article; the file size limit bounds it


def read_json(text: str, source: str) -> Iterator[RawDocument | Rejected]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _json_error(exc, "") from None
    if isinstance(value, dict):
        value = _wrapped_records(value)
    if isinstance(value, dict):
        yield guarded_record(value, source, 1, "json", "record 1")
    elif isinstance(value, list):
        if not value:
            raise InputError(Reason.EMPTY, "JSON array has no records")
        for n, item in enumerate(value, 1):
            yield guarded_record(item, source, n, "json", f"record {n}")
    else:
        raise InputError(
            Reason.INVALID_JSON, f"top-level JSON value is a {type(value).__name__}, not an object or array"
        )


def _wrapped_records(obj: dict) -> dict | list:
    """An export's envelope (`{"documents": [...], "total": 2}`): an object with no text field of its own whose only
    list of objects is its records. Anything else is one record."""
    if has_text_column([str(k) for k in obj]):
        return obj
    lists = [v for v in obj.values() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
    return lists[0] if len(lists) == 1 else obj


def read_jsonl(text: str, source: str) -> Iterator[RawDocument | Rejected]:
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
        yield guarded_record(value, source, n, "jsonl", f"line {n}")


def read_csv(text: str, source: str) -> Iterator[RawDocument | Rejected]:
    """One record per row, every cell a string (CSV carries no types). A row with more cells than the header (an
    unquoted delimiter in a cell) is that row's dead letter, not the file's: read by column position it would
    take another cell's value as its text or id. A shorter row lacks its last cells."""
    sep = delimiter(text)
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    try:
        names = column_names(next(rows))
    except csv.Error as exc:
        raise InputError(Reason.INVALID_CSV, f"cannot parse the CSV header: {exc}") from None
    if not has_text_column(names):
        raise InputError(
            Reason.MISSING_TEXT_FIELD,
            f"CSV has no {'/'.join(TEXT_FIELDS)} column (columns: {', '.join(names)})",
        )
    n = 0
    while True:
        try:
            row = next(rows, None)
        except csv.Error as exc:  # an unclosed quote: nothing after it can be told apart
            yield Rejected(
                f"{source}#{n + 1}",
                "read",
                Reason.INVALID_CSV.value,
                f"row {n + 1}: {exc}; the rest of the file is not read",
            )
            return
        if row is None:
            break
        if not row:
            continue  # a blank line
        n += 1
        if len(row) > len(names):
            detail = f"row {n}: {len(row)} cells where the header has {len(names)}: quote a cell that holds {sep!r}"
            yield Rejected(f"{source}#{n}", "read", Reason.INVALID_CSV.value, detail)
            continue
        yield guarded_record({k: v for k, v in zip(names, row) if v != ""}, source, n, "csv", f"row {n}")
    if n == 0:
        raise InputError(Reason.EMPTY, "CSV has a header but no rows")


def has_text_column(header: list[str]) -> bool:
    return any(name.strip().lower() in TEXT_FIELDS for name in header)


def column_names(header: list[str]) -> list[str]:
    """The header's names, stripped; an unnamed column is `column_N`, a repeated name gets `.1`, `.2`, ..."""
    names: list[str] = []
    for i, raw in enumerate(header, 1):
        name = raw.strip() or f"column_{i}"
        base, k = name, 0
        while name in names:
            k += 1
            name = f"{base}.{k}"
        names.append(name)
    return names


_DELIMITERS = (",", ";", "\t", "|")


def delimiter(text: str) -> str:
    """The CSV's delimiter, from its header line: the candidate it holds most of (European spreadsheets write `;`,
    tab-separated exports a tab); a comma when it holds none or ties."""
    header = text.split("\n", 1)[0]
    counts = [header.count(d) for d in _DELIMITERS]
    return _DELIMITERS[counts.index(max(counts))] if max(counts) > 0 else ","


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


def guarded_record(obj: object, file_source: str, n: int, ctype: str, where: str) -> RawDocument | Rejected:
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
    keys = names_of(obj)
    named = [keys[name] for name in TEXT_FIELDS if name in keys]
    text_key = next((k for k in named if isinstance(obj[k], str) and obj[k].strip()), None)
    if text_key is None:
        why = f"{', '.join(named)} empty or not a string" if named else "no such field"
        return Rejected(
            source=fallback,
            stage="read",
            reason=Reason.MISSING_TEXT_FIELD.value,
            detail=f"{where}: needs a non-empty {'/'.join(TEXT_FIELDS)} ({why})",
        )
    body = obj[text_key]

    def present(names: tuple[str, ...]) -> list[tuple[str, object]]:
        return [(keys[name], obj[keys[name]]) for name in names if name in keys]

    source_key = next((k for k, v in present(SOURCE_FIELDS) if isinstance(v, (str, int)) and str(v).strip()), None)
    title, published, metadata = described(obj, keys, {text_key, source_key})
    return RawDocument(
        source=str(obj[source_key]).strip() if source_key else fallback,
        body=body,
        content_type=ctype,
        is_markup=body.lstrip().startswith("<") and _MARKUP.search(body) is not None,
        title=title,
        published=published,
        metadata=metadata,
        origin=fallback,
    )


def names_of(obj: dict[str, object]) -> dict[str, str]:
    """A record's keys by their lowercased, stripped name; the first of "Text" and "text" wins, as in order."""
    keys: dict[str, str] = {}
    for key in obj:
        keys.setdefault(str(key).strip().lower(), key)
    return keys


def described(obj: dict, keys: dict[str, str], consumed: set) -> tuple[str | None, datetime | None, dict]:
    """A record's (or a Markdown file's front matter's) title, date and metadata: the first non-empty title field,
    the first date field that parses, and the other fields; `title` and `published` are not metadata too."""
    present = [obj[keys[name]] for name in TITLE_FIELDS if name in keys]
    title = next((v.strip() for v in present if isinstance(v, str) and v.strip()), None)
    dates = [obj[keys[name]] for name in DATE_FIELDS if name in keys]
    published = next((d for v in dates if (d := parse_datetime(v)) is not None), None)
    return title, published, _metadata(obj, {*consumed, keys.get("title"), keys.get("published")})


def _metadata(obj: dict, consumed: set) -> dict:
    """The record's other fields: scalars and lists of scalars (feed categories, tags), and the pairs of a
    nested `metadata` object; pipeline.metadata checks their limits after cleaning."""
    nested = obj.get("metadata")
    fields = {k: v for k, v in obj.items() if k not in consumed and k != "metadata"}
    if isinstance(nested, dict):
        fields.update(nested)
    elif nested is not None:
        fields["metadata"] = nested
    return {k: v for k, v in fields.items() if is_scalar(v) or (isinstance(v, list) and all(map(is_scalar, v)))}
