"""Server-side snippets with marked query words; the charts as plotly figures (checked against plotly's own
schema), the pages that carry them, plotly.js served from the installed package, and the delete buttons."""

import gzip
import re
from datetime import UTC, datetime, timedelta

import plotly.graph_objects as go
import pytest

from api import charts
from api.auth import COOKIE
from api.charts import Bucket, Marker, Point, activity_figure, sentiment_figure
from api.highlight import highlight
from pipeline.store import repo
from pipeline.store.models import Document, Job, JobState
from tests.unit.api_support import Api, charts_in, trace

DAY = timedelta(days=1)


def test_query_words_are_marked_by_stem_and_the_rest_escaped():
    text = "Intro words. " * 40 + "The <b>indexed</b> chunks & Indexing jobs run nightly. " + "Tail words. " * 40
    snippet, fragments = highlight(text, "indexing the job")
    assert len(fragments) == 1
    fragment = fragments[0]
    assert "<mark>indexed</mark>" in fragment and "<mark>Indexing</mark>" in fragment
    assert "<mark>jobs</mark>" in fragment
    assert "<mark>The</mark>" not in fragment  # stop words are not matched
    assert "&lt;b&gt;" in fragment and "&amp;" in fragment  # the document's markup is text, not HTML
    assert "Indexing jobs" in snippet and snippet.startswith("…") and snippet.endswith("…")


def test_without_a_match_the_snippet_is_the_start_and_nothing_is_marked():
    snippet, fragments = highlight("Solar power grows. " * 30, "zebra")
    assert fragments == [] and snippet.startswith("Solar power grows.")
    assert len(snippet) <= 242


def test_two_distant_groups_of_matches_give_two_fragments_in_text_order():
    text = "alpha beta. " + "filler " * 200 + "gamma alpha."
    _, fragments = highlight(text, "alpha gamma", width=80)
    assert len(fragments) == 2
    assert fragments[0].count("<mark>") == 1 and fragments[1].count("<mark>") == 2


def test_the_activity_figure_stacks_outcomes_per_day_on_the_day_ticks_and_marks_partial_jobs():
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    buckets = [
        Bucket(t0, {"done": 5}),
        Bucket(t0 + DAY, {"done": 3, "skipped": 1, "failed": 2}),
        Bucket(t0 + 2 * DAY, {}),
    ]
    job = Marker(t0 + DAY, "job 1234abcd partial: 2 of 6 item(s) failed, 3 indexed", JobState.PARTIAL, 6.0)
    figure = activity_figure(buckets, [job], DAY)
    go.Figure(figure)  # plotly's schema: an unknown or misspelt property raises
    assert [t["name"] for t in figure["data"]] == ["indexed", "unchanged", "duplicates", "failed", "partial job"]
    assert figure["layout"]["barmode"] == "stack"
    assert trace(figure, "failed")["y"] == [0, 2, 0] and trace(figure, "indexed")["y"] == [5, 3, 0]
    # each bar sits on its day's midnight, where the date axis puts that day's tick
    assert trace(figure, "indexed")["x"] == ["2024-03-01 00:00:00", "2024-03-02 00:00:00", "2024-03-03 00:00:00"]
    # half a day of room on both sides: the last bar and its date are not cut off
    assert figure["layout"]["xaxis"]["range"] == ["2024-02-29 12:00:00", "2024-03-03 12:00:00"]
    partial = trace(figure, "partial job")
    assert partial["x"] == ["2024-03-02 00:00:00"] and "partial" in partial["text"][0]
    assert 6.0 < partial["y"][0] < 7.0  # just above its bucket's bar
    assert activity_figure([], [], DAY) is None


def test_the_sentiment_figure_draws_the_line_the_volume_on_its_own_axis_and_each_alert():
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    points = [Point(t0 + timedelta(hours=i), v, 3 + i) for i, v in enumerate([0.2, 0.1, -0.6, -0.8, 0.0])]
    alerts = [Marker(t0 + timedelta(hours=3), "negative share 0.8 (baseline 0.2)")]
    figure = sentiment_figure(points, alerts)
    go.Figure(figure)
    line, items, alert = trace(figure, "mean sentiment"), trace(figure, "items"), trace(figure, "alert")
    assert line["y"] == [0.2, 0.1, -0.6, -0.8, 0.0] and line["x"][0] == "2024-03-01 00:00:00"
    assert items["y"] == [3, 4, 5, 6, 7] and line["yaxis"] == alert["yaxis"] == "y2"  # the line in front
    assert figure["layout"]["yaxis"]["tickvals"] == [0, 3, 7]
    assert alert["x"] == ["2024-03-01 03:00:00"] and alert["text"] == ["negative share 0.8 (baseline 0.2)"]
    assert [s["x0"] for s in figure["layout"]["shapes"]] == ["2024-03-01 03:00:00"]
    assert figure["layout"]["xaxis"]["range"] == ["2024-02-29 23:30:00", "2024-03-01 04:30:00"]  # hourly: ±30 min
    assert sentiment_figure([], [], None) is None
    one = sentiment_figure([Point(datetime(2024, 1, 1), 0.5, 1)], [])
    assert one is not None and trace(one, "mean sentiment")["y"] == [0.5]


