"""Metadata filters (`--where desk=markets,rates`, `published>=2024-01-01`, `n<5`) and facets, as
Elasticsearch filter clauses and terms aggregations over the chunk fields of pipeline/metadata.py.

Syntax: KEY OP VALUE with OP one of = (any of comma-separated values; `\\,` is a literal comma),
!= (none of), >, >=, <, <= (a number or an ISO date). Conditions are ANDed. Built-in keys name the
chunk's own fields; `meta.KEY` reaches a user key that shares a built-in's name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from pipeline.errors import PermanentError
from pipeline.metadata import MAX_LIST_ITEMS, MetadataError, as_date, as_number, as_text, normalise_key

# Built-in key -> (chunk field, kind). A kind of "date" takes ranges; "keyword" takes = and != only.
BUILTINS: dict[str, tuple[str, str]] = {
    "source": ("source", "keyword"),
    "label": ("label", "keyword"),
    "language": ("language", "keyword"),
    "content_type": ("content_type", "keyword"),
    "published": ("published", "date"),
    "entity": ("entities", "keyword"),  # TYPE:text, as `docpipe extract` writes them (ORG:Acme Corp)
    "entity_text": ("entity_text", "keyword"),
}
USER_PREFIX = "meta."
RANGE_OPS = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
MAX_CONDITIONS = 32
MAX_FACETS = 16
MAX_FACET_SIZE = 100

_CONDITION = re.compile(r"\s*([^=!<>]+?)\s*(!=|>=|<=|=|>|<)\s*(.*?)\s*", re.DOTALL)
_COMMA = re.compile(r"(?<!\\),")


class FilterError(PermanentError, ValueError):
    """A filter or facet that cannot be parsed or applied; the API answers 422, the CLI prints it."""


@dataclass(frozen=True)
class Condition:
    key: str  # normalised user key, or a built-in's name
    op: str  # one of = != > >= < <=
    values: tuple[str, ...]  # as typed (commas split), several only for = and !=
    builtin: bool = False

    def __str__(self) -> str:
        prefix = "" if self.builtin or self.key not in BUILTINS else USER_PREFIX
        return f"{prefix}{self.key}{self.op}{','.join(self.values)}"


def parse_where(expressions: Iterable[str] | None) -> list[Condition]:
    """Parse `KEY OP VALUE` strings; FilterError (one line, with the expression) on bad syntax."""
    conditions = [_parse_one(text) for text in expressions or []]
    if len(conditions) > MAX_CONDITIONS:
        raise FilterError(f"{len(conditions)} filters; at most {MAX_CONDITIONS}")
    return conditions


def to_clauses(conditions: Sequence[Condition]) -> list[dict]:
    """Elasticsearch filter clauses, one per condition (all must hold); [] for no condition."""
    return [_clause(c) for c in conditions]


def where_clauses(expressions: Iterable[str] | None) -> list[dict]:
    """parse_where and to_clauses in one step: what a shell passes as `filters=`."""
    return to_clauses(parse_where(expressions))


def facet_field(key: str) -> str:
    """The keyword field a facet on `key` counts (FilterError for a key that cannot be faceted)."""
    name, builtin = _key(key)
    if not builtin:
        return f"meta.{name}"
    field, kind = BUILTINS[name]
    if kind != "keyword":
        raise FilterError(f"cannot facet on {name!r}: facets count keyword values; filter dates with ranges")
    return field


def facet_aggs(keys: Iterable[str] | None, size: int = 10) -> dict:
    """A terms aggregation per requested key (deduplicated, in order), named by the key as asked; each bucket
    counts documents (distinct doc_id, exact below the precision threshold), not chunks."""
    wanted = list(dict.fromkeys(k.strip() for k in keys or [] if k.strip()))
    if len(wanted) > MAX_FACETS:
        raise FilterError(f"{len(wanted)} facets asked for; at most {MAX_FACETS}")
    if not 1 <= size <= MAX_FACET_SIZE:
        raise FilterError(f"facet size must be between 1 and {MAX_FACET_SIZE}, got {size}")
    return {
        key: {
            "terms": {"field": facet_field(key), "size": size, "order": {"docs": "desc"}},
            "aggs": {"docs": {"cardinality": {"field": "doc_id", "precision_threshold": 3000}}},
        }
        for key in wanted
    }


def read_facets(aggregations: dict | None, keys: Iterable[str]) -> dict[str, list[dict]]:
    """{"desk": [{"value": "markets", "count": 3}, ...]}: documents per value, most first, then by value."""
    found = aggregations or {}
    out: dict[str, list[dict]] = {}
    for key in dict.fromkeys(k.strip() for k in keys if k.strip()):
        buckets: list[dict] = [
            {"value": str(b.get("key_as_string", b["key"])), "count": _documents(b)}
            for b in (found.get(key) or {}).get("buckets", [])
        ]
        out[key] = sorted(buckets, key=lambda b: (-b["count"], b["value"]))
    return out


def _documents(bucket: dict) -> int:
    return int((bucket.get("docs") or {}).get("value", bucket["doc_count"]))


def _parse_one(text: str) -> Condition:
    if not isinstance(text, str) or "\x00" in text:
        raise FilterError(f"filter {text!r} is not text")
    found = _CONDITION.fullmatch(text)
    if not found:
        raise FilterError(f"cannot read filter {text!r}: write KEY=VALUE, KEY!=VALUE or KEY>=VALUE (also >, <, <=)")
    raw_key, op, raw_value = found.groups()
    key, builtin = _key(raw_key)
    values = tuple(v.strip().replace("\\,", ",") for v in _COMMA.split(raw_value))
    if not raw_value or any(not v for v in values):
        raise FilterError(f"filter {text!r} has an empty value")
    if len(values) > MAX_LIST_ITEMS:
        raise FilterError(f"filter {text!r} lists {len(values)} values; at most {MAX_LIST_ITEMS}")
    if op in RANGE_OPS and len(values) > 1:
        raise FilterError(f"filter {text!r}: {op} compares with one value (commas are for = and !=)")
    condition = Condition(key, op, values, builtin)
    _clause(condition)  # a value a range cannot compare is a parse error, reported with the expression
    return condition


def _key(raw: str) -> tuple[str, bool]:
    explicit = raw.lower().startswith(USER_PREFIX)
    try:
        key = normalise_key(raw[len(USER_PREFIX) :] if explicit else raw)
    except MetadataError as exc:
        raise FilterError(str(exc)) from None
    return key, (not explicit and key in BUILTINS)


def _clause(c: Condition) -> dict:
    if c.builtin:
        field, kind = BUILTINS[c.key]
        if kind == "keyword":
            if c.op in RANGE_OPS:
                raise FilterError(f"filter {c}: {c.key} takes = or != only")
            return _equality(c, {"terms": {field: list(c.values)}})
        return _date_condition(c, field)
    if c.op in RANGE_OPS:
        value = c.values[0]
        number = as_number(value)
        if number is not None:
            return {"range": {f"meta_num.{c.key}": {RANGE_OPS[c.op]: number}}}
        return _date_range(c, f"meta_date.{c.key}", value)
    clause: dict = {"terms": {f"meta.{c.key}": [as_text(v) for v in c.values]}}
    numbers = [n for n in (as_number(v) for v in c.values) if n is not None]
    if numbers:  # 5 matches a stored 5, 5.0 or "05" alike
        numeric = {"terms": {f"meta_num.{c.key}": numbers}}
        clause = {"bool": {"should": [clause, numeric], "minimum_should_match": 1}}
    return _equality(c, clause)


def _equality(c: Condition, clause: dict) -> dict:
    # != keeps documents without the key: "not on the markets desk" includes those on no desk.
    return {"bool": {"must_not": [clause]}} if c.op == "!=" else clause


def _date_condition(c: Condition, field: str) -> dict:
    if c.op in RANGE_OPS:
        return _date_range(c, field, c.values[0])
    each = [_date_range(Condition(c.key, "=", (v,), c.builtin), field, v) for v in c.values]
    clause = each[0] if len(each) == 1 else {"bool": {"should": each, "minimum_should_match": 1}}
    return _equality(c, clause)


def _date_range(c: Condition, field: str, value: str) -> dict:
    """A range on a date field; a bare date means the whole day (`<= 2024-01-31` includes its evening)."""
    stamp = as_date(value)
    if stamp is None:
        wanted = "an ISO date" if c.builtin else "a number or an ISO date"
        raise FilterError(f"filter {c}: {value!r} is not {wanted} (such as 2024-01-31 or 2024-01-31T09:30)")
    if len(stamp) > 10:
        bounds = {"gte": stamp, "lte": stamp} if c.op in ("=", "!=") else {RANGE_OPS[c.op]: stamp}
        return {"range": {field: bounds}}
    day = date.fromisoformat(stamp)
    start, end = day.isoformat(), (day + timedelta(days=1)).isoformat()
    bounds = {
        "=": {"gte": start, "lt": end},
        "!=": {"gte": start, "lt": end},
        ">": {"gte": end},
        ">=": {"gte": start},
        "<": {"lt": start},
        "<=": {"lt": end},
    }[c.op]
    return {"range": {field: bounds}}
