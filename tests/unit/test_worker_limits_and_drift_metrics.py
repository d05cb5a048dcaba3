"""Issue-named behaviours that need no running worker: every docpipe task carries the time limits of its kind,
task events and per-child limits are on, and /metrics shows the drift the last verify left."""

from __future__ import annotations

from pipeline.config import Settings
from pipeline.store.db import session_scope


def test_every_task_has_its_kind_s_time_limits_and_workers_send_events():
    import workers.tasks_ingest  # noqa: F401  (each module registers its tasks on the app)
    import workers.tasks_ml  # noqa: F401
    import workers.tasks_monitor  # noqa: F401
    import workers.tasks_reindex  # noqa: F401
    import workers.tasks_sources  # noqa: F401
    from workers.app import app, configure
    from workers.routing import READ_FILES, TRAIN, VERIFY_INDEX

    settings = Settings(
        worker={"read_soft_limit": 7, "read_hard_limit": 9, "reindex_soft_limit": 70, "max_tasks_per_child": 11}
    )
    try:
        conf = configure(settings).conf
        limits = conf.task_annotations
        ours = sorted(name for name in app.tasks if name.startswith("docpipe."))
        assert ours and [name for name in ours if name not in limits] == []  # no task runs without limits
        assert limits[READ_FILES] == {"soft_time_limit": 7, "time_limit": 9}
        assert limits[VERIFY_INDEX]["soft_time_limit"] == 70
        assert limits[TRAIN]["time_limit"] > limits[TRAIN]["soft_time_limit"]
        assert (conf.worker_send_task_events, conf.task_send_sent_event) == (True, True)
        assert (conf.worker_max_tasks_per_child, conf.worker_max_memory_per_child) == (11, 4 * 1024 * 1024)
    finally:
        configure()


def test_metrics_show_the_drift_the_last_verify_of_all_tenants_left(url):
    from api.v1_index import drift_metrics
    from pipeline.reindex.verify import VerifyResult, create_verify_job, record_result

    with session_scope(url) as s:
        assert {m.name: m.samples for m in drift_metrics(s)}["docpipe_index_drift_chunks"] == []
        found = create_verify_job(s, None, False, "test")
        record_result(found, VerifyResult(index="v1", tenant=None, sql_chunks=10, missing=3, extra=1))
        found.state = "succeeded"
        s.flush()
        drift = {m.name: m for m in drift_metrics(s)}["docpipe_index_drift_chunks"]
        assert {x.labels["kind"]: x.value for x in drift.samples} == {"missing": 3, "extra": 1, "stale": 0}

        repaired = create_verify_job(s, None, True, "test")
        record_result(
            repaired,
            VerifyResult(index="v1", tenant=None, missing=3, extra=1, remaining=1, left={"missing": 1}),
        )
        repaired.state = "partial"
        s.flush()
        drift = {m.name: m for m in drift_metrics(s)}["docpipe_index_drift_chunks"]
        assert {x.labels["kind"]: x.value for x in drift.samples} == {"missing": 1, "extra": 0, "stale": 0}
