"""Topics over /v1 and `docpipe topics`: defined by terms, paged, a series per topic, all within one tenant."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from pipeline.monitor import LexiconScorer, score_documents, score_topics, topics, watchlist
from tests.monitor_support import news_item
from tests.unit.api_support import Api

START = datetime(2024, 3, 4, tzinfo=UTC)


@pytest.fixture
def api(tmp_path):
    return Api(tmp_path)


def test_topics_are_defined_listed_paged_charted_and_removed_per_tenant(api):
    acme, other = api.key("acme"), api.key("other")
    for name in ("rates", "earnings", "bank regulation"):
        r = api.client.put(f"/v1/topics/{name}", headers=acme, json={"terms": ["central bank", name]})
        assert r.status_code == 200, r.text
    assert r.json()["name"] == "bank_regulation" and r.json()["terms"] == ["central bank", "bank regulation"]
    assert api.client.put("/v1/topics/%20", headers=acme, json={}).json()["error"] == "invalid_topic"

    first = api.client.get("/v1/topics?limit=2", headers=acme).json()
    assert [t["name"] for t in first["items"]] == ["bank_regulation", "earnings"]
    rest = api.client.get(f"/v1/topics?limit=2&cursor={first['next_cursor']}", headers=acme).json()
    assert [t["name"] for t in rest["items"]] == ["rates"] and rest["next_cursor"] is None
    assert api.client.get("/v1/topics", headers=other).json()["items"] == []

    with api.session() as s:
        docs = [
            news_item("acme", f"https://news.example/{i}", text, START + timedelta(hours=i))
            for i, text in enumerate(
                [
                    "The central bank warned of losses as rates rose.",
                    "The central bank kept rates unchanged.",
                    "Earnings improved this quarter.",
                ]
            )
        ]
        s.add_all(docs)
        s.flush()
        score_documents(s, docs, LexiconScorer(0.2), watchlist.matcher(s, "acme"))
        score_topics(s, docs, topics.live_topic_classifier(s, "acme"))

    buckets = api.client.get("/v1/topics/rates/series?by=hour", headers=acme).json()
    assert [(b["items"], b["negative_share"]) for b in buckets] == [(1, 1.0), (1, 0.0)]
    assert api.client.get("/v1/topics/rates/series", headers=other).status_code == 404

    assert api.client.delete("/v1/topics/rates", headers=other).status_code == 404
    assert api.client.delete("/v1/topics/rates", headers=acme).status_code == 204
    assert [t["name"] for t in api.client.get("/v1/topics", headers=acme).json()["items"]] == [
        "bank_regulation",
        "earnings",
    ]


def test_topics_cli_adds_lists_and_charts(api, monkeypatch):
    from cli.main import app

    monkeypatch.setenv("DOCPIPE_DATABASE_URL", api.settings.database_url)
    monkeypatch.setenv("DOCPIPE_DATA_DIR", str(api.settings.data_dir))
    from pipeline.config import get_settings

    get_settings.cache_clear()
    runner = CliRunner()
    r = runner.invoke(app, ["topics", "add", "Rates", "--terms", "central bank, interest rates", "-t", "acme"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["topics", "list", "-t", "acme", "--json"])
    assert [(t["name"], t["terms"]) for t in json.loads(r.output)] == [("rates", ["central bank", "interest rates"])]
    r = runner.invoke(app, ["topics", "series", "nope", "-t", "acme"])
    assert r.exit_code != 0 and "no topic nope" in r.output
    get_settings.cache_clear()


def test_the_topics_pages_chart_each_topic_with_its_alert_and_a_missing_topic_says_so(api):
    from pipeline.monitor import SpikeRule, evaluate_topics
    from pipeline.types import utcnow
    from tests.unit.api_support import charts_in, trace

    now = utcnow().replace(minute=30, second=0, microsecond=0)
    with api.session() as s:
        topics.add(s, "acme", "rates", "central bank")
        topics.add(s, "acme", "earnings", "quarterly results")
        docs = []
        for hour in range(30):  # a calm day of rate news, then six hours of bad ones
            at = now - timedelta(hours=30 - hour)
            text = "The central bank warned of losses." if hour >= 24 else "The central bank met on Tuesday."
            docs += [news_item("acme", f"https://news.example/{hour}/{k}", text, at) for k in range(2)]
        s.add_all(docs)
        s.flush()
        score_documents(s, docs, LexiconScorer(0.2), watchlist.matcher(s, "acme"))
        touched = score_topics(s, docs, topics.live_topic_classifier(s, "acme"))
        rule = SpikeRule(window_hours=6, baseline_hours=24, sigma=2.0, min_items=5, min_baseline_windows=3)
        assert [a.topic for a in evaluate_topics(s, "acme", touched, now, rule)] == ["rates"]

    from api.auth import COOKIE

    api.client.cookies.set(COOKIE, api.key("acme")["X-API-Key"])
    hdr = api.key("acme")
    [alert] = api.client.get("/v1/alerts?topic=Rates", headers=hdr).json()["items"]
    assert (alert["kind"], alert["topic"], alert["entity"]) == ("topic_negative_share_spike", "rates", None)
    assert api.client.get("/v1/alerts?topic=earnings", headers=hdr).json()["items"] == []
    overview = api.client.get("/ui/topics")
    assert overview.status_code == 200 and 'href="/ui/topics/rates"' in overview.text
    page = api.client.get("/ui/topics/rates")
    [figure] = charts_in(page.text)
    assert sum(trace(figure, "items")["y"]) == 60
    assert "negative share 100%" in page.text  # the alert, listed under the chart
    assert "There is no topic nope" in api.client.get("/ui/topics/nope").text
