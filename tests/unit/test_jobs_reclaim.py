"""Reclaim and poison control on a real (SQLite) schema: who holds which file, which holders are dead,
what the sweep sends again, and how deliveries turn a file that kills its worker into a dead letter."""

from datetime import timedelta

from pipeline.errors import Reason
from pipeline.jobs import heartbeat, ownership
from pipeline.jobs.ownership import Step as Take
from pipeline.jobs.reclaim import select_reclaims
from pipeline.jobs.revive import Resend, Step
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import Document, DocumentStatus, Job, JobDocument, JobFile, JobState, Outcome
from pipeline.types import as_utc, utcnow

TTL = 20.0
REMOTE = "elsewhere:1"  # a process of another machine: only its beats tell whether it lives


def here(alive: set[str]):
    """alive_here for tests: processes named local:N are of this host, alive when in `alive`."""
    return lambda w: (w in alive) if w.startswith("local:") else None


def _job(url, files=4, read=0) -> tuple[str, list[int]]:
    """A running job with `files` files; the first `read` are read, each with one document to index."""
    with session_scope(url) as s:
        job = repo.create_job(s, "t1", ["in/"])
        job.state = JobState.RUNNING
        repo.add_job_files(s, job, [f"in/{i}.txt" for i in range(files)])
        ids = [f.id for f in repo.pending_files(s, job.id)]
        for n, file_id in enumerate(ids[:read]):
            s.get(JobFile, file_id).status = "done"
            doc_id = f"{job.id[:8]}d{n}"
            s.add(
                Document(
                    id=doc_id,
                    tenant="t1",
                    source=f"in/{n}.txt",
                    content_type="text",
                    text="x",
                    content_hash="h",
                    status=DocumentStatus.CHUNKED,
                    cluster_id=doc_id,
                )
            )
            s.add(JobDocument(job_id=job.id, document_id=doc_id, file_id=file_id, outcome=Outcome.PENDING))
        return job.id, ids


def _claim(url, job_id, ids, me, step=Take.READ, alive=frozenset()) -> list[int]:
    with session_scope(url) as s:
        return ownership.claim(s, job_id, ids, me, step, lambda o: heartbeat.dead_workers(s, o, TTL, here=here(alive)))


def _owners(url, ids) -> list[str | None]:
    with session_scope(url) as s:
        return [s.get(JobFile, i).owner for i in ids]


def test_local_workers_are_dead_once_their_pid_is_gone_remote_ones_once_silent(url):
    now = utcnow()
    with session_scope(url) as s:
        heartbeat.beat(s, "local:1", now=now - timedelta(hours=1))  # a stale beat of a live local pid
        heartbeat.beat(s, REMOTE, now=now - timedelta(seconds=TTL - 5))
        heartbeat.beat(s, "far:2", now=now - timedelta(seconds=TTL + 5))
    with session_scope(url) as s:
        dead = heartbeat.dead_workers(
            s, {"local:1", "local:2", REMOTE, "far:2", "never:3"}, TTL, now, here({"local:1"})
        )
    assert dead == {"local:2", "far:2", "never:3"}


def test_a_claim_held_by_a_live_worker_is_left_alone_a_dead_ones_is_taken_over(url):
    job_id, ids = _job(url)
    assert _claim(url, job_id, ids[:2], "local:1", alive={"local:1"}) == ids[:2]
    # a redelivered copy while the first still runs: it reads only what nobody holds
    assert _claim(url, job_id, ids, "local:2", alive={"local:1", "local:2"}) == ids[2:]
    assert _owners(url, ids) == ["local:1", "local:1", "local:2", "local:2"]
    assert _claim(url, job_id, ids[:2], "local:3", alive={"local:2", "local:3"}) == ids[:2]  # local:1 died
    with session_scope(url) as s:
        ownership.release(s, ids, "local:3")  # only its own claims
    assert _owners(url, ids) == [None, None, "local:2", "local:2"]


def test_reads_claim_unread_files_and_indexes_claim_read_ones(url):
    job_id, ids = _job(url, files=3, read=1)
    assert _claim(url, job_id, ids, "local:1", Take.READ) == ids[1:]
    assert _claim(url, job_id, ids, "local:2", Take.INDEX) == ids[:1]


