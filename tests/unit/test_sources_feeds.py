"""Feed parsing: RSS 2.0, RSS 1.0, Atom, JSON Feed, JSON lines, and unsafe or broken XML."""

import json
from datetime import UTC, datetime

import pytest

from pipeline.sources.errors import FeedError
from pipeline.sources.feeds import parse_feed
from pipeline.sources.poll import item_record, prune_spool, spool_items

RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>Markets</title><link>https://news.example/</link>
 <item><title>Rates  held</title><link>https://news.example/a/1</link><guid>tag:news,1</guid>
   <description>&lt;p&gt;The bank &lt;b&gt;held&lt;/b&gt; rates.&lt;/p&gt;</description>
   <content:encoded><![CDATA[<p>The central bank held rates at 5%.</p><p>Markets rose.</p>]]></content:encoded>
   <pubDate>Tue, 05 Mar 2024 14:30:00 +0100</pubDate></item>
 <item><title>Guid only</title><guid isPermaLink="true">https://news.example/a/2</guid>
   <description>Plain text body.</description><dc:date>2024-03-06T08:00:00Z</dc:date></item>
 <item><title>Opaque guid</title><guid isPermaLink="false">urn:uuid:1234</guid><description>x y z</description></item>
 <item><title>Relative</title><link>/a/4</link><description>Relative link.</description></item>
 <item><description>No identity at all.</description></item>
</channel></rss>"""


def test_rss2():
    feed = parse_feed(RSS, "application/rss+xml", "https://news.example/feed.xml")
    assert (feed.format, feed.title) == ("rss", "Markets")
    first, second, third, fourth = feed.items
    assert first.identity == "https://news.example/a/1" and first.guid == "tag:news,1"
    assert first.title == "Rates held"
    assert first.is_html and "held rates at 5%" in first.body  # content:encoded beats description
    assert first.published == datetime(2024, 3, 5, 13, 30, tzinfo=UTC)
    assert second.identity == "https://news.example/a/2"  # a permalink guid is the link
    assert not second.is_html and second.published == datetime(2024, 3, 6, 8, tzinfo=UTC)
    assert third.identity == "urn:uuid:1234" and third.link is None
    assert fourth.identity == "https://news.example/a/4"
    assert len(feed.skipped) == 1 and "no link or guid" in feed.skipped[0]


def test_rss1_rdf():
    data = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
         xmlns:dc="http://purl.org/dc/elements/1.1/">
 <channel rdf:about="https://old.example/"><title>Old</title></channel>
 <item rdf:about="https://old.example/1"><title>One</title><link>https://old.example/1</link>
   <description>First story.</description><dc:date>2023-01-02T03:04:05+00:00</dc:date></item>
</rdf:RDF>"""
    feed = parse_feed(data)
    assert feed.format == "rdf" and feed.title == "Old"
    (item,) = feed.items
    assert (item.identity, item.title, item.body) == ("https://old.example/1", "One", "First story.")
    assert item.published.year == 2023


ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom news</title>
 <entry><title type="html">Chips &amp;lt;up&amp;gt;</title><id>urn:1</id>
   <link rel="self" href="https://atom.example/self/1"/><link rel="alternate" href="https://atom.example/1"/>
   <published>2024-02-01T10:00:00Z</published><updated>2024-02-02T10:00:00Z</updated>
   <content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p>Chip makers <b>gained</b>.</p></div></content>
 </entry>
 <entry><title>Summary only</title><id>urn:2</id><updated>2024-02-03T00:00:00Z</updated>
   <summary>Short summary.</summary></entry>
