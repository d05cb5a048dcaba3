"""The run lease and the backoff, on a real (SQLite) schema: a due source starts once, a busy one
not at all, and failures push the next run out exponentially."""

from datetime import timedelta

import pytest

from migrations.runner import upgrade
from pipeline.sources import InvalidSource, catalog
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models_sources import Source
from pipeline.types import utcnow

LEASE = 600


@pytest.fixture
def url(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    return url


def _add(url, location="https://feeds.example/a.xml", every=300):
    with session_scope(url) as s:
        return catalog.add_source(s, "feed", location, every, "t1").id


def test_add_validates_and_refuses_duplicates(url, tmp_path):
    _add(url)
    with session_scope(url) as s, pytest.raises(InvalidSource, match="already a feed source"):
        catalog.add_source(s, "feed", "https://feeds.example/a.xml", 60, "t1")
    with session_scope(url) as s, pytest.raises(InvalidSource, match="no such folder"):
        catalog.add_source(s, "folder", str(tmp_path / "nope"), 60, "t1")
    (tmp_path / "loop").symlink_to("loop")
    with session_scope(url) as s, pytest.raises(InvalidSource, match="symlink loop"):
        catalog.add_source(s, "folder", str(tmp_path / "loop" / "docs"), 60, "t1")
    with session_scope(url) as s:
        folder = catalog.add_source(s, "folder", str(tmp_path), 60, "t1")
        assert folder.location == str(tmp_path.resolve())
        assert catalog.find_source(s, folder.id[:8]).id == folder.id


def test_a_due_source_is_claimed_once(url):
    sid = _add(url)
    now = utcnow()
    with session_scope(url) as s:
        first = catalog.claim_due(s, now, LEASE)
    with session_scope(url) as s:
        second = catalog.claim_due(s, now + timedelta(seconds=20), LEASE)
        forced = catalog.claim(s, sid, now, LEASE, force=True)
    assert [c[0] for c in first] == [sid] and second == [] and forced is None
    with session_scope(url) as s:
        assert catalog.begin_run(s, sid, "not-the-token") is None
        source = catalog.begin_run(s, sid, first[0][1])
        catalog.finish_success(source, now + timedelta(seconds=5), "ok")
    with session_scope(url) as s:
        # not due again until a full interval after the run started
        assert catalog.claim_due(s, now + timedelta(seconds=299), LEASE) == []
        assert [c[0] for c in catalog.claim_due(s, now + timedelta(seconds=300), LEASE)] == [sid]


def test_a_source_whose_job_has_not_ended_is_busy(url):
    sid = _add(url)
    now = utcnow()
    with session_scope(url) as s:
        ((_, token),) = catalog.claim_due(s, now, LEASE)
        job = repo.create_job(s, "t1", ["/x.jsonl"], kind="feed")
        catalog.finish_success(catalog.begin_run(s, sid, token), now, "ok", job.id)
        job_id = job.id
    later = now + timedelta(hours=1)
    with session_scope(url) as s:
        assert catalog.claim_due(s, later, LEASE) == []
        assert "still queued" in catalog.busy_reason(s, s.get(Source, sid), later, LEASE)
        repo.cancel_job(s, repo.get_job(s, job_id))
    with session_scope(url) as s:
        assert len(catalog.claim_due(s, later, LEASE)) == 1


def test_an_expired_lease_can_be_taken_over(url):
    sid = _add(url)
    now = utcnow()
    with session_scope(url) as s:
        ((_, old),) = catalog.claim_due(s, now, LEASE)
    with session_scope(url) as s:
        new = catalog.claim(s, sid, now + timedelta(seconds=LEASE + 1), LEASE)
        assert new and new != old
        assert catalog.begin_run(s, sid, old) is None  # the stale run's result is discarded


def test_failures_back_off_exponentially_and_success_resets(url):
    sid = _add(url, every=60)
    now = utcnow()
    delays = []
    for n in range(4):
        with session_scope(url) as s:
            token = catalog.claim(s, sid, now, LEASE, force=True)
            catalog.finish_failure(catalog.begin_run(s, sid, token), now, f"boom {n}", backoff_cap=300)
        with session_scope(url) as s:
            src = s.get(Source, sid)
            delays.append((catalog.aware(src.next_run_at) - now).total_seconds())
            assert src.failures == n + 1 and src.last_error == f"boom {n}" and src.running_since is None
    assert delays == [120, 240, 300, 300]
    with session_scope(url) as s:
        token = catalog.claim(s, sid, now, LEASE, force=True)
        catalog.finish_success(catalog.begin_run(s, sid, token), now, "fine")
    with session_scope(url) as s:
        src = s.get(Source, sid)
        assert (src.failures, src.last_error, src.last_status) == (0, None, "fine")
        assert (catalog.aware(src.next_run_at) - now).total_seconds() == 60
