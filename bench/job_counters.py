"""What keeping a job's counters exact costs as the job grows, all figures from one run.

A job's counters (indexed, unchanged, duplicates, failed, total, chunks) are recomputed from all its rows
(pipeline.store.repo.refresh_counters), so that they are right whatever was redelivered. For jobs of N documents
in a fresh SQLite database (migrated to head, so with the job_documents (job_id, outcome) index of migration 0019)
it times one recount and one count of the job's pending work with the index and, as the baseline of the same run,
after dropping it; and it gives the recounts a whole job makes, at that size, when every file recounts (before) and
when a task recounts at most every PROGRESS_SECONDS and at its end (workers/tasks_ingest.py), for tasks of 16
files, and the seconds of recounting that makes over the job (a recount costs on average half its cost at the end).

    python bench/job_counters.py [--sizes 1000,10000,50000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, text  # noqa: E402

from migrations.runner import upgrade as migrate  # noqa: E402
from pipeline.store import repo  # noqa: E402
from pipeline.store.db import session_scope  # noqa: E402
from pipeline.store.models import Document, Job, JobDocument, JobFile, Outcome  # noqa: E402

FILES_PER_TASK = 16


def build(url: str, n: int) -> str:
    migrate(url)
    with session_scope(url) as s:
        job = Job(id=uuid.uuid4().hex, tenant="bench", kind="ingest", state="running")
        s.add(job)
        s.flush()
        ids = [uuid.uuid4().hex for _ in range(n)]
        s.execute(
            insert(JobFile),
            [{"job_id": job.id, "path": f"/in/{i}.txt", "status": "done", "records": 1} for i in range(n)],
        )
        s.execute(
            insert(Document),
            [
                {
                    "id": d,
                    "tenant": "bench",
                    "source": d,
                    "status": "indexed",
                    "cluster_id": d,
                    "chunk_count": 3,
                    "content_type": "text/plain",
                    "text": "x",
                    "content_hash": d,
                }
                for d in ids
            ],
        )
        outcomes = (Outcome.INDEXED,) * 8 + (Outcome.DUPLICATE, Outcome.PENDING)
        s.execute(
            insert(JobDocument),
            [{"job_id": job.id, "document_id": d, "outcome": outcomes[i % len(outcomes)]} for i, d in enumerate(ids)],
        )
        return job.id


def timed(url: str, job_id: str, rounds: int = 5) -> tuple[float, float]:
    with session_scope(url) as s:
        job = s.get(Job, job_id)
        started = time.perf_counter()
        for _ in range(rounds):
            repo.refresh_counters(s, job)
        recount = (time.perf_counter() - started) / rounds * 1000
        started = time.perf_counter()
        for _ in range(rounds):
            repo.pending_work(s, job_id)
        pending = (time.perf_counter() - started) / rounds * 1000
        s.rollback()
    return recount, pending


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--out", default=str(ROOT / "bench/results/job_counters.jsonl"))
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="docpipe-counters-"))
    print(
        f"{'docs':>7}{'recount ms':>12}{'no index':>10}{'pending ms':>12}{'no index':>10}"
        f"{'recounts/job before':>21}{'after':>8}"
    )
    for n in (int(x) for x in args.sizes.split(",")):
        url = f"sqlite:///{folder}/counters-{n}.db"
        job_id = build(url, n)
        recount, pending = timed(url, job_id)
        with session_scope(url) as s:
            s.execute(text("DROP INDEX ix_job_documents_job_outcome"))
        base_recount, base_pending = timed(url, job_id)
        tasks = -(-n // FILES_PER_TASK)
        # before: every file read recounted, and each index task at its claim, after its batch and at its end;
        # after: each read task at its last file (tasks of 16 files take well under PROGRESS_SECONDS more), each
        # index task at its claim and its end
        before, after = n + 3 * tasks, 3 * tasks
        row = {
            "bench": "job_counters",
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "documents": n,
            "recount_ms": round(recount, 1),
            "recount_ms_without_index": round(base_recount, 1),
            "recount_speedup": round(base_recount / recount, 2),
            "pending_ms": round(pending, 1),
            "pending_ms_without_index": round(base_pending, 1),
            "recounts_per_job_before": before,
            "recounts_per_job_after": after,
            "recount_seconds_per_job_before": round(before * base_recount / 2 / 1000, 1),
            "recount_seconds_per_job_after": round(after * recount / 2 / 1000, 1),
        }
        print(f"{n:>7}{recount:>12.1f}{base_recount:>10.1f}{pending:>12.1f}{base_pending:>10.1f}{before:>21}{after:>8}")
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        print(
            f"{'':>7}recounting over the whole job: {row['recount_seconds_per_job_before']} s before, "
            f"{row['recount_seconds_per_job_after']} s after"
        )


if __name__ == "__main__":
    main()
