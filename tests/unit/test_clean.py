from datetime import UTC, datetime

import pytest

from pipeline.clean import Cleaner, clean, normalize_text
from pipeline.errors import Reason
from pipeline.metadata import check_metadata
from pipeline.types import CleanDocument, RawDocument, Rejected

ARTICLE = """<!DOCTYPE html>
<html><head><title>Page Title | Site</title>
<style>body { color: red; }</style>
<script>var trackingSecret = "SCRIPT_TEXT";</script>
</head><body>
<header><div class="logo">HEADER_TEXT</div></header>
<nav><ul><li><a href="/">NAV_HOME</a></li><li><a href="/x">NAV_ABOUT</a></li></ul></nav>
<article>
<h1>Rivers rise after storm</h1>
<p>Heavy rain over the weekend pushed the river above its banks in three towns,
officials said on Monday, and several roads remain closed.</p>
<p>Emergency services evacuated about two hundred residents from low-lying streets
while volunteers filled sandbags near the old bridge.</p>
<table><tr><td>Town</td><td>Level</td></tr><tr><td>Millbrook</td><td>4.2 m</td></tr></table>
</article>
<footer>FOOTER_TEXT Copyright 2024</footer>
<script>console.log("SCRIPT_TWO")</script>
</body></html>"""


def raw(body, **kw):
    kw.setdefault("content_type", "txt")
    return RawDocument(source="s1", body=body, **kw)


def test_html_article_main_text_without_boilerplate():
    out = clean(raw(ARTICLE, content_type="html", is_markup=True))
    assert isinstance(out, CleanDocument)
    assert "Heavy rain over the weekend" in out.text
    assert "sandbags near the old bridge" in out.text
    assert "Millbrook" in out.text  # tables kept
    for junk in ("SCRIPT_TEXT", "SCRIPT_TWO", "color: red", "NAV_HOME", "HEADER_TEXT", "FOOTER_TEXT"):
        assert junk not in out.text
    assert out.title
    assert out.content_type == "html"


def test_raw_title_wins_over_page_title():
    out = clean(raw(ARTICLE, content_type="html", is_markup=True, title="Given"))
    assert out.title == "Given"


def test_short_fragment_falls_back_to_body_text():
    html = (
        "<html><head><title>Tiny &amp; short</title></head><body>"
        "<nav>MENU</nav><div>Hello<p>world</p>again</div><script>x()</script>"
        "<footer>FOOT</footer></body></html>"
    )
    out = clean(raw(html, content_type="html", is_markup=True))
    assert out.text.split() == ["Hello", "world", "again"]
    assert out.title == "Tiny & short"


def test_markup_with_no_text_is_empty():
    out = clean(
        raw("<html><body><script>only()</script><nav>menu</nav></body></html>", content_type="html", is_markup=True)
    )
    assert isinstance(out, Rejected)
    assert (out.stage, out.reason, out.source) == ("clean", Reason.EMPTY, "s1")


def test_xml_declaration_does_not_break_fallback():
    out = clean(
        raw(
            '<?xml version="1.0" encoding="utf-8"?><html><body><p>Hi there</p></body></html>',
            content_type="html",
            is_markup=True,
        )
    )
    assert out.text == "Hi there"


def test_normalisation_rules():
    text = "\ufeff  Ｆｕｌｌ\u00a0width  \t tabs\r\nctrl\x00\x07chars\x9f here  \n\n\n\n  next\tpara \rlast ﬁ  "
    assert normalize_text(text) == "Full width tabs\nctrlchars here\n\nnext para\nlast fi"


def test_plain_text_keeps_fields_and_paragraphs():
    published = datetime(2024, 1, 1, tzinfo=UTC)
    doc = raw("Para one.\n\n\n\nPara   two.", title=" A\n title ", published=published, metadata={"k": "v"})
    out = clean(doc)
    assert out.text == "Para one.\n\nPara two."
    assert (out.title, out.published, out.metadata) == ("A title", published, {"k": "v"})
    assert out.metadata is not doc.metadata


def test_whitespace_and_controls_only_is_empty():
    out = clean(raw(" \n\t\x00\x01 \u200a\n"))
    assert isinstance(out, Rejected) and out.reason == Reason.EMPTY


def test_cleaner_passes_upstream_rejections_and_rejects_empty_text():
    upstream = Rejected(source="f", stage="read", reason=Reason.BINARY.value, detail="d")
    items = [raw("ok"), upstream, raw("   "), raw("fine too")]
    cleaner = Cleaner()
    out = list(cleaner.run(items))
    assert out[1] is upstream
    assert [type(o).__name__ for o in out] == ["CleanDocument", "Rejected", "Rejected", "CleanDocument"]
    assert out[2].reason == Reason.EMPTY and out[2].stage == "clean"


