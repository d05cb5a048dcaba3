"""Take the README's dashboard screenshots (docs/screenshots/*.png) from a throwaway local stack.

    python docs/screenshots.py [--out docs/screenshots] [--keep]

It starts `docpipe up` in a temporary data folder (noida-db, the workers, the API), uploads a few short
documents through the API (one upload with a broken file, so one job ends partial; a JSON batch of news items
with metadata and a two-page PDF, for the search page's filter and facets), adds two weeks of job history and
a watched entity's sentiment straight into SQL (synthetic: the pictures need days of data that a fresh stack
cannot have), defines two topics and ingests two weeks of dated items about them (the monitor scores them
after the job; its spike rule is then run as of the day of a negative burst, which opens the alert the topic
chart marks), then drives Debian's Chromium (`apt-get install -y chromium`) through Playwright over each page
at 1280 px and stops the stack (unless --keep).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
DOCS = {
    "ecb-rates.txt": "The European Central Bank kept its deposit rate unchanged on Thursday. Policymakers said "
    "inflation in the euro area is easing but wage growth remains strong, and markets now expect the first rate "
    "cut in June.",
    "solar-capacity.md": "# Solar capacity\n\nGermany added a record 14 gigawatts of solar panels last year. Grid "
    "operators warn that storage and transmission lines must grow as fast, or midday power will be curtailed.",
    "acme-recall.txt": "Acme Corp recalled 40,000 electric scooters after reports of battery fires. Shares fell 6 "
    "percent; the company said the recall will cost about 30 million dollars.",
    "capybara-field-notes.txt": "Capybara herds crossed the river delta at dawn. The field team counted 212 "
    "animals, up from 180 last season, and tagged eleven juveniles.",
    "broken.json": "{not json",
}
LATER = {
    "acme-earnings.txt": "Acme Corp reported quarterly revenue of 1.2 billion dollars, below forecasts, and cut "
    "its outlook for the year after the scooter recall.",
    "port-congestion.txt": "Container ships waited up to nine days outside Rotterdam as a strike slowed "
    "unloading; freight rates on the Asia to Europe route rose for a third week.",
}

# news items with metadata (a JSON batch's `meta`): the search page filters on region and counts desks and languages
NEWS = [
    (
        "ecb-hold",
        "ECB holds rates",
        "The European Central Bank left interest rates on hold and said the next move "
        "depends on wage growth in the euro area.",
        {"desk": "rates", "region": "europe"},
    ),
    (
        "bund-rates",
        "Bundesbank zu den Zinsen",
        "Die Bundesbank erwartet, dass die Zinsen im Euroraum länger hoch "
        "bleiben, weil die Löhne kräftig steigen und die Inflation nur langsam sinkt.",
        {"desk": "rates", "region": "europe"},
    ),
    (
        "freight-rates",
        "Freight rates climb",
        "Spot freight rates from Shanghai to Rotterdam rose for a third week as carriers avoided the Red Sea.",
        {"desk": "shipping", "region": "europe"},
    ),
    (
        "gas-prices",
        "Gas storage and prices",
        "European gas prices eased as storage sites filled ahead of winter, "
        "lowering the rates utilities charge households.",
        {"desk": "commodities", "region": "europe"},
    ),
    (
        "bank-margins",
        "Bank margins",
        "Higher rates lifted net interest margins at Spanish and Italian lenders in the second quarter.",
        {"desk": "markets", "region": "europe"},
    ),
    (
        "fed-minutes",
        "Fed minutes",
        "Federal Reserve officials saw no hurry to cut rates while inflation stays above target.",
        {"desk": "rates", "region": "americas"},
    ),
    (
        "yen-slide",
        "Yen slides",
        "The yen fell to a 34-year low as Japanese rates stayed far below those abroad.",
        {"desk": "markets", "region": "asia"},
    ),
]
MINUTES = [  # a two-page PDF: its hits show their pages
    "Minutes of the monetary policy meeting, page one: members discussed deposit rates and the euro area outlook.",
    "Page two: most members judged that rates should stay at their current level until wage growth slows.",
]
SEARCH = {"q": "interest rates", "mode": "hybrid", "where": "region=europe", "facet": "desk,language"}

# topic items: one sentence from each column, so no two items are near-duplicates of each other
ENERGY = (
    [
        "The grid operator",
        "Solar farm owners",
        "Wind power producers",
        "Rooftop solar installers",
        "The national power grid",
        "Power grid planners",
        "Offshore wind power parks",
        "Solar battery storage sites",
    ],
    [
        "reported strong output and improved reliability",
        "achieved stable supply through the week",
        "gained capacity ahead of schedule",
        "posted efficient operations and strong demand",
        "said the new lines performed well",
        "delivered gains in solar generation",
    ],
    [
        "in the north",
        "near Hamburg",
        "along the coast",
        "in the southern states",
        "across the region",
        "in the east",
        "around Munich",
        "on the plains",
    ],
)
ENERGY_BAD = (
    ["A power outage", "A grid failure", "A transformer fire", "A cable fault", "A storm", "A cyber attack"],
    [
        "caused blackouts and losses for the grid operator",
        "forced solar farms offline amid severe disruptions",
        "left the power grid damaged and unstable",
        "triggered penalties and losses at the wind power utility",
        "led to a lawsuit over failed power grid repairs",
        "caused closures and serious damage to solar parks",
    ],
    ["in the north", "near Hamburg", "along the coast", "in the southern states", "across the region", "in the east"],
)
RATES = (
    [
        "The central bank",
        "Policymakers at the central bank",
        "The deposit rate decision",
        "Interest rate markets",
        "The central bank governor",
        "Bond traders watching the interest rate path",
    ],
    [
        "signalled improved stability and strong growth",
        "kept the deposit rate unchanged",
        "warned of weak growth and losses at lenders",
        "saw gains as inflation eased",
        "flagged concerns about slowing demand",
        "described the outlook as stable",
    ],
    ["on Monday", "after the meeting", "in its statement", "in a speech", "before the vote", "in the minutes"],
)
TOPICS = {
    "energy": ["solar", "wind power", "power grid", "grid operator"],
    "rates": ["central bank", "interest rate", "deposit rate"],
}
BURST_DAY, BURST_HOURS = 9, range(9, 15)  # days after the first; the energy topic's negative burst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--keep", action="store_true", help="leave the stack running (its data folder is printed)")
    args = parser.parse_args()

    from cli.localstack.launcher import down, up
    from pipeline.config import Settings

    data_dir = Path(tempfile.mkdtemp(prefix="docpipe-screens-"))
    settings = Settings(data_dir=data_dir, database_url=None, redis_url=None, elasticsearch_url=None)
    stack = up(settings, echo=lambda line: print(line, flush=True))
    try:
        url, key = stack["api_url"], (data_dir / "api-key").read_text().strip()
        _wait_ready(url)
        partial = _upload(url, key, DOCS)
        _wait_job(url, key, partial)
        _wait_job(url, key, _upload(url, key, LATER))
        _wait_job(url, key, _batch(url, key, NEWS))
        _wait_job(
            url, key, _upload(url, key, {"ecb-minutes.pdf": _pdf(MINUTES)}, {"desk": "rates", "region": "europe"})
        )
        _history(settings.sql_url, "default")
        _shoot(url, key, args.out, **_pages(partial))
        # after the documents page: the watched entity's mentions come with stand-in documents of their own
        _watch(settings.sql_url, "default")
        _shoot(url, key, args.out, watch="/ui/watch")
        _topics(url, key, settings)
        _shoot(url, key, args.out, topics="/ui/topics")
        print(f"screenshots in {args.out}")
    finally:
        if args.keep:
            print(f"the stack keeps running; stop it with DOCPIPE_DATA_DIR={data_dir} docpipe down")
        else:
            down(settings)
            shutil.rmtree(data_dir, ignore_errors=True)


def _request(url: str, key: str, method: str = "GET", body: bytes | None = None, content_type: str = "") -> dict:
    headers = {"X-API-Key": key, "Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    with urllib.request.urlopen(urllib.request.Request(url, body, headers, method=method), timeout=60) as r:
        return json.loads(r.read())


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _upload(url: str, key: str, files: dict[str, str | bytes], fields: dict[str, str] | None = None) -> str:
    """A multipart upload; `fields` are plain form fields: metadata of every document of the upload."""
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in (fields or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, text in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts.append(head.encode() + (text if isinstance(text, bytes) else text.encode()) + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return _request(f"{url}/v1/documents", key, "POST", body, f"multipart/form-data; boundary={boundary}")["job_id"]


def _batch(url: str, key: str, items: list[tuple]) -> str:
    """News items as a JSON batch, each with its metadata and a publication time in the last days."""
    now = datetime.now(UTC)
    documents = [
        {"id": i, "title": title, "text": text, "meta": meta, "published": (now - timedelta(hours=5 * n)).isoformat()}
        for n, (i, title, text, meta) in enumerate(items)
    ]
    body = json.dumps({"documents": documents}).encode()
    return _request(f"{url}/v1/documents", key, "POST", body, "application/json")["job_id"]


def _pdf(pages: list[str]) -> bytes:
    from tests.unit.test_formats import make_pdf

    return make_pdf(pages, "Monetary policy minutes")


def _wait_job(url: str, key: str, job_id: str) -> dict:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        job = _request(f"{url}/v1/jobs/{job_id}", key)
        if job["state"] in ("succeeded", "partial", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    raise SystemExit(f"job {job_id} did not finish in 10 minutes")


def _history(sql_url: str, tenant: str) -> None:
    """Finished upload jobs over the last two weeks (counters only, no documents): the activity chart's days."""
    from pipeline.store import repo
    from pipeline.store.db import session_scope
    from pipeline.store.models import JobState

    rng = random.Random(7)
    now = datetime.now(UTC)
    with session_scope(sql_url) as session:
        for day in range(13, 0, -1):
            for _ in range(rng.choice((0, 1, 2, 2, 3))):
                job = repo.create_job(session, tenant, [], kind="upload")
                job.done, job.unchanged, job.skipped = rng.randint(4, 30), rng.randint(0, 8), rng.randint(0, 4)
                job.failed = rng.choice((0, 0, 0, 0, 3))
                job.total = job.done + job.unchanged + job.skipped + job.failed
                job.state = JobState.PARTIAL if job.failed else JobState.SUCCEEDED
                job.created_at = job.started_at = now - timedelta(days=day, hours=rng.randint(1, 9))
                job.finished_at = job.started_at + timedelta(minutes=rng.randint(1, 20))


