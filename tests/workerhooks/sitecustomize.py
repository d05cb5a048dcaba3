"""A test-only hook, loaded by a worker started with this folder on PYTHONPATH: reading a file whose name
contains DOCPIPE_TEST_POISON_MARK kills the process at once (os._exit), as an OOM kill or a crash would."""

import os

MARK = os.environ.get("DOCPIPE_TEST_POISON_MARK")

if MARK:
    from celery.signals import task_prerun

    def _poison_reads(**_kwargs) -> None:
        import pipeline.ingest as ingest

        if getattr(ingest, "_poisoned", False):
            return
        real = ingest.read_path

        def read_path(path, *args, **kwargs):
            if MARK in path.name:
                os._exit(137)
            return real(path, *args, **kwargs)

        ingest.read_path, ingest._poisoned = read_path, True

    task_prerun.connect(_poison_reads, weak=False)
