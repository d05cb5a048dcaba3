"""One poll of a feed: fetch conditionally, parse, and spool the items as a JSON lines file that
the ordinary ingest job reads (so feed items get the same clean → dedup → chunk → embed → index,
counters and dead letters as any other input)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.sources.feeds import FeedItem, parse_feed
from pipeline.sources.fetch import FetchPolicy, fetch
from pipeline.types import utcnow


@dataclass
class PollOutcome:
    changed: bool  # True when `path` holds items to ingest
    message: str
    path: Path | None = None
    url: str = ""
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    items: int = 0
    skipped: list[str] = field(default_factory=list)
    identities: list[str] = field(default_factory=list)  # the items' sources, when `path` holds them


def poll_feed(
    url: str,
    policy: FetchPolicy,
    spool_dir: Path,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    body_hash: str | None = None,
    meta: dict | None = None,
) -> PollOutcome:
    result = fetch(url, policy, etag, last_modified)
    if result.not_modified:
        return PollOutcome(
            False,
            "not modified (HTTP 304)",
            url=result.url,
            etag=result.etag,
            last_modified=result.last_modified,
            body_hash=body_hash,
        )
    digest = hashlib.sha256(result.body).hexdigest()
    state: dict[str, Any] = {
        "url": result.url,
        "etag": result.etag,
        "last_modified": result.last_modified,
        "body_hash": digest,
    }
    if digest == body_hash:
        # servers without validators send the same bytes again: nothing to ingest
        return PollOutcome(False, "unchanged (same content as the last poll)", **state)
    feed = parse_feed(result.body, result.content_type, result.url)
    note = f" ({len(feed.skipped)} skipped: {'; '.join(feed.skipped[:3])})" if feed.skipped else ""
    if not feed.items:
        return PollOutcome(False, f"{feed.format} feed with no items{note}", skipped=feed.skipped, **state)
    path = spool_items(spool_dir, feed.items, {**(meta or {}), "feed": result.url})
    return PollOutcome(
        True,
        f"{feed.format} feed, {len(feed.items)} items{note}",
        path,
        items=len(feed.items),
        skipped=feed.skipped,
        identities=[item.identity for item in feed.items],
        **state,
    )


def item_record(item: FeedItem, meta: dict) -> dict:
    body = item.body
    if item.is_html and not body.lstrip().startswith("<"):
        body = f"<div>{body}</div>"  # the reader treats a body as markup when it starts with a tag
    record: dict = {
        "url": item.identity,
        "title": item.title,
        "text": body,
        "published": item.published.isoformat() if item.published else None,
    }
    record.update({k: v for k, v in (("link", item.link), ("guid", item.guid)) if v})
    record.update({k: v for k, v in (("categories", item.categories), ("author", item.author)) if v})
    record.update(meta)
    return record


def spool_items(spool_dir: Path, items: list[FeedItem], meta: dict) -> Path:
    """Write items to spool_dir/<UTC timestamp>.jsonl atomically (a reader never sees half a file)."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    stamp = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
    path = spool_dir / f"{stamp}.jsonl"
    tmp = path.with_suffix(".part")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(item_record(item, meta), ensure_ascii=False) + "\n" for item in items)
    os.replace(tmp, path)
    return path.resolve()


def prune_spool(spool_dir: Path, keep: int) -> list[Path]:
    """Drop all but the newest `keep` item files (names sort by time)."""
    files = sorted(spool_dir.glob("*.jsonl")) if spool_dir.is_dir() else []
    gone = files[:-keep] if keep > 0 else files
    for path in gone:
        path.unlink(missing_ok=True)
    return gone
