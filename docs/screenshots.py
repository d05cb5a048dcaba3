"""Take the README's dashboard screenshots (docs/screenshots/*.png) from a throwaway local stack.

    python docs/screenshots.py [--out docs/screenshots] [--keep]

It starts `docpipe up` in a temporary data folder (noida-db, the workers, the API), uploads a few short
documents through the API (one upload with a broken file, so one job ends partial), adds two weeks of job
history and a watched entity's sentiment straight into SQL (synthetic: the pictures need days of data that
a fresh stack cannot have), then drives Debian's Chromium (`apt-get install -y chromium`) through Playwright
over each page at 1280 px and stops the stack (unless --keep).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
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
        _history(settings.sql_url, "default")
        _shoot(url, key, args.out, **_pages(partial))
        # after the documents page: the watched entity's mentions come with stand-in documents of their own
        _watch(settings.sql_url, "default")
        _shoot(url, key, args.out, watch="/ui/watch")
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


def _upload(url: str, key: str, files: dict[str, str]) -> str:
    boundary = uuid.uuid4().hex
    parts = []
    for name, text in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n{text}\r\n"
        )
    body = ("".join(parts) + f"--{boundary}--\r\n").encode()
    return _request(f"{url}/v1/documents", key, "POST", body, f"multipart/form-data; boundary={boundary}")["job_id"]


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


def _pages(partial_job: str) -> dict[str, str]:
    return {
        "jobs": "/ui/jobs",
        "job": f"/ui/jobs/{partial_job}",
        "search": "/ui/search?q=acme+scooter+recall&mode=hybrid",
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
