"""The search page's filters and facets without a search server: conditions as the form sends them, facet
values as links that add or take back one filter, pages as cited, and a bad filter or facet key shown on
the page (not a 500). The page against the real stack: tests/integration/test_dashboard_pages.py."""

from urllib.parse import parse_qs, urlsplit

import pytest

from api.auth import COOKIE
from api.search_view import conditions, equality, facet_keys, facet_links, pages_label, search_url
from pipeline.index.filters import parse_where
from tests.unit.api_support import Api


def test_conditions_come_one_a_line_or_one_a_parameter_each_once():
    sent = ["desk=markets\r\n\n  published>=2024-01-01 ", "desk=markets", "n<5"]
    assert conditions(sent) == ["desk=markets", "published>=2024-01-01", "n<5"]
    assert conditions(["", "  \n"]) == []
    assert facet_keys(["desk, language", "desk", " ,source"]) == ["desk", "language", "source"]


def test_a_facet_value_with_a_comma_filters_on_itself_not_on_any_of_two():
    (condition,) = parse_where([equality("region", "Europe, Middle East")])
    assert condition.key == "region" and condition.values == ("Europe, Middle East",)


def test_facet_links_add_a_filter_or_take_an_applied_one_back():
    state = {"q": "rates", "mode": "bm25", "k": 10, "source": "", "facet": "desk,source"}
    facets = {
        "desk": [{"value": "markets", "count": 3}, {"value": "rates", "count": 1}],
        "source": [{"value": "/data/uploads/acme/report.pdf", "count": 1}],
    }
    links = facet_links(facets, state, ["desk=markets", "n<5"], "/data/uploads/")
    markets, rates = links["desk"]
    assert (markets.active, markets.count, rates.active, rates.count) == (True, 3, False, 1)
    assert _params(markets.url) == {"q": ["rates"], "mode": ["bm25"], "k": ["10"], "facet": ["desk,source"]} | {
        "where": ["n<5"]
    }
    assert _params(rates.url)["where"] == ["desk=markets", "n<5", "desk=rates"]
    (upload,) = links["source"]
    assert upload.label == "report.pdf" and _params(upload.url)["where"][-1] == "source=/data/uploads/acme/report.pdf"
    assert "where" not in _params(search_url(state, []))


@pytest.mark.parametrize(
    ("pages", "label"),
    [([], ""), (None, ""), ([3], "p. 3"), ([4, 3], "pp. 3-4"), ([2, 5, 6, 7], "pp. 2, 5-7"), ([1, 1], "p. 1")],
)
def test_pages_are_cited_as_a_reader_would(pages, label):
    assert pages_label(pages) == label


def test_a_bad_filter_or_facet_key_is_shown_on_the_page(tmp_path):
    api = Api(tmp_path)
    api.client.cookies.set(COOKIE, api.key("acme")["X-API-Key"])
    page = api.client.get("/ui/search", params={"q": "rates", "where": "desk=markets\ndesk"})
    assert page.status_code == 200
    assert "cannot read filter &#39;desk&#39;: write KEY=VALUE" in page.text
    assert "desk=markets\ndesk</textarea>" in page.text  # kept in the form, to be corrected
    page = api.client.get("/ui/search", params={"q": "rates", "facet": "desk, published"})
    assert page.status_code == 200 and "cannot facet on &#39;published&#39;" in page.text
    assert 'value="desk, published"' in page.text


def _params(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)
