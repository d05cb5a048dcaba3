"""An index version keeps the encoder it was built with: changed DOCPIPE_ENCODER_* settings reach the index only
through a reindex, and a quantised build is judged against fp32 on the tenants' chunks before it can be swapped in.

Real workers: the gpu worker is restarted with the int8 settings, as an operator would restart it."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from pipeline.encoders import guard
from pipeline.reindex import live_row
from pipeline.store.db import session_scope
from pipeline.store.models import IndexVersion
from pipeline.store.tenants import get_setting
from tests.conftest import stack_of_its_own
from tests.fixtures import article

pytestmark = pytest.mark.integration

TENANT = "t-encver"
INT8 = {"DOCPIPE_ENCODER_BACKEND": "onnx", "DOCPIPE_ENCODER_QUANTIZE": "int8"}


@pytest.fixture(scope="module")
def stack(noida, tmp_path_factory):
    with stack_of_its_own(noida, tmp_path_factory, "encver") as own:
        yield own


def _files(folder, first: int, n: int):
    folder.mkdir()
    for i in range(first, first + n):
        (folder / f"a{i}.txt").write_text(article(i))
    return [folder]


def _versions(stack) -> dict[str, tuple[str, str | None]]:
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
        return {r.name: (r.state, r.encoder) for r in s.scalars(select(IndexVersion))}


def _reindex(stack) -> str:
    from pipeline.reindex import create_reindex_job
    from workers.app import configure
    from workers.tasks_reindex import reindex

    configure(stack.settings())
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
        job_id = create_reindex_job(s, {"action": "build", "reason": "int8"}).id
    reindex.delay(job_id)
    return job_id


def _finished(stack, job_id: str, timeout: float = 600):
    """The job once it ended. A message sent just after a consumer was killed while it waited on the queue can go
    to the dead consumer (noida-db, like Redis, hands it over before it notices the closed connection): what beat's
    revive sweep recovers in a stack, sent here every 20 s (it resends only a job untouched for 20 s whose queue
    is empty, and every step is safe to run twice)."""
    from workers.tasks_ingest import revive_jobs

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = stack.wait(job_id, timeout=min(20, max(deadline - time.monotonic(), 1)), lenient=True)
        if job is not None:
            return job
        revive_jobs.delay(20)
    raise AssertionError(f"job {job_id} did not finish within {timeout}s: {stack.job(job_id).state}")


def _restart_gpu(stack, **env: str) -> None:
    stack.kill_worker("worker-gpu")
    stack.start_worker("worker-gpu", **env)


def test_int8_settings_reach_the_index_only_through_a_guarded_reindex(stack, tmp_path):
    job = _finished(stack, stack.submit(_files(tmp_path / "first", 0, 6), TENANT))
    assert job.state == "succeeded", job.error
    ((v1, (state, encoder)),) = _versions(stack).items()
    assert (state, encoder) == ("live", "torch")

    # the operator switches to int8, with a minimum no int8 encoder reaches
    _restart_gpu(stack, **INT8, DOCPIPE_ENCODER_MIN_COSINE="0.99999")
    job = _finished(stack, stack.submit(_files(tmp_path / "second", 6, 2), TENANT))
    assert job.state == "succeeded", job.error  # the live version still embeds with its own (torch) encoder

    job = _finished(stack, _reindex(stack))
    assert job.state == "failed" and "onnx-int8 encoder may not serve" in job.error, job.error
    assert "not swapped in" in job.error and "docpipe reindex --discard" in job.error
    assert not job.options.get("guarded")
    versions = _versions(stack)
    build = next(name for name in versions if name != v1)
    assert versions == {v1: ("live", "torch"), build: ("building", "onnx-int8")}
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
        figures = get_setting(s, TENANT, guard.SETTING)[build]
        assert figures["encoder"] == "onnx-int8" and figures["chunks"] >= 8 and figures["mean_cosine"] < 0.99999

    # with the default minimum the same build passes, is finished and swapped in; ingest then writes int8 vectors
    _restart_gpu(stack, **INT8)
    job = _finished(stack, _reindex(stack))
    assert job.state == "succeeded" and job.options["guarded"], job.error  # judged once, not at every step
    assert _versions(stack)[build] == ("live", "onnx-int8")
    job = _finished(stack, stack.submit(_files(tmp_path / "third", 8, 2), TENANT))
    assert job.state == "succeeded" and job.done == 2, job.error

    # back to PyTorch: the settings alone leave the int8 version as it is
    _restart_gpu(stack)
    job = _finished(stack, stack.submit(_files(tmp_path / "fourth", 10, 1), TENANT))
    assert job.state == "succeeded", job.error
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
        live = live_row(s, stack.settings().index_prefix)
        assert (live.name, live.encoder) == (build, "onnx-int8")
