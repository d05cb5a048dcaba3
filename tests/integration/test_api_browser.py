"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against the real stack:
sign in, upload through the page, watch the job end partial with its failed share shown, replay a fixed
dead letter, search in each mode, see plotly draw the charts (legends, points) and follow the window's
width, and delete a document from the documents page. docs/screenshots.py takes the README's pictures."""

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


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
def site(stack):
    """The app on a real server over the test stack, for the whole module: (url, API client, key headers)."""
    from api.app import create_app

    key = key_for(stack, "browser")
    with serve(create_app(stack.settings())) as url, api_client(stack) as client:
        yield url, client, key


def _signed_in(browser, url: str, key: dict, width: int = 1280):
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.add_cookies([{"name": "docpipe_key", "value": key["X-API-Key"], "url": url}])
    return context.new_page()


def _ended(page, state: str) -> None:
    """The job page followed its job to `state` and reloaded itself (to show its dead letters): the page as
    rendered at the end, so that the next navigation does not race that reload."""
    from playwright.sync_api import expect

    expect(page.locator(f"[data-poll-job][data-state={state}]")).to_have_count(1, timeout=SLOW)
    page.wait_for_load_state()
    expect(page.locator("[data-poll-job] [data-field=state]")).to_have_text(state)


def _legend(chart) -> list[str]:
    return [t.strip() for t in chart.locator(".legendtext").all_text_contents()]


def test_dashboard_upload_progress_replay_search_and_charts(stack, site, browser, tmp_path):
    from playwright.sync_api import expect

    url, client, key = site
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}/ui/jobs")
    expect(page).to_have_url(re.compile(r"/login"))
    page.fill("input[name=key]", "dpk_wrong")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("not valid")
    page.fill("input[name=key]", key["X-API-Key"])
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/ui/jobs$"))
    page.wait_for_load_state()  # the upload form is wired by then
    assert "docpipe_key" not in page.evaluate("document.cookie")  # HttpOnly: scripts cannot read it

    # upload through the page; the job page follows the job to its end by polling
    good = tmp_path / "capybara-report.txt"
    good.write_text(article(700) + " Capybara herds crossed the river delta at dawn.")
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    page.set_input_files("input[type=file]", [str(good), str(bad)])
    page.click("text=Upload and ingest")
    page.wait_for_url(re.compile(r"/ui/jobs/[0-9a-f]{32}$"))
    _ended(page, "partial")
    expect(page.locator(".letters")).to_contain_text("invalid_json")
    # the bar shows the partial job's outcome: half indexed (green), half failed (red)
    bar = page.locator(".bar.big")
    expect(bar.locator("[data-seg=done]")).to_have_attribute("style", re.compile(r"width: 50(\.0)?%"))
    expect(bar.locator("[data-seg=failed]")).to_have_attribute("style", re.compile(r"width: 50(\.0)?%"))
    assert bar.locator("[data-seg=failed]").evaluate("e => getComputedStyle(e).backgroundColor") == ("rgb(192, 38, 45)")

    # fix the file where the server keeps it, then replay from the page
    job_id = page.url.rsplit("/", 1)[1]
    inputs = client.get(f"/v1/jobs/{job_id}", headers=key).json()
    stored = next(p for p in _inputs(stack, inputs["id"]) if p.endswith("broken.json"))
    Path(stored).write_text(json.dumps({"id": "fixed-in-browser", "text": article(701)}))
    page.click("button[data-replay]")
    page.wait_for_url(lambda u: u.endswith("/ui/jobs/" + job_id) is False and "/ui/jobs/" in u)
    _ended(page, "succeeded")

    # the jobs list picks up a job started elsewhere without a reload
    page.goto(f"{url}/ui/jobs")
    other = upload(client, key, {"later.txt": article(702)})
    row = page.locator(f"tr[data-job='{other}']")
    expect(row.locator("[data-field=state]")).to_have_text("succeeded", timeout=SLOW)
    expect(row.locator("[data-seg=done]")).to_have_attribute("style", re.compile(r"width: 100(\.0)?%"))
    page.reload()  # the chart is drawn when the page loads: this one counts the jobs just finished
    chart = page.locator(".chart")
    expect(chart.locator("svg.main-svg").first).to_be_visible()  # plotly drew it
    assert _legend(chart) == ["indexed", "unchanged", "duplicates", "failed", "partial job"]
    assert chart.locator(".barlayer .point").count() >= 2  # bars of the buckets that had items
    caption = page.locator("[data-chart-caption]")
    expect(caption).to_contain_text("1 partial, 0 failed")

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

    # a watched entity's sentiment over ten days, a negative burst and its alert
    _seed_watch(stack, "browser")
    page.goto(f"{url}/ui/watch")
    entity = page.locator("section[data-entity=ACME]")
    chart = entity.locator(".chart")
    expect(chart.locator("svg.main-svg").first).to_be_visible()
    assert _legend(chart) == ["items", "mean sentiment", "alert"]
    assert chart.locator(".scatterlayer .trace").nth(0).locator("path.point").count() == 10  # one a day
    assert chart.locator(".scatterlayer .trace").nth(1).locator("path.point").count() == 1  # the alert
    assert chart.locator(".barlayer .point").count() == 10
    expect(entity.locator(".alerts")).to_contain_text("negative share 80%")

    for path in ("/ui/index", "/ui/models", "/ui/documents"):
        page.goto(f"{url}{path}")
        expect(page.locator("main")).to_be_visible()
    page.goto(f"{url}/logout")
    page.goto(f"{url}/ui/jobs")
    expect(page).to_have_url(re.compile(r"/login"))
    assert wait_job(client, key, other)["state"] == "succeeded"


