"""A docpipe API over a throwaway SQLite file, with tasks recorded instead of sent (unit tests)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from migrations.runner import upgrade
from pipeline.config import Settings
from pipeline.store.db import session_scope


class AnsweringRedis:
    """A Redis that answers /healthz's ping, so that a unit test's health is Elasticsearch's and SQL's alone."""

    def ping(self) -> bool:
        return True


class Api:
    def __init__(self, tmp: Path, **overrides):
        # nothing listens on port 1: a broker and an Elasticsearch that refuse at once, unless a test names its own
        services = {"redis_url": "redis://127.0.0.1:1/0", "elasticsearch_url": "http://127.0.0.1:1"}
        self.settings = Settings(
            data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'api.db'}", **{**services, **overrides}
        )
        upgrade(self.settings.sql_url)
        self.sent: list[str] = []
        from api.app import create_app

        self.app = create_app(self.settings, enqueue=self.sent.append)
        self.ctx = self.app.state.ctx
        self.ctx.__dict__["redis"] = AnsweringRedis()
        self.client = TestClient(self.app)

    def session(self):
        return session_scope(self.settings.sql_url)

    def key(self, tenant: str) -> dict:
        from pipeline.store import apikeys as keys

        with self.session() as s:
            _, key = keys.create_key(s, tenant)
        return {"X-API-Key": key}


def seed_sentiment(session, tenant: str, ticker: str, points: list[tuple], alert_at=None) -> None:
    """A watched entity with scored mentions at (time, label, score) and, optionally, one alert."""
    from datetime import timedelta

    from pipeline.monitor import watchlist
    from pipeline.monitor.scoring import epoch_hour
    from pipeline.store.models import Document
    from pipeline.store.models_monitor import Alert, EntityMention

    entity = watchlist.add(session, tenant, ticker, [ticker.title()])
    for i, (at, label, score) in enumerate(points):
        doc_id = f"{abs(hash((tenant, ticker, i))):032d}"[:32]
        session.add(
            Document(
                id=doc_id,
                tenant=tenant,
                source=f"{ticker}-item-{i}",
                content_type="json",
                text="t",
                content_hash=f"h{i}",
                status="indexed",
                cluster_id=doc_id,
            )
        )
        session.flush()
        session.add(
            EntityMention(
                entity_id=entity.id,
                document_id=doc_id,
                tenant=tenant,
                at=at,
                hour=epoch_hour(at),
                label=label,
                score=score,
                matched=ticker,
            )
        )
    if alert_at is not None:
        session.add(
            Alert(
                tenant=tenant,
                entity_id=entity.id,
                ticker=entity.ticker,
                episode=1,
                window_start=alert_at - timedelta(hours=6),
                window_end=alert_at,
                items=5,
                negatives=4,
                negative_share=0.8,
                baseline_mean=0.2,
                baseline_std=0.1,
                deviations=6.0,
            )
        )
    session.flush()


def charts_in(page: str) -> list[dict]:
    """The plotly figures a dashboard page hands to the browser, parsed back from their data-chart attributes."""
    import html
    import json
    import re

    return [json.loads(html.unescape(m)) for m in re.findall(r"data-chart='([^']*)'", page)]


def trace(figure: dict, name: str) -> dict:
    """The trace of `figure` that the legend calls `name`."""
    return next(t for t in figure["data"] if t["name"] == name)
