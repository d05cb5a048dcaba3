"""What every chaos round shares: a corpus of short documents, the kill point, and the checks that a job told
the truth after the fault (counters against SQL, no document lost, each chunk once, no drift) with the round's
figures recorded for bench/results/chaos.jsonl."""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from pipeline.store.db import session_scope
from pipeline.store.models import Chunk, DeadLetter, Document, DocumentStatus, Job, JobDocument, JobFile, Outcome
from tests.fixtures import article

RESULTS = Path(__file__).parents[2] / "bench" / "results" / "chaos.jsonl"
DOCS = int(os.environ.get("DOCPIPE_CHAOS_DOCS", "150"))
ROUNDS = int(os.environ.get("DOCPIPE_CHAOS_ROUNDS", "5"))
# production's visibility timeout: a killed worker's work must come back through the reclaim, not the broker
WORKER_ENV = {
    "DOCPIPE_BROKER_VISIBILITY_TIMEOUT": "3600",
    "DOCPIPE_FILES_PER_TASK": "16",  # production's (the stack's 4 would spend a round's time on task overhead)
    "DOCPIPE_REINDEX_VERIFY_EVERY_SECONDS": "0",  # the rounds verify and repair themselves, and report the drift
    "DOCPIPE_REINDEX_VERIFY_RESTART_CHECK_SECONDS": "0",
}
# beat's sweeps: the reclaim at its production period; lost messages (the broker's own data lost, or a task
# taken off the queue by a process killed before it was recorded) are resent after 10 s without progress
BEAT_ENV = {**WORKER_ENV, "DOCPIPE_REVIVE_EVERY_SECONDS": "2", "DOCPIPE_STALL_SECONDS": "10"}


@dataclass
class Round:
    """One round's figures, as written to chaos.jsonl."""

    scenario: str
    round: int
    docs: int
    state: str = ""
    lost: int = 0
    duplicate_chunks: int = 0
    missing_chunks: int = 0
    drift_found: int = 0
    drift_after_repair: int = 0
    dead_letters: int = 0
    recovery_seconds: float | None = None
    faults: int = 0  # kills, restarts or injected refusals
    notes: dict = field(default_factory=dict)


def corpus(folder: Path, docs: int, seed: int, poison: str | None = None) -> list[Path]:
    """`docs` distinct articles of three sentences (one chunk each), one per file; `poison` names one more."""
    folder.mkdir(parents=True)
    paths = []
    for i in range(docs):
        path = folder / f"doc{i:04d}.txt"
        path.write_text(article(seed + i, sentences=3))
        paths.append(path)
    if poison:
        path = folder / f"doc{docs // 2:04d}{poison}.txt"
        path.write_text(article(seed + docs, sentences=3))
        paths.append(path)
    return paths


def files(stack, job_id: str) -> list[JobFile]:
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
        return list(session.scalars(select(JobFile).where(JobFile.job_id == job_id)))


