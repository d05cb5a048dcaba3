"""Server-side snippets with marked query words, and the SVG charts."""

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

from api.charts import Marker, Point, counts_svg, sentiment_svg
from api.highlight import highlight

NS = "{http://www.w3.org/2000/svg}"


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


def test_sentiment_chart_draws_each_point_and_each_alert():
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    points = [Point(t0 + timedelta(hours=i), v, 3 + i) for i, v in enumerate([0.2, 0.1, -0.6, -0.8, 0.0])]
    alerts = [Marker(t0 + timedelta(hours=3), "negative share 0.8 (baseline 0.2)")]
    svg = ElementTree.fromstring(sentiment_svg(points, alerts, "AAPL <Apple>"))
    circles = svg.findall(f".//{NS}circle")
    assert len(circles) == 5
    ys = [float(c.get("cy")) for c in circles]
    assert ys[3] > ys[2] > ys[0]  # lower sentiment is drawn lower (larger y)
    assert len(svg.findall(f".//{NS}g[@class='alert']")) == 1
    line = svg.find(f".//{NS}polyline")
    assert len(line.get("points").split()) == 5
    assert svg.find(f"{NS}title").text == "AAPL <Apple>"  # escaped in the markup, intact when parsed


def test_empty_and_single_point_charts_still_render():
    assert "no data" in sentiment_svg([], [], "x")
    one = ElementTree.fromstring(counts_svg([Point(datetime(2024, 1, 1), 7, 1)], [], "t", "docs", "failed job"))
    assert len(one.findall(f".//{NS}circle")) == 1
