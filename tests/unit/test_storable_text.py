"""Text every store takes: a NUL (PostgreSQL refuses it in text and JSON) or a lone surrogate (a JSON "\\ud800"
escape; no UTF-8 encodes it) in a record's text, title, id or metadata used to fail its whole file's transaction,
on PostgreSQL or on any database, and so did a url or id longer than SQL holds. Now they are dropped, replaced or
shortened (a long source keeps its head and a hash of the whole), and the file's other records are kept too."""

from __future__ import annotations

import json

from pipeline.formats import read_path
from pipeline.formats.files import split_names
from pipeline.store.db import session_scope
from pipeline.store.models import Document
from pipeline.types import MAX_SOURCE_BYTES, bounded_source, document_id, storable
from tests.unit.test_delete_documents import A, corpus, db, layout, steps, url  # noqa: F401 - fixtures

RECORDS = [
    {"id": "nul-1", "text": "Harbour text with a NUL \u0000 inside it.", "title": "T\u0000itle", "tag": "a\u0000b"},
    {"id": "nul\u00002", "text": "Second harbour record, whose id holds a NUL."},
    {"id": "sur-3", "text": "Harbour text with a lone \ud800 surrogate.", "title": "A \udfff title", "k\ud800": "v"},
    {"id": "ok-4", "text": "A clean record about harbour gulls."},
    {"url": "https://news.example/a?" + "utm=x&" * 800, "text": "A record whose url is 4,800 characters long."},
    {"id": "港" * 1000, "text": "A record whose id is 3,000 bytes of Chinese."},
]
SOURCES = ["nul-1", "nul2", "sur-3", "ok-4", bounded_source(RECORDS[4]["url"]), bounded_source(RECORDS[5]["id"])]


def test_storable_drops_nul_and_replaces_lone_surrogates():
    assert storable("a\x00b\ud800c\udfff") == "ab\ufffdc\ufffd"
    assert storable("plain ascii") == "plain ascii" and storable("naïve café 😀") == "naïve café 😀"


def test_a_long_source_keeps_its_head_and_a_hash_of_the_whole():
    url = "https://news.example/a?" + "utm=x&" * 800
    short = bounded_source(url)
    assert len(short.encode()) <= MAX_SOURCE_BYTES and short.startswith(url[:1900])
    assert bounded_source(url) == short and bounded_source(url + "y") != short  # one document per long url
    assert bounded_source("港" * 1000).startswith("港" * 600) and len(bounded_source("港" * 1000).encode()) <= 2000
    assert bounded_source("short") == "short"


def test_a_path_sql_cannot_hold_is_a_dead_letter(tmp_path):
    deep = tmp_path.joinpath(*["folder-with-a-long-name-" + "x" * 200] * 9, "f.txt")
    named, (letter,) = split_names([tmp_path / "ok.txt", deep])
    assert named == [str(tmp_path / "ok.txt")] and letter.reason == "invalid_name"
    assert letter.detail.startswith(f"path is {len(str(deep))} bytes long, at most 2000")
    assert len(letter.source.encode()) <= MAX_SOURCE_BYTES


def test_the_reader_hands_on_only_storable_text(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in RECORDS))
    items = list(read_path(path, 1_000_000))
    assert [item.source for item in items] == SOURCES
    for item in items:
        for text in (item.source, item.body, item.title or "", item.origin or ""):
            assert "\x00" not in text
            text.encode("utf-8")


def test_records_with_nul_surrogates_and_long_ids_are_stored_on_every_database(corpus):
    corpus.ingest(A, {"r.jsonl": "\n".join(json.dumps(r) for r in RECORDS)})
    with session_scope(corpus.url) as s:
        docs = {d.source: d for d in s.query(Document).filter(Document.tenant == A)}
    assert set(docs) == set(SOURCES) and all(d.status == "indexed" for d in docs.values())
    assert docs["nul-1"].title == "Title" and docs["nul-1"].meta["tag"] == "ab"
    assert docs["sur-3"].title == "A \ufffd title" and docs["sur-3"].meta["k"] == "v"
    assert "\ufffd surrogate" in docs["sur-3"].text
    assert docs["nul2"].id == document_id(A, "nul2")