def wait_for(predicate, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def reading(stack, job_id: str) -> bool:
    """A file of the job has been taken by a reader."""
    return any(f.deliveries for f in files(stack, job_id))


def indexing(stack, job_id: str) -> bool:
    """Documents of the job are being embedded and written."""
    return any(f.index_deliveries for f in files(stack, job_id))


def kill_at_random(stack, job_id: str, started, rng: random.Random, kill, within: float = 2.0) -> float:
    """Once `started(stack, job_id)`, wait a random moment of up to `within` seconds, then `kill()`; the job
    must still be running then (else the round tested nothing). Returns the delay chosen."""
    wait_for(lambda: started(stack, job_id), f"job {job_id} never started the step to interrupt")
    delay = rng.uniform(0.0, within)
    time.sleep(delay)
    state = stack.job(job_id).state
    kill()
    assert state in ("queued", "running"), f"job {job_id} was already {state} at the kill: nothing interrupted"
    return round(delay, 2)


def wait_final(stack, job_id: str, since: float, timeout: float = 150) -> tuple[Job, float]:
    """The job once final, and the seconds from `since` (the component back) to then."""
    job = stack.wait(job_id, timeout=timeout)
    return job, round(time.monotonic() - since, 2)


def check(stack, rec: Round, job_id: str, tenant: str, paths: list[Path]) -> None:
    """The job's counters agree with SQL, every input document is indexed, a duplicate or a dead letter, and the
    index holds each of the tenant's SQL chunks exactly once; fills `rec`. Assertions come after the figures
    are filled, so a failing round is still recorded."""
    es, alias = stack.es(), f"{stack.settings().index_prefix}-read"
    es.indices.refresh(index=alias)
    hits = es.search(index=alias, size=10_000, query={"term": {"tenant": tenant}}, source=["chunk_id"])
    in_index = [h["_source"]["chunk_id"] for h in hits["hits"]["hits"]]
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
        job = s.get(Job, job_id)
        outcomes = dict(
            s.execute(
                select(JobDocument.outcome, func.count())
                .where(JobDocument.job_id == job_id)
                .group_by(JobDocument.outcome)
            ).all()
        )
        letters = list(s.scalars(select(DeadLetter).where(DeadLetter.job_id == job_id)))
        kept = set(
            s.scalars(
                select(Document.source)
                .join(JobDocument, JobDocument.document_id == Document.id)
                .where(
                    JobDocument.job_id == job_id,
                    JobDocument.outcome.in_((Outcome.INDEXED, Outcome.DUPLICATE, Outcome.UNCHANGED)),
                )
            )
        )
        in_sql = list(
            s.scalars(
                select(Chunk.id)
                .join(Document, Document.id == Chunk.document_id)
                .where(Document.tenant == tenant, Document.status == DocumentStatus.INDEXED)
            )
        )
        counters = (job.state, job.done, job.skipped + job.unchanged, job.failed, job.total)
    lettered = {lt.path or lt.source for lt in letters} | {lt.source for lt in letters}
    rec.state, rec.dead_letters = job.state, len(letters)
    rec.lost = sum(1 for p in paths if str(p) not in kept and str(p) not in lettered)
    rec.duplicate_chunks = len(in_index) - len(set(in_index)) + len(set(in_index) - set(in_sql))
    rec.missing_chunks = len(set(in_sql) - set(in_index))
    rec.notes["letters"] = sorted({lt.reason for lt in letters})

    indexed = outcomes.get(Outcome.INDEXED, 0)
    skipped = outcomes.get(Outcome.DUPLICATE, 0) + outcomes.get(Outcome.UNCHANGED, 0)
    assert counters[1:] == (indexed, skipped, len(letters), len(paths)), f"job counters {counters} vs SQL"
    assert outcomes.get(Outcome.PENDING, 0) == 0 or job.state == "failed", f"{job.state} with pending documents"
    assert rec.lost == 0, f"{rec.lost} input documents neither indexed, a duplicate nor a dead letter"
    assert rec.duplicate_chunks == 0, f"{rec.duplicate_chunks} chunk(s) in the index twice or not in SQL"
    assert sorted(in_index) == sorted(in_sql) and len(in_sql) == indexed > 0


def verify_and_repair(stack, rec: Round, tenant: str, repair: bool) -> None:
    """`index verify` for the tenant (the domain's run_verify); with `repair`, drift found is repaired from SQL
    and verified again. The drift left must be none."""
    from pipeline.index import IndexLayout
    from pipeline.reindex.verify import run_verify

    s = stack.settings()
    layout = IndexLayout(stack.es(), s.index_prefix)
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
        found = run_verify(session, layout, tenant)
    rec.drift_found = found.drift
    if found.drift and repair:
        with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
            repaired = run_verify(session, layout, tenant, repair_tools(stack, layout))
        rec.notes["repaired"] = repaired.repaired
        with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
            rec.drift_after_repair = run_verify(session, layout, tenant).drift
    else:
        rec.drift_after_repair = found.drift
    assert rec.drift_after_repair == 0, f"index verify: {found.to_dict()}"


def repair_tools(stack, layout):
    from pipeline.chunk import Chunker
    from pipeline.embed import get_encoder
    from pipeline.encoders import split
    from pipeline.reindex import Tools

    s = stack.settings()
    return Tools(
        layout=layout,
        encoder_for=lambda path, variant: get_encoder(path, s.device, s.embed_batch_size, *split(variant)),
        chunker_for=Chunker.for_model,
        default_model=s.encoder_path,
        default_tokens=s.chunk.tokens,
        default_overlap=s.chunk.overlap,
        configured_model=s.encoder_model,
        bulk_chunk_size=s.bulk_chunk_size,
        bulk_max_retries=s.bulk_max_retries,
    )


def record(rec: Round, rounds: list[Round]) -> None:
    rounds.append(rec)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as fh:
        fh.write(json.dumps({**asdict(rec), "at": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
