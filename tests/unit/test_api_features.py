"""Feeds, watchlist and alerts over /v1, and the per-entity sentiment charts, within one tenant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.api_support import Api, charts_in, seed_sentiment, trace


@pytest.fixture()
def api(tmp_path):
    sent: list = []
    api = Api(tmp_path)
    api.ctx.send_task = lambda name, args: sent.append((name, args))
    api.tasks = sent
    return api


def test_feeds_are_added_listed_run_and_removed_per_tenant(api):
    acme, globex = api.key("acme"), api.key("globex")
    r = api.client.post("/v1/feeds", headers=acme, json={"url": "https://news.example/rss", "every": "5m"})
    assert r.status_code == 201, r.text
    feed = r.json()
    assert (feed["tenant"], feed["kind"], feed["every_seconds"]) == ("acme", "feed", 300)
    assert [f["id"] for f in api.client.get("/v1/feeds", headers=acme).json()["items"]] == [feed["id"]]
    assert api.client.get("/v1/feeds", headers=globex).json()["items"] == []
    assert api.client.post(f"/v1/feeds/{feed['id']}/run", headers=globex).status_code == 404
    assert api.client.delete(f"/v1/feeds/{feed['id']}", headers=globex).status_code == 404
    run = api.client.post(f"/v1/feeds/{feed['id']}/run", headers=acme)
    assert run.status_code == 202 and api.tasks[0][0] == "docpipe.sources.run"
    assert api.tasks[0][1][0] == feed["id"] and api.tasks[0][1][1]  # the run carries its lease token
    assert api.client.post(f"/v1/feeds/{feed['id']}/run", headers=acme).status_code == 409  # still running
    assert api.client.delete(f"/v1/feeds/{feed['id']}", headers=acme).status_code == 204
    assert api.client.get("/v1/feeds", headers=acme).json()["items"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"url": "file:///etc/passwd"},
        {"url": "ftp://x/y"},
        {"url": "https://u:p@host/feed"},
        {"url": "https://h/f", "every": "0s"},
        {"url": "https://h/f", "every": "soon"},
    ],
)
def test_feeds_that_cannot_be_polled_are_refused_with_422(api, body):
    r = api.client.post("/v1/feeds", headers=api.key("acme"), json=body)
    assert r.status_code == 422 and r.json()["message"]


def test_watchlist_series_alerts_and_the_chart_stay_in_their_tenant(api):
    acme, globex = api.key("acme"), api.key("globex")
    r = api.client.put("/v1/watchlist/$aapl", headers=acme, json={"names": ["Apple", "Apple Inc"]})
    assert r.status_code == 200 and r.json()["ticker"] == "AAPL"
    assert api.client.put("/v1/watchlist/not a ticker", headers=acme, json={}).status_code == 422
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    days = [now - timedelta(days=d) for d in (4, 3, 2, 1)]
    with api.session() as s:
        seed_sentiment(
            s,
            "acme",
            "AAPL",
            [
                (days[0], "positive", 0.6),
                (days[1], "neutral", 0.0),
                (days[2], "negative", -0.7),
                (days[3], "negative", -0.9),
            ],
            alert_at=days[2] + timedelta(hours=6),
        )
    series = api.client.get("/v1/watchlist/AAPL/series", headers=acme, params={"by": "day"}).json()
    assert [row["items"] for row in series] == [1, 1, 1, 1] and series[-1]["mean_sentiment"] == -0.9
    assert api.client.get("/v1/watchlist/AAPL/series", headers=globex).status_code == 404
    assert [a["entity"] for a in api.client.get("/v1/alerts", headers=acme).json()["items"]] == ["AAPL"]
    assert api.client.get("/v1/alerts", headers=globex).json()["items"] == []
    assert api.client.get("/v1/watchlist", headers=globex).json()["items"] == []

    api.client.post("/login", data={"key": acme["X-API-Key"], "next": "/ui/watch"})
    page = api.client.get("/ui/watch").text
    (figure,) = charts_in(page)
    assert trace(figure, "mean sentiment")["y"] == [0.6, 0.0, -0.7, -0.9] and len(trace(figure, "alert")["x"]) == 1
    assert "negative share 80%" in page
    assert api.client.delete("/v1/watchlist/AAPL", headers=globex).status_code == 404
    assert api.client.delete("/v1/watchlist/AAPL", headers=acme).status_code == 204


def _model(api, tenant: str, task: str, status: str = "ready", model_id: str | None = None) -> str:
    import uuid

    from pipeline.store.models_ml import ModelRecord

    with api.session() as s:
        row = ModelRecord(
            id=model_id or uuid.uuid4().hex,
            tenant=tenant,
            task=task,
            base_model="/m/base",
            labels=["neg", "pos"],
            data_hash="d",
            status=status,
            artefact_path="/nowhere",
        )
        s.add(row)
        return row.id


def test_models_are_listed_promoted_and_rolled_back_within_the_tenant(api, monkeypatch):
    from api import v1_models

    acme, globex = api.key("acme"), api.key("globex")
    first, second = _model(api, "acme", "sentiment"), _model(api, "acme", "sentiment")
    training = _model(api, "acme", "sentiment", status="training")
    other = _model(api, "globex", "sentiment")
    assert {m["id"] for m in api.client.get("/v1/models", headers=acme).json()["items"]} == {first, second, training}
    assert api.client.get(f"/v1/models/{other}", headers=acme).status_code == 404
    assert api.client.post(f"/v1/models/{other}/promote", headers=acme).status_code == 404
    assert api.client.post(f"/v1/models/{training}/promote", headers=acme).status_code == 409
    broken = api.client.post(f"/v1/models/{first}/promote", headers=acme)
    assert broken.status_code == 409 and "cannot be promoted" in broken.json()["message"]  # its folder is gone

    monkeypatch.setattr(v1_models, "unusable", lambda model: None)  # as if both folders loaded
    assert api.client.post(f"/v1/models/{first}/promote", headers=acme).json()["live"] is True
    assert api.client.post(f"/v1/models/{second}/promote", headers=acme).json()["live"] is True
    back = api.client.post("/v1/models/rollback", headers=acme, params={"task": "sentiment"})
    assert back.status_code == 200 and back.json()["id"] == first
    assert api.client.post("/v1/models/rollback", headers=globex, params={"task": "sentiment"}).status_code == 409
    live = {m["id"] for m in api.client.get("/v1/models", headers=acme).json()["items"] if m["live"]}
    assert live == {first} and not api.client.get(f"/v1/models/{other}", headers=globex).json()["live"]


def test_an_unknown_label_is_the_same_error_from_the_api_as_from_the_cli(api):
    from pipeline.infer.labels import UnknownLabel, labels_filter

    acme = api.key("acme")
    _model(api, "acme", "sentiment")  # knows neg and pos
    with api.session() as s:
        with pytest.raises(UnknownLabel) as cli_error:
            labels_filter(s, "acme", ["pos", "positive"])
        both = labels_filter(s, "acme", ["neg", "pos", "neg"])
    clauses = both[0]["bool"]["should"]
    assert [c["bool"]["filter"] for c in clauses] == [[{"term": {"label": "neg"}}], [{"term": {"label": "pos"}}]]

    r = api.client.get("/v1/search", headers=acme, params={"q": "rates", "label": "positive"})
    assert r.status_code == 422 and r.json()["message"] == str(cli_error.value)
    assert "known labels: neg, pos" in r.json()["message"]
    r = api.client.get("/v1/search", headers=api.key("globex"), params={"q": "rates", "label": "pos"})
    assert r.status_code == 422 and "none: train" in r.json()["message"]  # another tenant's labels are not known


def test_the_watch_chart_draws_hours_when_the_data_spans_too_few_days_and_drops_old_alerts(api):
    acme = api.key("acme")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with api.session() as s:
        points = [(now - timedelta(hours=h), "negative", -0.5) for h in (1, 2, 3)]
        seed_sentiment(s, "acme", "MSFT", points, alert_at=now - timedelta(days=40))
    api.client.post("/login", data={"key": acme["X-API-Key"], "next": "/ui/watch"})
    page = api.client.get("/ui/watch").text
    (figure,) = charts_in(page)
    assert len(trace(figure, "mean sentiment")["y"]) == 3  # one per hour: by day they would be one or two points
    assert "alert" not in [t["name"] for t in figure["data"]]  # the alert ended before the chart's 30 days