def test_the_sweep_sends_again_the_files_of_dead_workers_once(url):
    job_id, ids = _job(url, files=5, read=2)
    _claim(url, job_id, ids[:2], "local:9", Take.INDEX)
    _claim(url, job_id, ids[2:4], "local:9", Take.READ)
    _claim(url, job_id, ids[4:], "local:1", Take.READ)
    with session_scope(url) as s:
        found = select_reclaims(s, TTL, files_per_task=4, here=here({"local:1"}))
    assert found == [
        Resend(job_id, Step.INDEX, (ids[0],)),  # index work goes back file by file: a poison file costs only itself
        Resend(job_id, Step.INDEX, (ids[1],)),
        Resend(job_id, Step.READ, (ids[2], ids[3])),
    ]
    assert _owners(url, ids) == [None, None, None, None, "local:1"]
    with session_scope(url) as s:
        assert select_reclaims(s, TTL, 4, here=here({"local:1"})) == []  # claims dropped: nothing sent twice


def test_the_sweep_leaves_finished_jobs_alone(url):
    job_id, ids = _job(url, files=2)
    _claim(url, job_id, ids, "local:9")
    with session_scope(url) as s:
        s.get(Job, job_id).state = JobState.CANCELLED
    with session_scope(url) as s:
        assert select_reclaims(s, TTL, 4, here=here(set())) == []


def _begin_read(url, job_id, file_id, limit=3) -> bool:
    with session_scope(url) as s:
        job = s.get(Job, job_id)
        began = ownership.begin_read(s, job, file_id, limit)
        repo.refresh_counters(s, job)
        return began


def test_a_file_taken_max_deliveries_times_becomes_a_worker_lost_dead_letter(url):
    job_id, ids = _job(url, files=2)
    assert [_begin_read(url, job_id, ids[0]) for _ in range(4)] == [True, True, True, False]
    assert _begin_read(url, job_id, ids[1])  # the other file goes on
    with session_scope(url) as s:
        poison = s.get(JobFile, ids[0])
        assert (poison.status, poison.deliveries, poison.owner) == ("failed", 3, None)
        [letter] = repo.dead_letters(s, job_id)
        assert (letter.reason, letter.stage, letter.path) == (Reason.WORKER_LOST, "read", "in/0.txt")
        assert s.get(Job, job_id).failed == 1
        assert repo.open_work(s, job_id)[0] == [ids[1]]  # the poison file is no longer open work


def test_index_deliveries_count_files_with_open_documents_and_give_up_after_the_limit(url):
    job_id, ids = _job(url, files=3, read=2)
    with session_scope(url) as s:
        s.get(JobDocument, (job_id, f"{job_id[:8]}d1")).outcome = Outcome.INDEXED
    for expected in ([ids[0]], [ids[0]], [ids[0]], []):
        with session_scope(url) as s:
            job = s.get(Job, job_id)
            assert ownership.begin_index(s, job, ids, max_deliveries=3) == expected
            repo.refresh_counters(s, job)
    with session_scope(url) as s:
        assert [s.get(JobFile, i).index_deliveries for i in ids] == [3, 0, 0]
        [letter] = repo.dead_letters(s, job_id)
        assert (letter.reason, letter.stage, letter.source) == (Reason.WORKER_LOST, "index", "in/0.txt")
        job = s.get(Job, job_id)
        assert (job.done, job.failed, job.total) == (1, 1, 2)


def test_celery_retries_are_not_deliveries_but_messages_sent_again_are(url):
    job_id, ids = _job(url, files=1, read=1)
    for count, expected in ((True, 1), (False, 1), (False, 1), (False, 1), (True, 2)):
        with session_scope(url) as s:
            job = s.get(Job, job_id)
            assert ownership.begin_index(s, job, ids, max_deliveries=3, count=count) == ids
        with session_scope(url) as s:
            assert s.get(JobFile, ids[0]).index_deliveries == expected
    job_id, ids = _job(url, files=1)
    for count in (True, False, False, False, True):  # a read retried after a database error is not counted
        with session_scope(url) as s:
            assert ownership.begin_read(s, s.get(Job, job_id), ids[0], max_deliveries=3, count=count)
    with session_scope(url) as s:
        assert s.get(JobFile, ids[0]).deliveries == 2


def test_a_jobs_heartbeat_moves_at_most_once_a_second_and_stalls_are_still_seen(url):
    job_id, _ = _job(url, files=1)

    def touch() -> object:
        with session_scope(url) as s:
            job = s.get(Job, job_id)
            repo.mark_running(s, job)
            return as_utc(job.heartbeat_at)

    first = touch()
    assert touch() == first  # a second open within HEARTBEAT_EVERY writes nothing to the shared job row
    with session_scope(url) as s:
        s.get(Job, job_id).heartbeat_at = utcnow() - repo.HEARTBEAT_EVERY * 2
    moved = touch()
    assert moved != first and utcnow() - moved < repo.HEARTBEAT_EVERY
    with session_scope(url) as s:
        assert [j.id for j in repo.stalled_jobs(s, timedelta(0))] == [job_id]
        assert repo.stalled_jobs(s, timedelta(minutes=1)) == []