</feed>"""


def test_atom():
    feed = parse_feed(ATOM)
    assert feed.format == "atom" and feed.title == "Atom news"
    first, second = feed.items
    assert first.identity == "https://atom.example/1" and first.guid == "urn:1"  # alternate, not self
    assert first.is_html and "<p>Chip makers <b>gained</b>.</p>" in first.body and "xhtml" not in first.body
    assert first.published == datetime(2024, 2, 1, 10, tzinfo=UTC)  # published beats updated
    assert second.identity == "urn:2" and second.body == "Short summary." and not second.is_html
    assert second.published == datetime(2024, 2, 3, tzinfo=UTC)


def test_json_feed():
    data = json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "JF",
            "home_page_url": "https://jf.example/",
            "items": [
                {
                    "id": "1",
                    "url": "posts/1",
                    "title": "One",
                    "content_html": "<p>Hi</p>",
                    "date_published": "2024-01-01T00:00:00+02:00",
                },
                {"id": 2, "content_text": "Text only"},
                "junk",
            ],
        }
    ).encode()
    feed = parse_feed(data, "application/feed+json")
    assert feed.format == "jsonfeed"
    one, two = feed.items
    assert one.identity == "https://jf.example/posts/1" and one.is_html
    assert one.published == datetime(2023, 12, 31, 22, tzinfo=UTC)
    assert (two.identity, two.body, two.is_html) == ("2", "Text only", False)
    assert feed.skipped == ["item 3: not an object"]


def test_json_lines():
    lines = [
        json.dumps(
            {"url": "https://jl.example/1", "title": "A", "text": "Alpha story.", "published": "2024-04-01T09:00:00Z"}
        ),
        "{not json",
        json.dumps({"guid": "g-2", "summary": "Beta story.", "date": "Mon, 01 Apr 2024 10:00:00 GMT"}),
        "",
        json.dumps([1, 2]),
    ]
    feed = parse_feed("\n".join(lines).encode(), "application/x-ndjson")
    assert feed.format == "jsonl"
    assert [(i.identity, i.body) for i in feed.items] == [
        ("https://jl.example/1", "Alpha story."),
        ("g-2", "Beta story."),
    ]
    assert feed.items[1].published == datetime(2024, 4, 1, 10, tzinfo=UTC)
    assert any("line 2: invalid JSON" in s for s in feed.skipped)
    assert any("not an object" in s for s in feed.skipped)


@pytest.mark.parametrize(
    "data,match",
    [
        (b"<rss><channel><item><title>x</title></channel></rss>", "malformed XML"),
        (b"<html><body>not a feed</body></html>", "unknown XML feed"),
        (b"", "empty"),
        (b"Hello, world", "not a feed"),
        (b'{"broken": ', "malformed JSON lines"),
        (b'{"version": "https://jsonfeed.org/version/1", "items": 3}', "'items' is not a list"),
    ],
)
def test_broken_feeds_raise_feed_error(data, match):
    with pytest.raises(FeedError, match=match):
        parse_feed(data)


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
]>
<rss version="2.0"><channel><item><link>https://x.example/1</link><description>&e;</description></item>
</channel></rss>"""


def test_entity_expansion_bomb_is_refused():
    with pytest.raises(FeedError, match="refused unsafe XML"):
        parse_feed(BOMB)


def test_external_entities_are_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xxe = f"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file://{secret}">]>
<rss version="2.0"><channel><item><link>https://x.example/1</link><description>&xxe;</description></item>
</channel></rss>""".encode()
    with pytest.raises(FeedError, match="refused unsafe XML") as err:
        parse_feed(xxe)
    assert "TOP-SECRET" not in str(err.value)


def test_a_plain_doctype_without_entities_is_fine():
    data = b'<?xml version="1.0"?><!DOCTYPE rss PUBLIC "-//Netscape//DTD RSS 0.91//EN" "x.dtd">' + RSS[38:]
    assert len(parse_feed(data).items) == 4


def test_spooled_records_read_back_as_documents(tmp_path):
    from pipeline.formats import read_path

    feed = parse_feed(RSS, base_url="https://news.example/feed.xml")
    path = spool_items(tmp_path / "spool", feed.items, {"source_id": "s1"})
    docs = list(read_path(path, 10**6))
    assert [d.source for d in docs] == [i.identity for i in feed.items]
    assert docs[0].is_markup and docs[0].published == feed.items[0].published
    assert docs[0].metadata["source_id"] == "s1" and docs[0].metadata["guid"] == "tag:news,1"
    assert not docs[1].is_markup and docs[1].title == "Guid only"
    assert item_record(feed.items[0], {})["text"].startswith("<")


def test_prune_keeps_the_newest_files(tmp_path):
    for name in ("20240101T000000000000Z", "20240102T000000000000Z", "20240103T000000000000Z"):
        (tmp_path / f"{name}.jsonl").write_text("{}")
    gone = prune_spool(tmp_path, keep=2)
    assert [p.name for p in gone] == ["20240101T000000000000Z.jsonl"]
    assert len(list(tmp_path.glob("*.jsonl"))) == 2