def _watch(sql_url: str, tenant: str) -> None:
    """A watched entity with two weeks of scored mentions, a negative burst and its alert."""
    from pipeline.store.db import session_scope
    from tests.unit.api_support import seed_sentiment

    start = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=13)
    mood = [0.3, 0.2, 0.35, 0.1, 0.25, 0.2, 0.3, 0.15, -0.6, -0.8, -0.5, -0.2, 0.1, 0.2]
    points = [(start + timedelta(days=i), "negative" if m < 0 else "positive", m) for i, m in enumerate(mood)]
    with session_scope(sql_url) as session:
        seed_sentiment(session, tenant, "ACME", points, alert_at=start + timedelta(days=9))


def _topics(url: str, key: str, settings) -> None:
    """Two topics and two weeks of items about them, ingested and scored by the stack's own monitor; then the
    spike rule is run as of the energy topic's negative burst (the monitor runs it at the time of the job)."""
    from pipeline.monitor import SpikeRule, evaluate_topics
    from pipeline.store.db import session_scope

    for name, terms in TOPICS.items():
        _request(f"{url}/v1/topics/{name}", key, "PUT", json.dumps({"terms": terms}).encode(), "application/json")
    rng = random.Random(11)
    now = datetime.now(UTC)
    first = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=13)
    items: list[tuple[datetime, tuple]] = []
    for day in range(14):
        burst = day == BURST_DAY
        items += [(first + timedelta(days=day, hours=h), ENERGY) for h in (2, 8, 14, 20) if not burst or h != 14]
        items += [(first + timedelta(days=day, hours=h), RATES) for h in (5, 17)]
        items += [(first + timedelta(days=day, hours=h), ENERGY_BAD) for h in BURST_HOURS if burst]
        if day in (1, 3, 11):  # now and then bad news outside the burst's baseline
            items.append((first + timedelta(days=day, hours=11), ENERGY_BAD))
    used: set[tuple[str, ...]] = set()
    documents = []
    for n, (at, columns) in enumerate(sorted(items, key=lambda item: item[0])):
        if at > now:
            continue
        words = tuple(rng.choice(column) for column in columns)
        while words in used:
            words = tuple(rng.choice(column) for column in columns)
        used.add(words)
        documents.append({"id": f"topic-item-{n}", "text": " ".join(words) + ".", "published": at.isoformat()})
    body = json.dumps({"documents": documents}).encode()
    _wait_job(url, key, _request(f"{url}/v1/documents", key, "POST", body, "application/json")["job_id"])
    deadline = time.monotonic() + 300
    while sum(len(_request(f"{url}/v1/topics/{name}/series?by=hour", key)) for name in TOPICS) < len(documents):
        if time.monotonic() > deadline:
            raise SystemExit("the monitor did not score the topic items in 5 minutes")
        time.sleep(1)
    time.sleep(2)  # the monitor's own spike check follows its scoring
    with session_scope(settings.sql_url) as session:
        at = first + timedelta(days=BURST_DAY, hours=BURST_HOURS[-1], minutes=30)
        opened = evaluate_topics(session, "default", None, at, SpikeRule.from_settings(settings))
    print(f"topic alerts opened as of {at:%Y-%m-%d %H:%M}: {[a.topic for a in opened]}")


def _pages(partial_job: str) -> dict[str, str]:
    return {
        "jobs": "/ui/jobs",
        "job": f"/ui/jobs/{partial_job}",
        "search": f"/ui/search?{urllib.parse.urlencode(SEARCH)}",
        "index": "/ui/index",
        "documents": "/ui/documents",
        "models": "/ui/models",
    }


def _shoot(url: str, key: str, out: Path, **pages: str) -> None:
    """Each page (name=path) as out/name.png at 1280 px, after its charts are drawn."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        context.add_cookies([{"name": "docpipe_key", "value": key, "url": url}])
        page = context.new_page()
        for name, path in pages.items():
            page.goto(f"{url}{path}")
            page.wait_for_load_state("networkidle")
            if page.locator("[data-chart]").count():
                page.locator("[data-chart] svg.main-svg").first.wait_for()
            page.screenshot(path=str(out / f"{name}.png"), full_page=name != "jobs")  # jobs: the top, not 50 rows
        browser.close()


if __name__ == "__main__":
    main()
