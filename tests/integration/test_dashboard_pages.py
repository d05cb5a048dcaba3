"""The dashboard's search filters and facets, webhooks page and topic charts in Debian's Chromium (Playwright)
against the real stack: documents with metadata go in through the upload API (a JSON batch's `meta`, a
multipart form field), a where filter and a facet click narrow the hits; a webhook endpoint registered
through the API shows with the delivery log of its test event; topics defined through the API get the items
the monitor scored after an ingest, and plotly draws their charts. Each test has a tenant of its own."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.hooks import Hook
from tests.integration.api_support import api_client, key_for, serve, wait_job
from tests.integration.test_api_browser import SLOW, _legend, _signed_in
from tests.integration.test_api_browser import browser as browser  # the module's one Chromium
from tests.unit.test_formats import make_pdf

pytestmark = pytest.mark.integration

HARBOUR = [  # (id, title, text, meta): "harbour" in each, English unless told
    ("m1", "Crane orders 2023", "Harbour crane orders slowed as shipping lines cut spending.", {"desk": "markets"}),
    ("m2", "Harbour fees", "The harbour authority raised fees for container berths.", {"desk": "markets"}),
    ("r1", "Harbour bond", "The harbour issued a ten year bond to pay for new quays.", {"desk": "rates"}),
    (
        "d1",
        "Hafenumschlag",
        "Der Umschlag im Harbour Hamburg ist im vergangenen Jahr deutlich gestiegen, weil die Reedereien mehr "
        "Container über die Elbe bringen und die Kaianlagen erweitert wurden.",
        {"desk": "markets"},
    ),
]


@pytest.fixture(scope="module")
def site(stack):
    """The app on a real server over the test stack, for the whole module: (url, API client)."""
    from api.app import create_app

    with serve(create_app(stack.settings())) as url, api_client(stack) as client:
        yield url, client


def _tenant(stack, name: str) -> dict:
    return key_for(stack, f"{name}-{uuid.uuid4().hex[:6]}")


def _until(check, what: str, timeout: float = SLOW / 1000):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f}s"
        time.sleep(0.3)
    return found


def _batch(client, key: dict, documents: list[dict]) -> str:
    r = client.post("/v1/documents", headers=key, json={"documents": documents})
    assert r.status_code == 202, r.text
    return r.json()["job_id"]


def test_a_where_filter_and_a_facet_click_narrow_the_search(stack, site, browser):
    from playwright.sync_api import expect

    url, client = site
    key = _tenant(stack, "facets")
    year = {"m1": 2023}
    batch = [
        {"id": i, "title": title, "text": text, "meta": {**meta, "year": year.get(i, 2024)}}
        for i, title, text, meta in HARBOUR
    ]
    jobs = [_batch(client, key, batch)]
    pdf = make_pdf(
        ["Harbour survey, page one: the harbour dredging plan.", "Page two: the harbour pilots"], "Harbour survey"
    )
    r = client.post(
        "/v1/documents",
        headers=key,
        files=[("files", ("survey.pdf", pdf, "application/pdf"))],
        data={"desk": "research", "year": "2024"},  # plain form fields: metadata of every document of the upload
    )
    assert r.status_code == 202, r.text
    jobs.append(r.json()["job_id"])
    assert [wait_job(client, key, job)["state"] for job in jobs] == ["succeeded", "succeeded"]

    page = _signed_in(browser, url, key)
    page.goto(f"{url}/ui/search")
    page.fill("input[name=q]", "harbour")
    page.check("input[name=mode][value=bm25]")
    page.fill("textarea[name=where]", "year>=2024")
    page.fill("input[name=facet]", "desk, language")
    page.click("form.search button[type=submit]")

    titles = page.locator(".hit .hit-head b")
    expect(titles.first).to_be_visible()
    assert set(titles.all_text_contents()) == {"Harbour fees", "Harbour bond", "Hafenumschlag", "Harbour survey"}
    desk = page.locator(".facet[data-facet=desk] a")
    assert _facet(desk) == [("markets", "2"), ("rates", "1"), ("research", "1")]  # documents, not chunks
    assert ("de", "1") in _facet(page.locator(".facet[data-facet=language] a"))
    german = page.locator(".hit", has_text="Hafenumschlag")
    expect(german.locator(".lang")).to_have_text("de")
    survey = page.locator(".hit", has_text="Harbour survey").first
    expect(survey.locator(".pages")).to_have_text(re.compile(r"^(p\. [12]|pp\. 1-2)$"))

    page.locator(".facet[data-facet=desk] a[data-value=rates]").click()  # adds desk=rates to the filters
    page.wait_for_url(re.compile(r"where=desk%3Drates"))
    assert titles.all_text_contents() == ["Harbour bond"]
    expect(page.locator("textarea[name=where]")).to_have_value("year>=2024\ndesk=rates")
    assert _facet(desk) == [("rates", "1")]
    expect(desk.first).to_have_class(re.compile(r"\bactive\b"))
    desk.first.click()  # an applied value takes its filter back
    page.wait_for_url(lambda u: "desk%3Drates" not in u)
    assert len(set(titles.all_text_contents())) == 4

    page.fill("textarea[name=where]", "year>=2024\ndesk")
    page.click("form.search button[type=submit]")
    expect(page.locator(".error[role=alert]")).to_contain_text("cannot read filter 'desk'")
    expect(page.locator(".hit")).to_have_count(0)
    page.context.close()


def _facet(links) -> list[tuple[str, str]]:
    return [
        (link.locator(".value").text_content().strip(), link.locator(".count").text_content().strip())
        for link in links.all()
    ]


def test_the_webhooks_page_lists_an_endpoint_and_its_delivery_log(stack, site, browser):
    from playwright.sync_api import expect

    url, client = site
    key = _tenant(stack, "hooks")
    with Hook() as hook:
        r = client.post("/v1/webhooks", headers=key, json={"url": hook.url, "description": "ops pager"})
        assert r.status_code == 201, r.text
        endpoint = r.json()["id"]
        assert client.post(f"/v1/webhooks/{endpoint}/test", headers=key).status_code == 202
        _until(lambda: hook.received, "the test event reached the endpoint")
        log = _until(
            lambda: [
                d
                for d in client.get(f"/v1/webhooks/{endpoint}/deliveries", headers=key).json()["items"]
                if d["state"] == "delivered"
            ],
            "the delivery was recorded",
        )
    assert [status for status, _, _ in hook.received] == [200] and len(log) == 1

    page = _signed_in(browser, url, key)
    page.goto(f"{url}/ui/webhooks")
    expect(page.locator("main h3")).to_contain_text(hook.url)
    expect(page.locator("main")).to_contain_text("ops pager")
    rows = page.locator("table.deliveries tbody tr")
    expect(rows).to_have_count(1)
    cells = [c.strip() for c in rows.first.locator("td").all_text_contents()]
    assert (cells[1], cells[3], cells[4], cells[5]) == ("webhook.test", "delivered", "1", "200")
    page.context.close()


def test_topic_pages_chart_the_items_the_monitor_scored(stack, site, browser):
    from playwright.sync_api import expect

    url, client = site
    key = _tenant(stack, "topics")
    for name, terms in {"harbour_traffic": ["container ship", "harbour crane"], "energy": ["solar panel"]}.items():
        assert client.put(f"/v1/topics/{name}", headers=key, json={"terms": terms}).status_code == 200
    noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    texts = [
        "A container ship ran aground and the harbour crane crews stopped work; losses are feared.",
        "Container ship traffic grew strongly, a record and a welcome success for the port.",
        "The harbour crane upgrade went well and productivity improved.",
        "Another container ship arrived on time.",
    ]
    items = [
        {"id": f"h{d}", "text": text, "published": (noon - timedelta(days=4 - d)).isoformat()}
        for d, text in enumerate(texts)
    ]
    items.append({"id": "s1", "text": "Solar panel prices fell again this week.", "published": noon.isoformat()})
    assert wait_job(client, key, _batch(client, key, items))["state"] == "succeeded"
    # the monitor scores the job's items after it ends: wait for all five to have their topic
    _until(
        lambda: (
            sum(b["items"] for b in client.get("/v1/topics/harbour_traffic/series", headers=key).json()) == 4
            and client.get("/v1/topics/energy/series", headers=key).json()
        ),
        "the monitor scored the items",
    )

    page = _signed_in(browser, url, key)
    page.goto(f"{url}/ui/topics")
    expect(page.locator("section[data-topic]")).to_have_count(2)
    expect(page.locator("section[data-topic=energy] .chart svg.main-svg").first).to_be_visible()
    page.locator("section[data-topic=harbour_traffic] h3 a").click()
    page.wait_for_url(re.compile(r"/ui/topics/harbour_traffic$"))
    section = page.locator("section[data-topic]")
    expect(section).to_have_count(1)
    expect(section.locator(".names")).to_have_text("container ship, harbour crane")
    chart = section.locator(".chart")
    expect(chart.locator("svg.main-svg").first).to_be_visible()
    assert _legend(chart)[:2] == ["items", "mean sentiment"]
    assert chart.locator(".barlayer .point").count() == 4  # one bar a day
    assert chart.locator(".scatterlayer .trace").first.locator("path.point").count() == 4
    page.context.close()
