"""Bulk writes of chunk documents, and the per-document maintenance around them."""

from __future__ import annotations

import hashlib
import itertools
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import Elasticsearch, SerializationError, TransportError
from elasticsearch.helpers import streaming_bulk

from pipeline.chunk import pages_of
from pipeline.errors import BulkIndexError, ConfigError, PermanentError, ServiceUnavailable
from pipeline.index.guard import AUTH_STATUSES, BLOCKED, RETRYABLE_STATUSES, blocked_message, guard
from pipeline.language import text_field, title_field
from pipeline.metadata import index_fields
from pipeline.types import chunk_id, utcnow

# Dead-letter rows keep the reason; a vector preview inside it can run to kilobytes.
_MAX_REASON = 2000


def text_hash(text: str) -> str:
    """Fingerprint of a chunk's text, kept with the chunk so `index verify` can tell a chunk that holds
    other text than SQL's without reading the text back (128 bits: collisions are not a concern)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass
class WriteReport:
    ok: int = 0
    failures: list[dict] = field(default_factory=list)  # {"_id", "status", "error": {"type", "reason"}}


def chunk_source(
    doc,
    ordinal: int,
    char_start: int,
    char_end: int,
    text: str,
    embedding,
    indexed_at: str,
    content_hash: str | None = None,
) -> dict:
    """The fields of one chunk of `doc` (a stored Document) as Elasticsearch holds them; ingest and reindex
    both build them here, so a rebuilt index carries exactly what ingest writes.

    `content_hash` is the text the chunk was cut from (default: the document's current hash).
    """
    return {
        "tenant": doc.tenant,
        "doc_id": doc.id,
        "ordinal": ordinal,
        "source": doc.source,
        "content_type": doc.content_type,
        "title": doc.title,
        "text": text,
        "published": doc.published.isoformat() if doc.published else None,
        "indexed_at": indexed_at,
        "char_start": char_start,
        "char_end": char_end,
        "content_hash": doc.content_hash if content_hash is None else content_hash,
        # In _source only: the mapping is not dynamic, so the field needs no mapping change (and no new
        # config hash, no reindex); verification reads it back with source filtering.
        "text_hash": text_hash(text),
        "cluster_id": doc.cluster_id,
        **_language_fields(doc, text),
        "pages": pages_of(char_start, char_end, getattr(doc, "page_starts", None)),
        **index_fields(doc.meta),  # meta, meta_num, meta_date: filters and facets (docs/metadata.md)
        "embedding": embedding,
    }


def _language_fields(doc, text: str) -> dict:
    """The chunk's language, and its text and title again under the fields its language's analyzer indexes."""
    language = getattr(doc, "language", None)  # documents read before migration 0013 (and stand-ins) have none
    fields: dict = {"language": language}
    text_name, title_name = text_field(language), title_field(language)
    if text_name is not None and title_name is not None:
        fields[text_name] = text
        if doc.title:
            fields[title_name] = doc.title
    return fields


def chunk_action(index_alias: str, doc_fields: dict) -> dict:
    """An index (upsert-by-id) action for one chunk; `_id` follows pipeline.types.chunk_id.

    An `_id` among the fields is checked and moved to the action: Elasticsearch refuses
    metadata fields inside a document.
    """
    fields = dict(doc_fields)
    try:
        expected = chunk_id(fields["tenant"], fields["doc_id"], fields["ordinal"])
    except KeyError as exc:
        raise ValueError(f"chunk fields need tenant, doc_id and ordinal; missing {exc}") from None
    given = {"_id": fields.pop("_id", expected), "chunk_id": fields.setdefault("chunk_id", expected)}
    for name, value in given.items():
        if value != expected:
            raise ValueError(f"{name} {value!r} does not match tenant/doc_id/ordinal ({expected!r})")
    reserved = sorted(name for name in fields if name.startswith("_"))
    if reserved:
        raise ValueError(f"chunk fields cannot start with '_' (Elasticsearch metadata): {reserved}")
    vector = fields.get("embedding")
    if vector is not None and hasattr(vector, "tolist"):
        fields["embedding"] = vector.tolist()
    fields.setdefault("indexed_at", utcnow())
    return {"_op_type": "index", "_index": index_alias, "_id": expected, "_source": fields}


def write_chunks(
    es: Elasticsearch,
    actions: Iterable[dict],
    *,
    chunk_size: int = 500,
    max_retries: int = 5,
    initial_backoff: float = 0.5,
    max_backoff: float = 10,
    give_up_retryable: bool = False,
) -> WriteReport:
    """Bulk-write actions that all target one index or alias (normally the write alias).

    Per-item rejections (bad field values, wrong vector size, conflicts) come back in the
    report for the caller to dead-letter. Items still refused with 429/502-504 after the
    helper's backoff raise BulkIndexError (retryable) carrying the failures seen so far, unless
    `give_up_retryable` (the caller's last try): they then come back in the report like any rejection;
    an unreachable cluster raises ServiceUnavailable.
    """
    stream = iter(actions)
    first = next(stream, None)
    report = WriteReport()
    if first is None:
        return report
    target = first.get("_index")
    if not target:
        raise ValueError("bulk actions must name their target index or alias in _index")
    pending = _Pending()
    results = streaming_bulk(
        es,
        _prepared(itertools.chain([first], stream), target, pending),
        # The target goes in the URL rather than in each action line: the same request for
        # Elasticsearch, and some API-compatible servers resolve aliases only there.
        index=target,
        chunk_size=chunk_size,
        max_retries=max_retries,
        initial_backoff=initial_backoff,
        max_backoff=max_backoff,
        retry_on_status=tuple(sorted(RETRYABLE_STATUSES)),
        raise_on_error=False,
        raise_on_exception=False,
    )
    try:
        for ok, item in results:
            info = next(iter(item.values()))
            item_id = pending.settle(info.get("_id"))
            if ok:
                report.ok += 1
                continue
            failure = _failure(item_id, info)
            report.failures.append(failure)
            # The helper reports a failed request as one failure per item, marked by "exception".
            if give_up_retryable and "exception" not in info and _passing(failure):
                continue  # refused item by item on the last try: the caller dead-letters its document
            _raise_if_not_item_level(failure, "exception" in info, report, target)
    except SerializationError:
        raise
    except TransportError as exc:
        raise ServiceUnavailable(
            f"bulk write to {target}: Elasticsearch unreachable ({type(exc).__name__}: {exc})"
        ) from exc
    return report


def delete_stale_chunks(
    es: Elasticsearch,
    alias: str,
    tenant: str,
    doc_id: str,
    keep_content_hash: str | None,
    *,
    refresh_first: bool = True,
) -> int:
    """Delete the document's chunks whose content_hash differs from keep (all when None).

    delete_by_query only sees refreshed documents, so chunks written moments ago would
    survive it; pass refresh_first=False after refreshing once for a whole batch. A chunk
    rewritten after that refresh is safe either way: its newer version makes the delete
    a version conflict, which `conflicts=proceed` skips.
    """
    if refresh_first:
        refresh(es, alias)
    query: dict[str, Any] = {"bool": {"filter": [{"term": {"tenant": tenant}}, {"term": {"doc_id": doc_id}}]}}
    if keep_content_hash is not None:
        query["bool"]["must_not"] = [{"term": {"content_hash": keep_content_hash}}]
    with guard(f"delete stale chunks of {doc_id}"):
        resp = es.delete_by_query(index=alias, query=query, refresh=True, conflicts="proceed")
    if resp.get("failures"):
        raise BulkIndexError(f"deleting stale chunks of {doc_id} partly failed", list(resp["failures"]))
    return int(resp.get("deleted", 0))


def count_chunks(es: Elasticsearch, alias: str, tenant: str | None = None, doc_id: str | None = None) -> int:
    terms = [{"term": {name: value}} for name, value in (("tenant", tenant), ("doc_id", doc_id)) if value is not None]
    with guard(f"count chunks in {alias}"):
        if terms:
            resp = es.count(index=alias, query={"bool": {"filter": terms}})
        else:
            resp = es.count(index=alias)
    return int(resp["count"])


def refresh(es: Elasticsearch, alias: str) -> None:
    with guard(f"refresh {alias}"):
        es.indices.refresh(index=alias)


class _Pending:
    """Ids sent but not yet answered, oldest first.

    Elasticsearch echoes `_id` on every bulk item; a server that leaves it off a failed item
    gets the oldest unanswered id, which is right whenever the helper has not held items
    back for a retry.
    """

    def __init__(self) -> None:
        self._ids: OrderedDict[str, int] = OrderedDict()

    def add(self, item_id: str) -> None:
        self._ids[item_id] = self._ids.get(item_id, 0) + 1

    def settle(self, item_id: str | None) -> str | None:
        if item_id is None:
            if not self._ids:
                return None
            item_id = next(iter(self._ids))
        left = self._ids.get(item_id)
        if left is not None:
            if left > 1:
                self._ids[item_id] = left - 1
            else:
                del self._ids[item_id]
        return item_id


def _prepared(actions: Iterable[dict], target: str, pending: _Pending) -> Iterator[dict]:
    for action in actions:
        if action.get("_index", target) != target:
            raise ValueError(f"one write goes to one target: {action.get('_index')!r} is not {target!r}")
        if action.get("_id") in (None, ""):
            raise ValueError("every chunk action needs an _id, or a retry would duplicate it")
        prepared = {key: value for key, value in action.items() if key != "_index"}
        pending.add(str(action["_id"]))
        yield prepared


def _failure(item_id: str | None, info: dict) -> dict:
    status = int(info.get("status") or 500)
    error = info.get("error")
    if isinstance(error, dict):
        kind = str(error.get("type") or "unknown")
        reason = str(error.get("reason") or "")
        cause = (error.get("caused_by") or {}).get("reason")
        if cause and cause not in reason:
            reason = f"{reason}: {cause}"
    else:
        # The whole request failed; the helper gives every item the exception's text.
        exc = info.get("exception")
        kind = str((getattr(exc, "message", "") or type(exc).__name__) if exc else "bulk_request_failed")
        reason = str(error or exc or "")
    return {"_id": item_id, "status": status, "error": {"type": kind, "reason": reason[:_MAX_REASON]}}


def _passing(failure: dict) -> bool:
    """A refusal that passes by itself: load shedding, a gateway away, a write block."""
    return failure["status"] in RETRYABLE_STATUSES or failure["error"]["type"] == BLOCKED


def _raise_if_not_item_level(failure: dict, whole_request: bool, report: WriteReport, target: str) -> None:
    status, kind = failure["status"], failure["error"]["type"]
    summary = f"bulk write to {target}: {kind} (status {status})"
    if kind == BLOCKED:
        written = f"{report.ok} written, {len(report.failures)} refused so far"
        raise BulkIndexError(f"{blocked_message(summary, failure['error']['reason'])}; {written}", report.failures)
    if status in RETRYABLE_STATUSES or (whole_request and status >= 500):
        # Stop here: the helper already backed off, and pressing on would pile more
        # requests onto a cluster that is shedding load.
        raise BulkIndexError(
            f"{summary}, backoff exhausted; {report.ok} written, {len(report.failures)} failed so far", report.failures
        )
    # What follows is not the document's fault: dead-lettering every chunk would hide it.
    if status in AUTH_STATUSES or kind == "index_not_found_exception":
        raise ConfigError(f"{summary}: {failure['error']['reason']}")
    if whole_request:
        raise PermanentError(f"{summary}: the whole request was refused: {failure['error']['reason']}")
