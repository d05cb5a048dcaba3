"""Cursor pagination for every list under /v1: `?limit=&cursor=` in, `{"items": [...], "next_cursor": ...}` out.

Keyset, not offset: a page starts strictly after the sort key of the last item of the page before (the cursor
carries that key, base64url-encoded JSON), so rows inserted meanwhile never shift a page onto items already
seen or past items not yet seen. Every sort key ends in a unique column, so no two rows tie.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Query
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from api.errors import ApiError
from api.schemas import Page

__all__ = ["MAX_LIMIT", "Page", "PageParams", "decode_cursor", "encode_cursor", "keyset", "page", "page_params"]
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
_CURSOR = r"^[A-Za-z0-9_-]{1,1024}$"


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: str | None


def page_params(
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"Items per page, 1 to {MAX_LIMIT}"),
    cursor: str | None = Query(None, pattern=_CURSOR, description="`next_cursor` of the page before"),
) -> PageParams:
    """The query parameters of a list route (use it with Depends)."""
    return PageParams(limit, cursor)


def encode_cursor(values: Sequence[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    raw = json.dumps(plain, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, kinds: Sequence[type]) -> list[Any]:
    """The sort key a cursor carries, each value of the type its column holds; a 422 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(kinds):
            raise ValueError("wrong length")
        return [_typed(v, kind) for v, kind in zip(values, kinds, strict=True)]
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ApiError(
            422, "cursor is not one this list gave: pass `next_cursor` of the page before, unchanged", "invalid_cursor"
        ) from None


def _typed(value: Any, kind: type) -> Any:
    if kind is datetime:
        if not isinstance(value, str):
            raise TypeError("a time is a string")
        return datetime.fromisoformat(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("not an integer")
        return value
    if not isinstance(value, kind):
        raise TypeError(f"not a {kind.__name__}")
    return value


def _after(columns: Sequence[InstrumentedAttribute], values: Sequence[Any], descending: bool):
    """Rows strictly past `values` in the (lexicographic) order of `columns`."""
    first, rest = columns[0], columns[1:]
    past = first < values[0] if descending else first > values[0]
    if not rest:
        return past
    return or_(past, and_(first == values[0], _after(rest, values[1:], descending)))


def keyset(
    session: Session,
    stmt: Select,
    columns: Sequence[InstrumentedAttribute],
    params: PageParams,
    descending: bool = True,
) -> tuple[list, str | None]:
    """One page of the rows `stmt` selects (one entity per row), ordered by `columns` (the last one unique),
    and the cursor of the next page (None on the last)."""
    if params.cursor:
        kinds = [c.type.python_type for c in columns]
        stmt = stmt.where(_after(columns, decode_cursor(params.cursor, kinds), descending))
    order = [c.desc() if descending else c.asc() for c in columns]
    rows = list(session.scalars(stmt.order_by(*order).limit(params.limit + 1)))
    if len(rows) <= params.limit:
        return rows, None
    rows = rows[: params.limit]
    return rows, encode_cursor([getattr(rows[-1], c.key) for c in columns])


def page(
    session: Session,
    stmt: Select,
    columns: Sequence[InstrumentedAttribute],
    params: PageParams,
    render: Callable[[Any], Any],
    descending: bool = True,
) -> dict:
    """The response body of a list route: the page's rows rendered, and the next cursor."""
    rows, cursor = keyset(session, stmt, columns, params, descending)
    return {"items": [render(r) for r in rows], "next_cursor": cursor}
