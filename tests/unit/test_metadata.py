"""Metadata in normal form and within limits, the filter language and its clauses, facets, and what the sources
(records, feeds, folders) give a document as metadata."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.errors import InputError, Reason
from pipeline.index.filters import FilterError, facet_aggs, parse_where, read_facets, to_clauses, where_clauses
from pipeline.metadata import (
    MAX_KEYS,
    MAX_LIST_ITEMS,
    MAX_VALUE_CHARS,
    MetadataError,
    check_metadata,
    index_fields,
    merge_patch,
    normalise_key,
    path_parts,
)


@pytest.mark.parametrize(
    ("raw", "key"),
    [("Desk", "desk"), ("Published Date", "published_date"), ("a.b", "a_b"), (" x--y ", "x--y"), ("Größe", "größe")],
)
def test_keys_are_normalised_so_headers_and_queries_agree(raw, key):
    assert normalise_key(raw) == key


def test_metadata_in_normal_form():
    got = check_metadata(
        {
            "Desk": " markets ",
            "n": 3,
            "ratio": 0.5,
            "ok": False,
            "tags": ["a", "b", "a", None, ""],
            "gone": None,
            "empty": "",
            "at": datetime(2024, 1, 2, 3, 4, tzinfo=UTC),
        }
    )
    assert got == {
        "desk": "markets",
        "n": 3,
        "ratio": 0.5,
        "ok": False,
        "tags": ["a", "b"],
        "at": "2024-01-02T03:04:00+00:00",
    }


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({f"k{i}": 1 for i in range(MAX_KEYS + 1)}, "at most 64"),
        ({"k" * 65: 1}, "longer than 64"),
        ({"v": "x" * (MAX_VALUE_CHARS + 1)}, "at most 4096"),
        ({"v": list(range(MAX_LIST_ITEMS + 1))}, "at most 100"),
        ({"v": {"nested": 1}}, "is a dict"),
        ({"v": float("nan")}, "finite"),
        ({"!!": 1}, "no letter or digit"),
        ({"Desk": 1, "desk": 2}, "both normalise"),
        (["not", "a", "mapping"], "object of key/value pairs"),
    ],
)
def test_over_limit_metadata_is_a_typed_input_error(raw, message):
    with pytest.raises(MetadataError, match=message) as caught:
        check_metadata(raw)
    assert isinstance(caught.value, InputError) and caught.value.reason == Reason.INVALID_METADATA
    copy = pickle.loads(pickle.dumps(caught.value))  # it crosses Celery's result backend
    assert copy.message == caught.value.message and copy.reason == Reason.INVALID_METADATA


def test_merge_patch_sets_replaces_and_removes():
    current = {"desk": "markets", "n": 3, "tags": ["a"]}
    assert merge_patch(current, {"Desk": "rates", "n": None, "new": True}) == {
        "desk": "rates",
        "tags": ["a"],
        "new": True,
    }
    assert merge_patch(current, {"absent": None}) == current
    assert current == {"desk": "markets", "n": 3, "tags": ["a"]}  # not changed in place


def test_index_fields_type_numbers_and_dates_apart_from_strings():
    fields = index_fields(
        {
            "n": 5.0,
            "s": "07",
            "flag": True,
            "day": "2024-02-01",
            "at": "2024-02-01T10:00:00+02:00",
            "nums": [1, "x", "2.5"],
            "bad_day": "2024-02-30",
        }
    )
    assert fields["meta"] == {
        "n": "5",
        "s": "07",
        "flag": "true",
        "day": "2024-02-01",
        "at": "2024-02-01T10:00:00+02:00",
        "nums": ["1", "x", "2.5"],
        "bad_day": "2024-02-30",
    }
    assert fields["meta_num"] == {"n": 5.0, "s": 7.0, "nums": [1.0, 2.5]}  # a boolean is not a number
    assert fields["meta_date"] == {"day": "2024-02-01", "at": "2024-02-01T08:00:00.000"}


def test_path_parts_are_the_folders_below_the_ingested_one():
    assert path_parts(["/in/docs"], "/in/docs/reports/2024/q1.pdf") == ["reports", "2024"]
    assert path_parts(["/in", "/in/docs"], "/in/docs/a/x.txt") == ["a"]  # the deepest input that holds it
    assert path_parts(["/in/docs/x.txt"], "/in/docs/x.txt") == []
    assert path_parts(["/elsewhere"], "/in/docs/x.txt") == []


# --- the filter language ---------------------------------------------------------------------------------------


def test_equality_any_of_and_not_equal():
    assert where_clauses(["desk=markets"]) == [{"terms": {"meta.desk": ["markets"]}}]
    assert where_clauses(["Desk = markets , rates"]) == [{"terms": {"meta.desk": ["markets", "rates"]}}]
    assert where_clauses(["desk!=fx"]) == [{"bool": {"must_not": [{"terms": {"meta.desk": ["fx"]}}]}}]
    assert where_clauses([r"name=a\,b"]) == [{"terms": {"meta.name": ["a,b"]}}]


def test_a_number_matches_as_string_or_as_number():
    assert where_clauses(["n=5"]) == [
        {
            "bool": {
                "should": [{"terms": {"meta.n": ["5"]}}, {"terms": {"meta_num.n": [5.0]}}],
                "minimum_should_match": 1,
            }
        }
    ]


def test_ranges_use_the_typed_fields():
    assert where_clauses(["n<5", "n>=-1.5e3"]) == [
        {"range": {"meta_num.n": {"lt": 5.0}}},
        {"range": {"meta_num.n": {"gte": -1500.0}}},
    ]
    # a bare date is the whole day: > is from the next day on, <= up to its end
    assert where_clauses(["d>2024-01-31", "d<=2024-01-31", "d>=2024-01-31", "d<2024-01-31"]) == [
        {"range": {"meta_date.d": {"gte": "2024-02-01"}}},
        {"range": {"meta_date.d": {"lt": "2024-02-01"}}},
        {"range": {"meta_date.d": {"gte": "2024-01-31"}}},
        {"range": {"meta_date.d": {"lt": "2024-01-31"}}},
    ]
    assert where_clauses(["d>=2024-01-31T10:00:00+02:00"]) == [
        {"range": {"meta_date.d": {"gte": "2024-01-31T08:00:00.000"}}}
    ]


def test_builtin_keys_name_their_own_fields_and_meta_prefix_reaches_the_users():
    assert where_clauses(["source=a,b"]) == [{"terms": {"source": ["a", "b"]}}]
    assert where_clauses(["language=de"]) == [{"terms": {"language": ["de"]}}]
    assert where_clauses(["published>=2024-01-01"]) == [{"range": {"published": {"gte": "2024-01-01"}}}]
    assert where_clauses(["published=2024-01-01"]) == [
        {"range": {"published": {"gte": "2024-01-01", "lt": "2024-01-02"}}}
    ]
    assert where_clauses(["meta.source=feed"]) == [{"terms": {"meta.source": ["feed"]}}]
    assert str(parse_where(["meta.source=feed"])[0]) == "meta.source=feed"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("desk", "write KEY=VALUE"),
        ("=x", "write KEY=VALUE"),
        ("desk=", "empty value"),
        ("desk=a,,b", "empty value"),
        ("n>a", "not a number or an ISO date"),
        ("n>1,2", "one value"),
        ("source>3", "= or != only"),
        ("published>2024", "not an ISO date"),
        ("!!=x", "write KEY=VALUE"),
        ("__=x", "no letter or digit"),
    ],
)
def test_bad_filters_are_refused_with_the_expression(expression, message):
    with pytest.raises(FilterError, match=message):
        parse_where([expression])


def test_limits_on_filters_and_facets():
    with pytest.raises(FilterError, match="at most 32"):
        parse_where([f"k{i}=1" for i in range(33)])
    with pytest.raises(FilterError, match="cannot facet on 'published'"):
        facet_aggs(["published"])
    with pytest.raises(FilterError, match="between 1 and 100"):
        facet_aggs(["desk"], size=0)
    assert to_clauses([]) == [] and parse_where(None) == []


def test_facets_count_documents_and_sort_by_count_then_value():
    aggs = facet_aggs(["Desk", "source", "desk"])
    assert list(aggs) == ["Desk", "source", "desk"]
    assert aggs["Desk"]["terms"]["field"] == "meta.desk" and aggs["source"]["terms"]["field"] == "source"
    assert aggs["desk"]["aggs"]["docs"] == {"cardinality": {"field": "doc_id", "precision_threshold": 3000}}
    answer = {
        "desk": {
            "buckets": [
                {"key": "b", "doc_count": 9, "docs": {"value": 2}},
                {"key": "a", "doc_count": 2, "docs": {"value": 2}},
                {"key": "c", "doc_count": 5, "docs": {"value": 3}},
            ]
        }
    }
    assert read_facets(answer, ["desk", "missing"]) == {
        "desk": [{"value": "c", "count": 3}, {"value": "a", "count": 2}, {"value": "b", "count": 2}],
        "missing": [],
    }


# --- what sources give -----------------------------------------------------------------------------------------


def test_feed_items_carry_categories_and_author():
    from pipeline.sources.feeds import parse_feed
    from pipeline.sources.poll import item_record

    rss = b"""<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>t</title>
      <item><link>https://x.example/1</link><title>One</title><description>body</description>
        <category>Markets</category><category>Rates</category><category>Markets</category>
        <dc:creator>Ann Lee</dc:creator></item></channel></rss>"""
    item = parse_feed(rss).items[0]
    assert (item.categories, item.author) == (["Markets", "Rates"], "Ann Lee")
    record = item_record(item, {"source_id": "s1"})
    assert record["categories"] == ["Markets", "Rates"] and record["author"] == "Ann Lee"
    atom = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><entry><id>urn:1</id><title>A</title>
      <link href="https://x.example/a"/><summary>s</summary><category term="fx"/>
      <author><name>Bo</name></author></entry></feed>"""
    entry = parse_feed(atom).items[0]
    assert (entry.categories, entry.author) == (["fx"], "Bo")
    jsonfeed = b"""{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "1", "url": "https://x.example/j",
      "content_text": "c", "tags": ["a", "b"], "authors": [{"name": "Cy"}]}]}"""
    got = parse_feed(jsonfeed, "application/feed+json").items[0]
    assert (got.categories, got.author) == (["a", "b"], "Cy")


