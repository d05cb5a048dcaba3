"""Scoring runs after an ingest job finishes (real workers): entity tags and lexicon sentiment per item,
duplicates left out, the CLI's watchlist and series; scoring again changes nothing."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from pipeline.store.db import session_scope
from pipeline.store.models_monitor import DocumentSentiment, EntityMention, WatchEntity
from pipeline.types import document_id

pytestmark = pytest.mark.integration

ITEMS = [
    ("https://news.example/1", "Apple shares plunged after losses and a lawsuit", "2024-05-06T09:00:00Z"),
    (
        "https://news.example/2",
        "$AAPL reported record profit and improved margins, analysts said",
        "2024-05-06T15:00:00Z",
    ),
    ("https://news.example/3", "Microsoft will hold its annual meeting on Tuesday in Redmond", "2024-05-07T10:00:00Z"),
    ("https://news.example/4", "the board said it would act on the report next week", "2024-05-07T11:00:00Z"),
]


def _cli(*args):
    from cli.main import app

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_ingested_items_get_tags_and_sentiment(stack, tmp_path):
    tenant = f"t-score-{uuid.uuid4().hex[:6]}"
    url = stack.env["DOCPIPE_DATABASE_URL"]
    assert (
        json.loads(_cli("watch", "add", "aapl", "--names", "Apple, Apple Inc", "--tenant", tenant, "--json"))["ticker"]
        == "AAPL"
    )
    _cli("watch", "add", "MSFT", "--names", "Microsoft", "--tenant", tenant)
    _cli("watch", "add", "ON", "--tenant", tenant)  # "on" and "it" in the items must not match
    feed = tmp_path / "feed.jsonl"
    lines = [
        {"url": u, "title": t.split(" ")[0], "text": t + ". " + "Markets were open all day." * 3, "published": p}
        for u, t, p in ITEMS
    ]
    lines.append({**lines[0], "url": "https://mirror.example/1"})  # the same story, syndicated
    feed.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    job = stack.run_job([feed], tenant)
    assert (job.state, job.done, job.skipped) == ("succeeded", 4, 1)

    ids = [document_id(tenant, u) for u, _, _ in ITEMS]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # score_job runs after the job's final commit
        with session_scope(url) as s:
            scored = {
                r.document_id: r for r in s.scalars(select(DocumentSentiment).where(DocumentSentiment.tenant == tenant))
            }
        if len(scored) == 4:
            break
        time.sleep(0.3)
    assert set(scored) == set(ids)  # the syndicated copy is a duplicate: one story counts once
    assert [scored[i].label for i in ids] == ["negative", "positive", "neutral", "neutral"]
    assert all(r.scorer == "lexicon:lm" for r in scored.values())
    with session_scope(url) as s:
        tickers = {e.id: e.ticker for e in s.scalars(select(WatchEntity).where(WatchEntity.tenant == tenant))}
        mentions = sorted(
            (tickers[m.entity_id], ids.index(m.document_id), m.matched, m.label)
            for m in s.scalars(select(EntityMention).where(EntityMention.tenant == tenant))
        )
    assert mentions == [
        ("AAPL", 0, "Apple", "negative"),
        ("AAPL", 1, "$AAPL", "positive"),
        ("MSFT", 2, "Microsoft", "neutral"),
    ]

    from workers.tasks_monitor import score_job

    score_job.run(job.id)  # again, in this process: nothing changes
    with session_scope(url) as s:
        again = {
            r.document_id: r.scored_at
            for r in s.scalars(select(DocumentSentiment).where(DocumentSentiment.tenant == tenant))
        }
        assert (
            s.scalar(select(EntityMention.document_id).where(EntityMention.tenant == tenant).offset(3).limit(1)) is None
        )
    assert again == {i: r.scored_at for i, r in scored.items()}

    days = json.loads(_cli("watch", "series", "AAPL", "--by", "day", "--tenant", tenant, "--json"))["buckets"]
    assert [(d["start"][:10], d["items"], d["negative_share"], d["mean_sentiment"]) for d in days] == [
        ("2024-05-06", 2, 0.5, 0.0)
    ]
    assert json.loads(_cli("alerts", "--tenant", tenant, "--json")) == []
    listed = json.loads(_cli("watch", "list", "--tenant", tenant, "--json"))
    assert [(e["ticker"], e["names"]) for e in listed] == [
        ("AAPL", ["Apple", "Apple Inc"]),
        ("MSFT", ["Microsoft"]),
        ("ON", []),
    ]
    _cli("watch", "remove", "ON", "--tenant", tenant)
    assert [e["ticker"] for e in json.loads(_cli("watch", "list", "--tenant", tenant, "--json"))] == ["AAPL", "MSFT"]
