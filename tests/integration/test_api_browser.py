"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against the real stack:
sign in, upload through the page, watch the job succeed, replay a fixed dead letter, search in each
mode, and see the charts drawn. With DOCPIPE_SCREENSHOTS=DIR the main pages are saved there as PNG."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC
from pathlib import Path

import pytest

from tests.fixtures import article
from tests.integration.api_support import api_client, key_for, serve, upload, wait_job

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SLOW = 180_000  # ms: a job runs through both real workers on a shared CPU


@pytest.fixture()
def browser():
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        message = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it; a missing browser there is a broken build
        pytest.skip(message)

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def _shoot(page, name: str) -> None:
    folder = os.environ.get("DOCPIPE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def test_dashboard_upload_progress_replay_search_and_charts(stack, browser, tmp_path):
    from playwright.sync_api import expect

    from api.app import create_app

    key = key_for(stack, "browser")
    with serve(create_app(stack.settings())) as url, api_client(stack) as client:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/ui/jobs")
        expect(page).to_have_url(re.compile(r"/login"))
        page.fill("input[name=key]", "dpk_wrong")
        page.click("button[type=submit]")
        expect(page.locator(".error")).to_contain_text("not valid")
        page.fill("input[name=key]", key["X-API-Key"])
        page.click("button[type=submit]")
        expect(page).to_have_url(re.compile(r"/ui/jobs$"))
        assert "docpipe_key" not in page.evaluate("document.cookie")  # HttpOnly: scripts cannot read it

        # upload through the page; the job page follows the job to its end by polling
        good = tmp_path / "capybara-report.txt"
        good.write_text(article(700) + " Capybara herds crossed the river delta at dawn.")
        bad = tmp_path / "broken.json"
        bad.write_text("{not json")
        page.set_input_files("input[type=file]", [str(good), str(bad)])
        page.click("text=Upload and ingest")
        page.wait_for_url(re.compile(r"/ui/jobs/[0-9a-f]{32}$"))
        expect(page.locator("[data-poll-job] [data-field=state]")).to_have_text("partial", timeout=SLOW)
        expect(page.locator(".letters")).to_contain_text("invalid_json")
        expect(page.locator(".bar.big span")).to_have_attribute("style", re.compile(r"width: 100(\.0)?%"))
        _shoot(page, "job")

        # fix the file where the server keeps it, then replay from the page
        job_id = page.url.rsplit("/", 1)[1]
        inputs = client.get(f"/v1/jobs/{job_id}", headers=key).json()
        stored = next(p for p in _inputs(stack, inputs["id"]) if p.endswith("broken.json"))
        Path(stored).write_text(json.dumps({"id": "fixed-in-browser", "text": article(701)}))
        page.click("button[data-replay]")
        page.wait_for_url(lambda u: u.endswith("/ui/jobs/" + job_id) is False and "/ui/jobs/" in u)
        expect(page.locator("[data-poll-job] [data-field=state]")).to_have_text("succeeded", timeout=SLOW)

        # the jobs list picks up a job started elsewhere without a reload
        page.goto(f"{url}/ui/jobs")
        other = upload(client, key, {"later.txt": article(702)})
        row = page.locator(f"tr[data-job='{other}']")
        expect(row.locator("[data-field=state]")).to_have_text("succeeded", timeout=SLOW)
        expect(row.locator(".bar span")).to_have_attribute("style", re.compile(r"width: 100(\.0)?%"))
        chart = page.locator("svg.chart")
        expect(chart.locator("circle.point").first).to_be_visible()
        assert chart.locator("polyline.series").count() == 1
        assert chart.locator("g.alert").count() >= 1  # the partial job is marked on the activity chart
        _shoot(page, "jobs")

        # search: each mode finds the uploaded document; BM25 marks the query words
        page.goto(f"{url}/ui/search")
        page.fill("input[name=q]", "capybara herds river")
        for mode in ("bm25", "knn", "hybrid"):
            page.check(f"input[name=mode][value={mode}]")
            page.click("form.search button[type=submit]")
            first = page.locator(".hit").first
            expect(first).to_contain_text("capybara-report.txt")
            if mode == "bm25":
                expect(first.locator("mark", has_text=re.compile("^capybara$", re.I)).first).to_be_visible()
        _shoot(page, "search")

        # a watched entity's sentiment over ten days, a negative burst and its alert
        _seed_watch(stack, "browser")
        page.goto(f"{url}/ui/watch")
        entity = page.locator("section[data-entity=ACME]")
        expect(entity.locator("svg.chart polyline.series")).to_have_count(1)
        assert entity.locator("svg.chart circle.point").count() == 10
        assert entity.locator("svg.chart g.alert").count() == 1
        expect(entity.locator(".alerts")).to_contain_text("negative share 80%")
        _shoot(page, "watch")

        for path, name in (("/ui/index", "index"), ("/ui/models", "models"), ("/ui/documents", "documents")):
            page.goto(f"{url}{path}")
            expect(page.locator("main")).to_be_visible()
            _shoot(page, name)
        page.goto(f"{url}/logout")
        page.goto(f"{url}/ui/jobs")
        expect(page).to_have_url(re.compile(r"/login"))
    assert wait_job(client, key, other)["state"] == "succeeded"


def _inputs(stack, job_id: str) -> list[str]:
    from pipeline.store.db import session_scope
    from pipeline.store.models import Job

    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
        return list(session.get(Job, job_id).inputs)


def _seed_watch(stack, tenant: str) -> None:
    from datetime import datetime, timedelta

    from pipeline.store.db import session_scope
    from tests.unit.api_support import seed_sentiment

    start = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=10)
    mood = [0.3, 0.2, 0.35, 0.1, 0.25, 0.2, -0.6, -0.8, -0.2, 0.1]
    points = [(start + timedelta(days=i), "negative" if m < 0 else "positive", m) for i, m in enumerate(mood)]
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
        seed_sentiment(session, tenant, "ACME", points, alert_at=start + timedelta(days=7))