def test_records_keep_scalar_and_list_fields_and_a_nested_metadata_object(tmp_path: Path):
    from pipeline.formats import read_path

    path = tmp_path / "r.jsonl"
    path.write_text(
        '{"id": "r1", "text": "hello", "desk": "fx", "tags": ["a", "b"], "deep": {"x": 1},'
        ' "metadata": {"region": "EU", "n": 2}}\n'
    )
    (doc,) = list(read_path(path, 10_000))
    assert doc.metadata == {"desk": "fx", "tags": ["a", "b"], "region": "EU", "n": 2}


def test_ingest_normalises_metadata_and_dead_letters_over_limit_items():
    from pipeline.ingest import _clean
    from pipeline.types import RawDocument, Rejected

    ok = _clean(RawDocument("s", "some text", "txt", metadata={"Desk": "fx", "path": ["reports", "2024"]}))
    assert not isinstance(ok, Rejected) and ok.metadata == {"desk": "fx", "path": ["reports", "2024"]}
    refused = _clean(RawDocument("s", "some text", "txt", metadata={f"k{i}": i for i in range(MAX_KEYS + 1)}))
    assert isinstance(refused, Rejected)
    assert (refused.stage, refused.reason) == ("clean", "invalid_metadata") and "at most 64" in refused.detail
