"""Test-only hooks, loaded by a worker started with this folder on PYTHONPATH, on the reads of pipeline.ingest
(the counting before a job's reads is left alone):
- DOCPIPE_TEST_POISON_MARK: reading a file whose name contains it kills the process at once (os._exit), as an
  OOM kill or a crash would;
- DOCPIPE_TEST_SLOW_ITEMS: storing each document takes this many seconds more (a slow tokenizer, a slow database)."""

import os
import time

MARK = os.environ.get("DOCPIPE_TEST_POISON_MARK")
SLOW = float(os.environ.get("DOCPIPE_TEST_SLOW_ITEMS") or 0)

if MARK or SLOW:
    from celery.signals import task_prerun

    def _hook_reads(**_kwargs) -> None:
        import pipeline.ingest as ingest

        if getattr(ingest, "_hooked", False):
            return
        real_read, real_store = ingest.read_path, ingest._store_document

        def read_path(path, *args, **kwargs):
            if MARK and MARK in path.name:
                os._exit(137)
            return real_read(path, *args, **kwargs)

        def store_document(*args, **kwargs):
            time.sleep(SLOW)
            return real_store(*args, **kwargs)

        ingest.read_path, ingest._store_document, ingest._hooked = read_path, store_document, True

    task_prerun.connect(_hook_reads, weak=False)
