"""User metadata of a document: normalised keys, checked limits, merge-patch, and the indexed form.

Every source (records, uploads, feeds, folders) and every edit (PATCH, `documents set-meta`) goes
through `check_metadata`, so SQL holds one shape and the index can rely on it. Over-limit input is a
MetadataError: the API answers 422, the CLI prints it, ingest dead-letters the item (`invalid_metadata`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path

from pipeline.errors import InputError, Reason
from pipeline.types import storable

# Limits (docs/metadata.md). Keys become Elasticsearch field names (meta.KEY, meta_num.KEY,
# meta_date.KEY): bounded count and length keep a tenant from exploding the mapping.
MAX_KEYS = 64
MAX_KEY_CHARS = 64
# Under Elasticsearch's 32 KiB cap on one keyword term even when every character takes 4 bytes.
MAX_VALUE_CHARS = 4096
MAX_LIST_ITEMS = 100

_NOT_KEY_CHAR = re.compile(r"[^\w-]+")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
# A date, optionally with a time: what `date.fromisoformat`/`datetime.fromisoformat` read and
# Elasticsearch's default date format agrees with once the time is put in UTC.
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?")

Scalar = str | int | float | bool


class MetadataError(InputError, ValueError):
    """Metadata over a documented limit or of a shape docpipe does not index."""

    def __init__(self, message: str):
        super().__init__(Reason.INVALID_METADATA, message)

    def __reduce__(self):  # pickles with its one argument (InputError's takes two)
        return (type(self), (self.message,))


def normalise_key(key: object) -> str:
    """Lowercase, runs of characters other than letters, digits, '_' and '-' as one '_' (so a CSV header
    "Published Date" and a query `published_date` agree); no dots, which Elasticsearch reads as paths."""
    if not isinstance(key, str):
        raise MetadataError(f"metadata keys are strings, got {key!r}")
    normal = _NOT_KEY_CHAR.sub("_", key.strip().lower()).strip("_")
    if not normal:
        raise MetadataError(f"metadata key {key!r} has no letter or digit: use letters, digits, '_' or '-'")
    if len(normal) > MAX_KEY_CHARS:
        raise MetadataError(f"metadata key {normal[:20]!r}… is longer than {MAX_KEY_CHARS} characters: shorten it")
    return normal


def check_metadata(raw: Mapping | None, *, allow_null: bool = False) -> dict:
    """The metadata in normal form: keys normalised, values scalars or lists of scalars, within the limits.

    None and empty values are dropped (absent and empty mean the same to a filter), unless `allow_null`
    (a merge patch, where null deletes the key). Dates become ISO strings.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise MetadataError(f"metadata must be an object of key/value pairs, got {type(raw).__name__}")
    out: dict = {}
    seen: dict[str, object] = {}
    for key, value in raw.items():
        name = normalise_key(key)
        if name in seen:
            raise MetadataError(f"metadata keys {seen[name]!r} and {key!r} both normalise to {name!r}: rename one")
        seen[name] = key
        if value is None:
            if allow_null:
                out[name] = None
            continue
        normal = _value(name, value)
        if normal not in ("", []):
            out[name] = normal
    if len(out) > MAX_KEYS:
        raise MetadataError(f"metadata has {len(out)} keys; at most {MAX_KEYS}: drop some")
    return out


def merge_patch(current: Mapping | None, patch: Mapping) -> dict:
    """RFC 7396 merge patch on flat metadata: a key set to null is removed, others replace the old value."""
    changes = check_metadata(patch, allow_null=True)
    merged = {k: v for k, v in (current or {}).items() if k not in changes}
    merged.update({k: v for k, v in changes.items() if v is not None})
    return check_metadata(merged)


def index_fields(meta: Mapping | None) -> dict:
    """Chunk fields for the metadata: `meta` (flattened: every value as a string, for equality, any-of
    and facets), `meta_num` (numbers, and strings that read as numbers) and `meta_date` (ISO dates),
    typed by dynamic templates so that ranges compare numbers and instants, not strings."""
    text: dict = {}
    numbers: dict = {}
    dates: dict = {}
    for key, value in (meta or {}).items():
        items = value if isinstance(value, list) else [value]
        text[key] = [as_text(v) for v in items] if isinstance(value, list) else as_text(value)
        nums = [n for n in (as_number(v) for v in items) if n is not None]
        stamps = [d for d in (as_date(v) for v in items) if d is not None]
        if nums:
            numbers[key] = nums if isinstance(value, list) else nums[0]
        if stamps:
            dates[key] = stamps if isinstance(value, list) else stamps[0]
    return {"meta": text, "meta_num": numbers, "meta_date": dates}


def as_text(value: Scalar) -> str:
    """How a value reads in the `meta` field and in equality filters: true/false, 5 for 5.0."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


def as_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def as_date(value: object) -> str | None:
    """An ISO date string as Elasticsearch reads it (a time with an offset moved to UTC), else None."""
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value.strip()):
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None  # 2024-02-30 and the like: a string, not a date
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds")


def _value(key: str, value: object):
    if isinstance(value, list | tuple | set | frozenset):
        items = [_scalar(key, v) for v in value if v is not None]
        if len(items) > MAX_LIST_ITEMS:
            raise MetadataError(f"metadata {key!r} lists {len(items)} values; at most {MAX_LIST_ITEMS}")
        return [v for v in dict.fromkeys(items) if v != ""]
    return _scalar(key, value)


def _scalar(key: str, value: object) -> Scalar:
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MetadataError(f"metadata {key!r} is {value}: only finite numbers are stored")
        return value
    if isinstance(value, str):
        text = storable(value).strip()
        if len(text) > MAX_VALUE_CHARS:
            raise MetadataError(
                f"metadata {key!r} is {len(text)} characters long; at most {MAX_VALUE_CHARS} "
                "(long text belongs in the document's body)"
            )
        return text
    raise MetadataError(
        f"metadata {key!r} is a {type(value).__name__}: values are strings, numbers, booleans or lists of them"
    )


def path_parts(inputs: list[str], file_path: str) -> list[str]:
    """The folders between the ingested folder among `inputs` that holds `file_path` and the file:
    `reports/2024/q1.pdf` under the folder ingested gives ["reports", "2024"]; [] for a file given itself."""
    file = Path(file_path)
    for given in sorted(inputs, key=len, reverse=True):  # the deepest input that holds the file
        try:
            relative = file.relative_to(Path(given))
        except ValueError:
            continue
        return list(relative.parts[:-1])[:MAX_LIST_ITEMS]
    return []
