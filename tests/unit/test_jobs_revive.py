"""The revive sweep's selection on a real (SQLite) schema: what each stalled job gets sent again,
depending on its state, its open work and which jobs' messages wait in the queues."""

from datetime import timedelta

from pipeline.jobs.revive import Resend, Step, groups, revived_jobs, select_resends
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import Job, JobDocument, JobState, Outcome

STALLED = timedelta(0)  # anything touched before now counts as stalled
FRESH = timedelta(hours=1)


def _job(url, state=JobState.RUNNING, files=0, read=0, indexed_files=0, kind="ingest") -> tuple[str, list[int]]:
    """A job with `files` files, the first `read` of them read (each with one document), the first
    `indexed_files` of those indexed."""
    with session_scope(url) as s:
        job = repo.create_job(s, "t1", ["in/"], kind=kind)
        job.state = state
        repo.add_job_files(s, job, [f"in/{i}.txt" for i in range(files)])
        ids = [f.id for f in repo.pending_files(s, job.id)]
        for n, file_id in enumerate(ids[:read]):
            repo.pending_files(s, job.id, [file_id])[0].status = "read"
            outcome = Outcome.INDEXED if n < indexed_files else Outcome.PENDING
            s.add(JobDocument(job_id=job.id, document_id=f"{job.id[:8]}{n}", file_id=file_id, outcome=outcome))
        return job.id, ids


NOTHING = frozenset()  # no job's message waits in the queue
UNKNOWN = None  # the queue could not be read: every job may have a message there


def _select(url, after=STALLED, ingest=NOTHING, gpu=NOTHING, size=2) -> list[Resend]:
    with session_scope(url) as s:
        return select_resends(s, after, ingest, gpu, size)


def test_a_queued_job_gets_its_start_again(url):
    job_id, _ = _job(url, JobState.QUEUED)
    assert _select(url) == [Resend(job_id, Step.START)]


def test_unread_files_go_to_reads_and_read_ones_to_index_tasks_in_groups(url):
    job_id, ids = _job(url, files=5, read=3, indexed_files=1)
    assert _select(url) == [
        Resend(job_id, Step.READ, (ids[3], ids[4])),
        Resend(job_id, Step.INDEX, (ids[1], ids[2])),
    ]


def test_a_queue_holding_a_message_of_the_job_or_that_cannot_be_read_gets_nothing_more(url):
    job_id, ids = _job(url, files=3, read=1)
    for waiting in (frozenset({job_id}), UNKNOWN):
        assert _select(url, ingest=waiting) == [Resend(job_id, Step.INDEX, (ids[0],))]
        assert _select(url, gpu=waiting) == [Resend(job_id, Step.READ, (ids[1], ids[2]))]
        assert _select(url, ingest=waiting, gpu=waiting) == []


def test_other_jobs_messages_and_beats_sweeps_in_a_queue_hold_nothing_back(url):
    # the sweeps beat sends with the revive (job-less messages) and other jobs' work kept the ingest queue from
    # ever being empty, and a job whose read was lost stayed `running` for good
    job_id, ids = _job(url, files=3, read=1)
    busy = frozenset({"another-job"})
    assert _select(url, ingest=busy, gpu=busy) == [
        Resend(job_id, Step.READ, (ids[1], ids[2])),
        Resend(job_id, Step.INDEX, (ids[0],)),
    ]


def test_a_job_with_nothing_open_gets_an_empty_index_task_that_closes_it(url):
    job_id, _ = _job(url, files=1, read=1, indexed_files=1)
    assert _select(url) == [Resend(job_id, Step.INDEX, ())]


def test_unread_files_hold_back_the_closing_index_task(url):
    job_id, ids = _job(url, files=1)
    assert _select(url) == [Resend(job_id, Step.READ, (ids[0],))]


def test_fresh_finished_and_non_file_jobs_are_left_alone(url):
    _job(url, JobState.SUCCEEDED, files=1)
    _job(url, kind="train")
    assert _select(url) == []
    _job(url, files=1)
    assert _select(url, after=FRESH) == []


def test_a_revived_job_gets_a_heartbeat_so_the_next_sweep_waits_a_stall_period(url):
    job_id, _ = _job(url, files=1)
    with session_scope(url) as s:
        before = s.get(Job, job_id).heartbeat_at
    assert revived_jobs(_select(url)) == [job_id]
    with session_scope(url) as s:
        assert s.get(Job, job_id).heartbeat_at is not None and s.get(Job, job_id).heartbeat_at != before
    assert _select(url, after=timedelta(minutes=5)) == []


def test_groups_cut_ids_into_runs_of_at_most_size():
    assert groups([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert groups([], 3) == []
    assert revived_jobs([Resend("a", Step.READ), Resend("b", Step.START), Resend("a", Step.INDEX)]) == ["a", "b"]


def test_a_stalled_reindex_or_rollback_job_gets_its_next_step_again_unless_it_waits_in_the_gpu_queue(url):
    from pipeline.reindex import create_reindex_job

    with session_scope(url) as s:
        queued = create_reindex_job(s, {"action": "build"}).id  # its first message was lost
        running = create_reindex_job(s, {"action": "rollback"}, "rollback")
        running.state = JobState.RUNNING
        running = running.id
        done = create_reindex_job(s, {"action": "build"})
        done.state = JobState.SUCCEEDED
    assert _select(url, gpu=UNKNOWN) == []  # the queue may still hold the step
    assert _select(url, gpu=frozenset({queued})) == [Resend(running, Step.REINDEX)]  # the queued one's step waits
    assert _select(url, FRESH) == []
    assert _select(url, ingest=UNKNOWN) == [Resend(queued, Step.REINDEX), Resend(running, Step.REINDEX)]
    with session_scope(url) as s:  # each revived job got a heartbeat: the next sweep waits a stall period again
        assert all(s.get(Job, j).heartbeat_at is not None for j in (queued, running))