@pytest.fixture()
def api(tmp_path):
    return Api(tmp_path)


def _finished(api, tenant: str, state: str, at: datetime, kind: str = "upload", **counters) -> str:
    with api.session() as s:
        job = repo.create_job(s, tenant, [], kind=kind)
        job.state, job.finished_at = state, at
        job.total = sum(counters.values())
        for name, n in counters.items():
            setattr(job, name, n)
        return job.id


def test_the_jobs_page_counts_partial_jobs_as_partial_and_shows_their_failed_share(api):
    key = api.key("acme")["X-API-Key"]
    now = datetime.now(UTC)
    _finished(api, "acme", JobState.SUCCEEDED, now - timedelta(days=3), done=4)
    partial = _finished(api, "acme", JobState.PARTIAL, now - timedelta(days=1), done=3, skipped=1, failed=1)
    _finished(api, "acme", JobState.SUCCEEDED, now - timedelta(days=1), kind="delete", done=7)  # not ingest
    _finished(api, "globex", JobState.FAILED, now - timedelta(days=1), failed=9)  # another tenant's
    api.client.cookies.set(COOKIE, key)
    page = api.client.get("/ui/jobs").text
    assert f'<script src="{charts.plotly_url()}" async data-plotly></script>' in page
    accept = re.search(r'accept="([^"]*)"', page).group(1).split(",")
    assert {".docx", ".xlsx", ".eml", ".tsv", ".pdf"} <= set(accept)  # the picker offered eight types, no Office one

    caption = re.search(r"<figcaption data-chart-caption>([^<]*)</figcaption>", page).group(1)
    assert "per day, last 14 days" in caption and "2 job(s) finished, 1 partial, 0 failed" in caption
    (figure,) = charts_in(page)
    go.Figure(figure)
    assert sum(trace(figure, "indexed")["y"]) == 7 and sum(trace(figure, "failed")["y"]) == 1
    assert sum(trace(figure, "duplicates")["y"]) == 1
    assert "failed job" not in [t["name"] for t in figure["data"]]
    (label,) = trace(figure, "partial job")["text"]
    assert label.startswith(f"job {partial[:8]} partial: 1 of 5 item(s) failed")
    # daily buckets start at midnight UTC, so their points fall on the axis's day ticks
    assert all(x.endswith("00:00:00") for x in trace(figure, "indexed")["x"])

    row = page.split(f'<tr data-job="{partial}">', 1)[1].split("</tr>", 1)[0]
    widths = dict(re.findall(r'data-seg="(\w+)" style="width: ([\d.]+)%"', row))
    assert widths == {"done": "60.0", "unchanged": "0.0", "skipped": "20.0", "failed": "20.0"}


def test_a_job_page_bar_shows_each_outcome_and_an_empty_tenant_gets_no_chart(api):
    api.client.cookies.set(COOKIE, api.key("acme")["X-API-Key"])
    assert "No finished jobs in the last 14 days." in api.client.get("/ui/jobs").text
    job_id = _finished(api, "acme", JobState.PARTIAL, datetime.now(UTC), done=1, failed=3)
    page = api.client.get(f"/ui/jobs/{job_id}").text
    bar = page.split('<div class="bar big"', 1)[1].split("</div>", 1)[0]
    assert 'data-seg="failed" style="width: 75.0%"' in bar and 'data-seg="done" style="width: 25.0%"' in bar
    assert 'title="1 indexed, 0 unchanged, 0 duplicates, 3 failed of 4"' in bar


def test_plotly_js_is_served_from_the_installed_package_gzipped_and_cacheable(api):
    body = charts.plotly_file().read_bytes()
    r = api.client.get(charts.plotly_url(), headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert r.headers["content-encoding"] == "gzip" and "immutable" in r.headers["cache-control"]
    assert r.content == body  # the client undid the gzip
    assert int(r.headers["content-length"]) == len(gzip.compress(body, compresslevel=6)) < len(body) / 2
    plain = api.client.get(charts.plotly_url(), headers={"Accept-Encoding": "identity"})
    assert plain.content == body and "content-encoding" not in plain.headers
    stale = api.client.get("/vendor/plotly-0000000000000000.min.js")
    assert stale.content == body and stale.headers["cache-control"] == "no-cache"


def test_each_document_has_a_delete_button_and_the_api_it_calls_answers_the_page_cookie(api):
    key = api.key("acme")["X-API-Key"]
    with api.session() as s:
        s.add(
            Document(
                id="d" * 32,
                tenant="acme",
                source="a <b>.txt",
                content_type="txt",
                text="t",
                content_hash="h",
                status="indexed",
                cluster_id="d" * 32,
            )
        )
    sent = []
    api.ctx.send_task = lambda name, args: sent.append((name, args))
    api.client.cookies.set(COOKIE, key)
    page = api.client.get("/ui/documents").text
    assert f'data-delete="{"d" * 32}" data-name="a &lt;b&gt;.txt"' in page
    r = api.client.delete(f"/v1/documents/{'d' * 32}")  # what the button sends: the cookie, no header
    assert r.status_code == 202, r.text
    with api.session() as s:
        job = s.get(Job, r.json()["job_id"])
        assert job.kind == "delete" and job.tenant == "acme"
    assert sent == [("docpipe.delete_documents", [job.id])]
