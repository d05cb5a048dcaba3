"""The model row and the job row of a training job, moved together: started, ready, failed or abandoned.

A training job owns one model row (status training → ready | failed). The job ends with its model:
ready and succeeded together; a failure marks both failed with the same reason; a job that ended
elsewhere (cancelled) leaves its model failed, never `training` forever. The live model is never touched.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from pipeline.jobs import lease
from pipeline.reindex import search_target
from pipeline.store import model_registry, repo
from pipeline.store.models import Job, JobState, utcnow
from pipeline.store.models_ml import ModelRecord
from pipeline.train.data import Examples
from pipeline.train.job import TrainingJob, TrainRequest, summarise

ABANDONED = "its training job ended before the model was finished"

SessionFactory = Callable[[], AbstractContextManager[Session]]
Progress = Callable[[str, dict], None]


@dataclass(frozen=True)
class NeighbourSettings:
    """Where augmented runs retrieve their neighbour passages from, and under which leak rules."""

    index_prefix: str
    default_model: str  # the index's model when no version records one
    dedup: dict  # threshold, num_perm, shingle_words: near-duplicates of an example are never its neighbours
    allow_undated: bool


def run_training(
    sessions: SessionFactory,
    es,
    job_id: str,
    work: TrainingJob,
    neighbours: NeighbourSettings,
    encoder_for: Callable[[str, str], Any],  # model path, encoder variant -> query encoder
    progress_for: Callable[[str], Progress],
) -> dict[str, dict]:
    """Load the data, register the model row, find the neighbours (augmented runs), train every mode.

    Each step finds what an earlier delivery of the same job left in its work folder and goes on from
    there. Returns each mode's result for `complete`.
    """
    examples = work.load()
    with sessions() as session:
        start_model(session, job_id, work, examples)
    request = work.request
    if work.needs_neighbours:
        with sessions() as session:
            index, model_path, variant = search_target(session, neighbours.index_prefix, neighbours.default_model)
            encoder = encoder_for(model_path, variant)
            beat = progress_for(request.augment)
            found = work.find_neighbours(
                session,
                es,
                index,
                encoder,
                neighbours.dedup,
                neighbours.allow_undated,
                lambda n: beat("neighbours", {"examples_done": n, "examples": len(examples)}),
            )
        if request.augment == "fusion":
            # the vectors come from the index the neighbours were found in (an earlier delivery's, when resumed)
            work.load_vectors(es, found.index or index, encoder.dims)
    return {mode: work.run(mode, progress_for(mode)) for mode in request.modes()}


def start_model(session: Session, job_id: str, work: TrainingJob, examples: Examples) -> ModelRecord:
    """The job's model row, status training, with the labels and data hash of the examples it learns from."""
    r = work.request
    model = model_registry.start_model(
        session,
        job_id,
        work.tenant,
        r.task,
        work.base_model,
        r.augment,
        r.neighbours if r.augment != "none" else 0,
        work.params(),
    )
    model.labels, model.data_hash = examples.label_set, work.data_hash()
    return model


def complete(session: Session, job_id: str, work: TrainingJob, results: dict[str, dict]) -> bool:
    """The model ready with its metrics and the job succeeded; False (model abandoned) when the job ended meanwhile."""
    job, model = session.get(Job, job_id), model_registry.model_for_job(session, job_id)
    if job is None or job.state in JobState.FINAL:
        abandon(session, job_id)
        return False
    if model is None or work.examples is None:
        raise RuntimeError(f"training job {job_id} completed a run without a model row or examples")
    request: TrainRequest = work.request
    model.metrics, model.params = summarise(request, results), work.params()
    model.artefact_path, model.status = str(work.model_dir), "ready"
    model.index_version = work.neighbours.index if work.neighbours else None
    job.metrics = {
        **(job.metrics or {}),
        "result": {"model_id": model.id, **model.metrics},
        "runs": {m: {k: v for k, v in r.items() if k != "metrics"} for m, r in results.items()},
    }
    job.total = job.done = len(work.examples)
    job.state, job.finished_at = JobState.SUCCEEDED, utcnow()
    job.heartbeat_at = job.finished_at
    lease.release(job)
    return True


def fail(session: Session, job_id: str, error: str) -> None:
    """Model and job failed together, with the same reason."""
    model_registry.fail_model(session, job_id, error)
    repo.fail_job(session, job_id, error)
    job = session.get(Job, job_id)
    if job is not None:
        lease.release(job)


def abandon(session: Session, job_id: str) -> None:
    """The job ended without this run (cancelled, or failed elsewhere): its unfinished model follows it."""
    model_registry.fail_model(session, job_id, ABANDONED)
    job = session.get(Job, job_id)
    if job is not None:
        lease.release(job)
