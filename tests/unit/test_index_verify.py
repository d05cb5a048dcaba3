"""The comparison behind `docpipe index verify`, and the restart check that triggers it."""

from __future__ import annotations

import pytest

from pipeline.index import chunk_source, text_hash
from pipeline.reindex.verify import Held, VerifyResult, compare, create_verify_job, restarted_since_last_verify


def _held(doc: str, text: str, content: str = "c1") -> Held:
    return Held(doc, content, text_hash(text))


def test_compare_sorts_chunks_into_missing_extra_stale_and_unhashed():
    expected = [
        ("d1-00000", _held("d1", "alpha")),
        ("d1-00001", _held("d1", "beta")),
        ("d2-00000", _held("d2", "gamma")),
        ("d3-00000", _held("d3", "delta")),
        ("d4-00000", _held("d4", "eps")),
    ]
    found = {
        "d1-00000": _held("d1", "alpha"),  # equal
        "d2-00000": _held("d2", "tampered"),  # other text
        "d3-00000": _held("d3", "delta", content="c0"),  # an older text of the document
        "d4-00000": Held("d4", "c1", None),  # written before chunks carried text_hash
        "d9-00000": _held("d9", "gone"),  # no such chunk in SQL
    }
    got = compare(expected, found)
    assert (got.missing, got.stale, got.extra, got.unhashed) == (
        ["d1-00001"],
        ["d2-00000", "d3-00000"],
        ["d9-00000"],
        ["d4-00000"],
    )
    assert got.drift == 4
    assert got.doc_ids() == {"d1", "d2", "d3", "d4", "d9"}


def test_equal_sides_have_no_drift():
    same = [("d1-00000", _held("d1", "alpha")), ("d1-00001", _held("d1", "beta"))]
    got = compare(same, dict(same))
    assert got.drift == 0 and not got.unhashed and not got.docs


def test_text_hash_follows_the_text_and_every_chunk_carries_it():
    from types import SimpleNamespace

    doc = SimpleNamespace(
        tenant="t",
        id="d1",
        source="s",
        content_type="txt",
        title=None,
        published=None,
        content_hash="h",
        cluster_id="d1",
        meta={},
    )
    fields = chunk_source(doc, 0, 0, 5, "alpha", [0.0], "now")
    assert fields["text_hash"] == text_hash("alpha") != text_hash("alphb")
    assert len(text_hash("\ud800 lone surrogate")) == 32  # text SQL may hold still hashes


def test_result_round_trips_and_counts_what_is_left():
    result = VerifyResult(
        index="x-v1", tenant=None, missing=2, extra=1, stale=0, repaired={"reindexed": 2}, remaining=0
    )
    again = VerifyResult.from_dict(result.to_dict())
    assert again == result and again.drift == 3 and again.drift_left == 0
    assert VerifyResult(index="x-v1", tenant="a", stale=1).drift_left == 1


@pytest.fixture
def session(tmp_path):
    from pipeline.store.db import session_scope
    from pipeline.store.models import Base

    url = f"sqlite:///{tmp_path / 'verify.db'}"
    with session_scope(url) as s:
        Base.metadata.create_all(s.get_bind())
        yield s


def _verified(session, repair: bool, starts: dict | None) -> None:
    extra = {} if starts is None else {"server_starts": starts}
    create_verify_job(session, None, repair, "test", **extra)
    session.flush()


def test_never_verified_a_node_start_after_the_first_indexing_job_asks_for_a_verify(session):
    from datetime import UTC, datetime

    from pipeline.store import repo

    written_at = datetime(2026, 1, 1, tzinfo=UTC)
    before, after = int(written_at.timestamp() * 1000) - 60_000, int(written_at.timestamp() * 1000) + 60_000
    assert not restarted_since_last_verify(session, {"node-1": after})  # nothing indexed yet: nothing to lose
    job = repo.create_job(session, "t", [])
    job.created_at, job.chunks = written_at, 3
    session.flush()
    assert not restarted_since_last_verify(session, {"node-1": before})  # the server predates every write
    assert restarted_since_last_verify(session, {"node-1": after})  # it restarted after docpipe wrote to it


def test_a_node_start_after_the_last_repairing_verify_asks_for_another(session):
    starts = {"node-1": 1_000_000}
    assert not restarted_since_last_verify(session, {})  # a server that does not say: no trigger
    _verified(session, True, {"node-1": 400_000})
    assert restarted_since_last_verify(session, starts)  # started after that verify
    _verified(session, True, {"node-1": 1_000_300})
    assert not restarted_since_last_verify(session, starts)  # the same start, read again
    assert restarted_since_last_verify(session, {"node-2": 1_000_000})  # another node
    # a verify without repair, or one that recorded nothing, fixed nothing: the repairing one still counts
    _verified(session, False, {"node-1": 5})
    _verified(session, True, None)
    assert not restarted_since_last_verify(session, starts)
