"""Leak-free neighbours, proven on a corpus where the answer sits in the example's own document and in a
near copy of it (ingested through the real pipeline, so the near-duplicate clusters are real)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from pipeline.embed import get_encoder
from pipeline.neighbours import LeakRule, leak_rules, retrieve
from pipeline.reindex import search_target
from pipeline.store.db import session_scope
from pipeline.types import document_id
from tests.fixtures import article, near_copy
from tests.ml_support import TOPICS, topic_text

pytestmark = pytest.mark.integration
TENANT = "t-leak"
SECRETS = ["kumquat", "quokka", "axolotl", "narwhal", "wombat", "platypus"]


def _secret(i: int) -> str:
    w = SECRETS[i]
    return f"{article(500 + i)} The vault code is {w}, and only {w} opens it: remember {w}."


def test_own_document_its_near_copy_unlinked_copies_and_later_documents_are_never_neighbours(stack, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    for i, topic in enumerate(sorted(TOPICS) * 4):
        (first / f"filler-{i}.txt").write_text(topic_text(topic, 900 + i, words=90))
    for i in (0, 1):  # the near copy is indexed first: the example's own document becomes its duplicate
        (first / f"copy-{i}.txt").write_text(near_copy(_secret(i), changes=2, seed=i))
        (second / f"own-{i}.txt").write_text(_secret(i))
    for i in (2, 3):  # the example's own document is indexed; its later near copy is the duplicate
        (first / f"own-{i}.txt").write_text(_secret(i))
        (second / f"copy-{i}.txt").write_text(near_copy(_secret(i), changes=2, seed=i))
    (first / "plain-4.txt").write_text(_secret(4))  # the example below names no document: found by MinHash
    late = article(700, sentences=4) + " The platypus vault code is platypus: platypus, platypus."
    early = article(701, sentences=4) + " Ask the platypus for the platypus vault code."
    (first / "dated.jsonl").write_text(
        json.dumps({"id": "rec-late", "text": late, "published": "2024-06-01T00:00:00Z"})
        + "\n"
        + json.dumps({"id": "rec-early", "text": early, "published": "2024-01-01T00:00:00Z"})
        + "\n"
    )
    for folder in (first, second):
        job = stack.run_job([folder], TENANT)
        assert job.state == "succeeded", job.error
    assert stack.job(job.id).skipped == 4  # every "second" file is a near duplicate of a "first" one

    def doc(name: str) -> str:
        folder = first if (first / name).exists() else second
        return document_id(TENANT, str(folder / name))

    texts = [_secret(i) for i in range(5)] + ["Where is the platypus vault code? Platypus."]
    ids = ["own-0.txt", "own-1.txt", "own-2.txt", "own-3.txt", None, None]
    times = [None] * 5 + [datetime(2024, 3, 1, tzinfo=UTC)]
    leaking = [
        doc("copy-0.txt"),
        doc("copy-1.txt"),
        doc("own-2.txt"),
        doc("own-3.txt"),
        doc("plain-4.txt"),
        document_id(TENANT, "rec-late"),
    ]

    url = stack.env["DOCPIPE_DATABASE_URL"]
    s = stack.settings()
    with session_scope(url) as session:
        index, model_path, _ = search_target(session, s.index_prefix, s.encoder_path)
        encoder = get_encoder(model_path)
        es = stack.es()
        # without the rules, the leaking document is what retrieval finds first: the corpus does leak
        open_rules = [LeakRule() for _ in texts]
        unguarded = retrieve(session, es, index, TENANT, encoder, texts, open_rules, k=3)
        for i, row in enumerate(unguarded.rows):
            assert leaking[i] in [n.doc_id for n in row], f"example {i}: the corpus should leak without rules"
        rules = leak_rules(
            session,
            TENANT,
            texts,
            ids,
            times,
            {"threshold": s.dedup.threshold, "num_perm": s.dedup.minhash_perms, "shingle_words": s.dedup.shingle_words},
        )
        guarded = retrieve(session, es, index, TENANT, encoder, texts, rules, k=3)
    assert guarded.blocked_after_search == 0  # the Elasticsearch filters themselves kept the leaks out
    for i, row in enumerate(guarded.rows):
        got = [n.doc_id for n in row]
        assert len(got) == 3 and leaking[i] not in got
        if i < 5:
            assert not any(SECRETS[i] in n.text for n in row), f"example {i} sees its own answer"
    # the time rule removes only what was published later
    assert document_id(TENANT, "rec-early") in [n.doc_id for n in guarded.rows[5]]
    assert rules[0].clusters == {doc("copy-0.txt")} and rules[2].docs == {doc("own-2.txt")}