def test_plain_text_skips_markup_extraction_and_keeps_its_paragraphs(monkeypatch):
    """Plain text costs one normalisation pass: it never reaches the HTML extractor, which is what made cleaning
    text-heavy corpora slow, even when it contains tag-like characters."""

    def no_markup(*args, **kwargs):
        raise AssertionError("plain text went through markup extraction")

    monkeypatch.setattr("pipeline.clean.extract_markup", no_markup)
    monkeypatch.setattr("pipeline.clean.trafilatura.bare_extraction", no_markup)
    sentence = "The quick brown fox jumps over the lazy dog, said the <b>report</b>."
    article = ((sentence + "  ") * 40 + "\n\n") * 3
    docs = [raw(article) for _ in range(50)]
    expected = "\n\n".join([" ".join([sentence] * 40)] * 3)
    assert all(clean(doc).text == expected for doc in docs)


def test_long_runs_of_whitespace_collapse_in_one_pass():
    # runs the length of a whole file: a pattern that retried each position of a run would never finish here
    text = "a" + " " * 200_000 + "b" + "\n" * 200_000 + "c" + " \n" * 100_000 + "d"
    assert normalize_text(text) == "a b\n\nc\n\nd"


ARTICLE_HEAD = (
    '<meta name="author" content="Jane Roe"><meta property="og:site_name" content="Daily News">'
    '<meta name="description" content="Rates rose.">'
    '<meta property="article:section" content="Economy"><meta property="article:tag" content="rates">'
    '<meta property="article:tag" content="banks"><link rel="canonical" href="https://news.example/a/1">'
)
ARTICLE_BODY = (
    "<article><h1>Rates rise</h1><p>The central bank raised rates again on Tuesday, surprising markets that had"
    " priced a pause. Economists said the move would weigh on growth.</p><p>Its last rise, on 2019-01-02, was"
    " smaller, a spokesman recalled in the statement published with the decision.</p></article>"
)


def page(head: str) -> RawDocument:
    markup = f"<html><head><title>Rates</title>{ARTICLE_HEAD}{head}</head><body>{ARTICLE_BODY}</body></html>"
    return RawDocument(source="p.html", body=markup, content_type="html", is_markup=True)


@pytest.mark.parametrize(
    ("head", "published"),
    [
        ('<meta property="article:published_time" content="2024-05-06T07:08:09+02:00">', "2024-05-06T05:08:09+00:00"),
        ('<meta name="DC.date.issued" content="2024-05-06">', "2024-05-06T00:00:00+00:00"),
        ('<script type="application/ld+json">{"@graph": [{"@type": "WebPage"}, {"@type": "NewsArticle",'
         ' "datePublished": "2024-05-06T07:08:09Z"}]}</script>', "2024-05-06T07:08:09+00:00"),
        ('<script type="application/ld+json">{not json</script>', None),
        ("", None),  # the 2019 date in the text is a date the article mentions, not its own
    ],
)  # fmt: skip
def test_a_page_gives_the_date_it_states_and_its_heads_metadata(head, published):
    cleaned = clean(page(head))
    assert cleaned.published == (datetime.fromisoformat(published) if published else None)
    assert cleaned.metadata == {
        "author": "Jane Roe",
        "site": "Daily News",
        "description": "Rates rose.",
        "categories": ["Economy"],
        "tags": ["rates", "banks"],
        "url": "https://news.example/a/1",
    }
    assert "The central bank raised rates" in cleaned.text


def test_what_a_record_says_of_itself_wins_over_its_markup():
    doc = page('<meta property="article:published_time" content="2024-05-06T07:08:09Z">')
    doc.published = datetime(2025, 1, 1, tzinfo=UTC)
    doc.metadata = {"author": "Feed Author", "feed": "f"}
    cleaned = clean(doc)
    assert cleaned.published == datetime(2025, 1, 1, tzinfo=UTC)
    assert cleaned.metadata["author"] == "Feed Author" and cleaned.metadata["feed"] == "f"
    assert cleaned.metadata["site"] == "Daily News"


def test_a_pages_metadata_never_takes_a_record_past_the_key_limit():
    doc = page("")
    doc.metadata = {f"field_{n}": n for n in range(62)}
    cleaned = clean(doc)
    assert len(cleaned.metadata) == 64 and list(cleaned.metadata)[-2:] == ["author", "site"]
    assert check_metadata(cleaned.metadata)  # not refused