def _widths(page) -> tuple[float, float]:
    """(the activity chart's drawing, the card's content box) in CSS pixels."""
    return page.evaluate(
        """() => {
            const chart = document.querySelector(".chart");
            return [chart.querySelector("svg.main-svg").getBoundingClientRect().width,
                    chart.closest(".card").clientWidth];
        }"""
    )


def test_the_chart_fills_its_card_at_any_window_width(stack, site, browser):
    from playwright.sync_api import expect

    url, client, key = site
    listed = client.get("/v1/jobs", headers=key).json()
    if not any(j["finished_at"] for j in listed.get("items", listed.get("jobs", []))):  # run alone: a job to chart
        assert wait_job(client, key, upload(client, key, {"for-the-chart.txt": article(710)}))["state"] == "succeeded"
    page = _signed_in(browser, url, key, width=1280)
    page.goto(f"{url}/ui/jobs")
    expect(page.locator(".chart svg.main-svg").first).to_be_visible()
    for width in (1280, 700, 1100):
        page.set_viewport_size({"width": width, "height": 900})
        # plotly redraws on the window's resize event, a moment later
        page.wait_for_function(
            """() => {
                const chart = document.querySelector(".chart");
                const svg = chart.querySelector("svg.main-svg").getBoundingClientRect().width;
                const card = chart.closest(".card");
                const style = getComputedStyle(card);
                const inner = card.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
                return Math.abs(svg - inner) < 2;
            }"""
        )
        drawn, card = _widths(page)
        assert card - 60 < drawn <= card  # the card's width less its padding, at every window width
    assert _widths(page)[0] > 900 and page.evaluate("document.documentElement.scrollWidth") <= 1100
    page.context.close()


def test_a_document_is_deleted_from_the_documents_page(stack, site, browser):
    from playwright.sync_api import expect

    url, client, key = site
    job = upload(client, key, {"to-delete.txt": article(720) + " Okapi sightings by the river."})
    assert wait_job(client, key, job)["state"] == "succeeded"
    page = _signed_in(browser, url, key)
    page.goto(f"{url}/ui/documents")
    row = page.locator("tr[data-document]", has_text="to-delete.txt")
    expect(row).to_have_count(1)

    page.once("dialog", lambda dialog: dialog.dismiss())  # a change of mind deletes nothing
    row.locator("button[data-delete]").click()
    expect(row.locator("button[data-delete]")).to_be_enabled()
    assert row.locator("[data-delete-status]").text_content() == ""

    messages = []
    page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
    row.locator("button[data-delete]").click()
    link = row.locator("[data-delete-status] a")
    expect(link).to_have_text(re.compile(r"^delete job [0-9a-f]{8} queued$"))
    assert messages and "to-delete.txt" in messages[0]
    link.click()
    _ended(page, "succeeded")
    expect(page.locator("[data-poll-job]")).to_contain_text("delete")
    expect(page.locator("[data-field=done]")).to_have_text("1")

    page.goto(f"{url}/ui/documents")
    expect(page.locator("tr[data-document]", has_text="to-delete.txt")).to_have_count(0)
    hits = client.get("/v1/search", headers=key, params={"q": "okapi sightings", "mode": "bm25"}).json()
    assert all(h["name"] != "to-delete.txt" for h in hits["hits"])
    page.context.close()


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
