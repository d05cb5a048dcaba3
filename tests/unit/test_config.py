"""Settings groups: every documented DOCPIPE_* variable reaches its field, and each step's defaults are the group's."""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
from pathlib import Path

import pytest

from pipeline.chunk import Chunker
from pipeline.config import (
    AlertSettings,
    ChunkSettings,
    DedupSettings,
    FetchSettings,
    Settings,
    TrainSettings,
    defaults,
    known_variables,
    unknown_variables,
)
from pipeline.dedup import Deduplicator
from pipeline.ingest import ReadSteps
from pipeline.monitor.alerts import SpikeRule
from pipeline.sources.fetch import FetchPolicy
from pipeline.train.job import TrainRequest
from pipeline.train.trainer import TrainConfig

# variable, value set, path of the field under Settings, value expected there
DOCUMENTED = [
    ("DOCPIPE_DATA_DIR", "/tmp/somewhere", "data_dir", Path("/tmp/somewhere")),
    ("DOCPIPE_DATABASE_URL", "sqlite:///x.db", "database_url", "sqlite:///x.db"),
    ("DOCPIPE_INDEX_PREFIX", "other-chunks", "index_prefix", "other-chunks"),
    ("DOCPIPE_DEVICE", "cpu", "device", "cpu"),
    ("DOCPIPE_MAX_FILE_BYTES", "1234", "max_file_bytes", 1234),
    ("DOCPIPE_BROKER_KEY_PREFIX", "a:", "broker_key_prefix", "a:"),
    ("DOCPIPE_REVIVE_EVERY_SECONDS", "7", "revive_every_seconds", 7.0),
    ("DOCPIPE_STALL_SECONDS", "9", "stall_seconds", 9.0),
    ("DOCPIPE_CHUNK_TOKENS", "120", "chunk.tokens", 120),
    ("DOCPIPE_CHUNK_OVERLAP", "12", "chunk.overlap", 12),
    ("DOCPIPE_DEDUP_THRESHOLD", "0.6", "dedup.threshold", 0.6),
    ("DOCPIPE_MINHASH_PERMS", "64", "dedup.minhash_perms", 64),
    ("DOCPIPE_SHINGLE_WORDS", "3", "dedup.shingle_words", 3),
    ("DOCPIPE_FETCH_TIMEOUT", "3.5", "fetch.timeout", 3.5),
    ("DOCPIPE_FETCH_MAX_BYTES", "999", "fetch.max_bytes", 999),
    ("DOCPIPE_FETCH_ALLOW_NETWORKS", "10.0.0.0/8", "fetch.allow_networks", "10.0.0.0/8"),
    ("DOCPIPE_SOURCES_TICK_SECONDS", "4", "sources.tick_seconds", 4.0),
    ("DOCPIPE_SOURCE_BACKOFF_MAX", "60", "sources.backoff_max", 60),
    ("DOCPIPE_SOURCE_LEASE_SECONDS", "30", "sources.lease_seconds", 30),
    ("DOCPIPE_FEED_FILES_KEPT", "5", "sources.feed_files_kept", 5),
    ("DOCPIPE_API_HOST", "0.0.0.0", "api.host", "0.0.0.0"),
    ("DOCPIPE_API_PORT", "8123", "api.port", 8123),
    ("DOCPIPE_API_MAX_UPLOAD_FILES", "7", "api.max_upload_files", 7),
    ("DOCPIPE_API_MAX_JSON_BYTES", "2048", "api.max_json_bytes", 2048),
    ("DOCPIPE_API_MAX_K", "50", "api.max_k", 50),
    ("DOCPIPE_API_COOKIE_SECURE", "true", "api.cookie_secure", True),
    ("DOCPIPE_REINDEX_BATCH_DOCS", "8", "reindex.batch_docs", 8),
    ("DOCPIPE_REINDEX_EVERY_SECONDS", "600", "reindex.every_seconds", 600.0),
    ("DOCPIPE_REINDEX_KEEP_RETIRED", "1", "reindex.keep_retired", 1),
    ("DOCPIPE_ALERT_WEBHOOKS", "http://h/x", "alert.webhooks", "http://h/x"),
    ("DOCPIPE_ALERT_WINDOW_HOURS", "2", "alert.window_hours", 2),
    ("DOCPIPE_ALERT_BASELINE_HOURS", "24", "alert.baseline_hours", 24),
    ("DOCPIPE_ALERT_SIGMA", "2.5", "alert.sigma", 2.5),
    ("DOCPIPE_ALERT_MIN_ITEMS", "3", "alert.min_items", 3),
    ("DOCPIPE_INFER_TOKEN_BUDGET", "4096", "infer.token_budget", 4096),
    ("DOCPIPE_INFER_COMPILE", "1", "infer.compile", True),
    ("DOCPIPE_CLASSIFY_DOCS_PER_BATCH", "32", "infer.classify_docs_per_batch", 32),
    ("DOCPIPE_TRAIN_LR", "0.001", "train.lr", 0.001),
    ("DOCPIPE_TRAIN_MAX_LENGTH", "128", "train.max_length", 128),
    ("DOCPIPE_TRAIN_PATIENCE", "4", "train.patience", 4),
    ("DOCPIPE_TRAIN_EVAL_FRACTION", "0.3", "train.eval_fraction", 0.3),
    ("DOCPIPE_TRAIN_CHECKPOINT_STEPS", "10", "train.checkpoint_steps", 10),
    ("DOCPIPE_TRAIN_ALLOW_UNDATED_NEIGHBOURS", "false", "train.allow_undated_neighbours", False),
    ("DOCPIPE_WORKER_OUTAGE_SECONDS", "120", "worker.outage_seconds", 120.0),
]


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env of the checkout is read
    for name in list(os.environ):
        if name.startswith("DOCPIPE_"):
            monkeypatch.delenv(name)
    return monkeypatch


def _field(settings: Settings, path: str):
    value = settings
    for part in path.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize(("variable", "raw", "path", "expected"), DOCUMENTED, ids=[d[0] for d in DOCUMENTED])
def test_documented_variable_reaches_its_field(clean_env, variable, raw, path, expected):
    assert _field(Settings(), path) != expected  # the default differs, so the variable is what changed it
    clean_env.setenv(variable, raw)
    assert _field(Settings(), path) == expected


def test_dotenv_file_reaches_nested_groups(clean_env, tmp_path):
    (tmp_path / ".env").write_text("DOCPIPE_TRAIN_SEED=99\nDOCPIPE_MINHASH_PERMS=32\nDOCPIPE_UNKNOWN_THING=1\n")
    settings = Settings()
    assert (settings.train.seed, settings.dedup.minhash_perms) == (99, 32)


def test_a_bare_name_without_the_prefix_is_not_read(clean_env):
    clean_env.setenv("MINHASH_PERMS", "7")
    clean_env.setenv("LR", "0.5")
    settings = Settings()
    assert (settings.dedup.minhash_perms, settings.train.lr) == (128, 5e-5)


def test_groups_build_by_field_name():
    assert DedupSettings(minhash_perms=16).minhash_perms == 16


def _default(cls, name):
    if dataclasses.is_dataclass(cls):
        return {f.name: f.default for f in dataclasses.fields(cls)}[name]
    return inspect.signature(cls).parameters[name].default


def test_train_request_and_run_defaults_are_the_train_group(clean_env):
    train = defaults(TrainSettings)
    assert Settings().train == train
    for name in TrainSettings.model_fields.keys() - {"allow_undated_neighbours"}:
        assert _default(TrainRequest, name) == getattr(train, name), name
    for name in ("max_length", "epochs", "batch_size", "grad_accum", "lr", "patience", "seed", "checkpoint_steps"):
        assert _default(TrainConfig, name) == getattr(train, name), name


def test_step_defaults_are_their_groups():
    chunk, dedup = defaults(ChunkSettings), defaults(DedupSettings)
    assert (_default(Chunker, "chunk_tokens"), _default(Chunker, "overlap_tokens")) == (chunk.tokens, chunk.overlap)
    assert (_default(Deduplicator, "threshold"), _default(Deduplicator, "num_perm")) == (
        dedup.threshold,
        dedup.minhash_perms,
    )
    assert _default(Deduplicator, "shingle_words") == dedup.shingle_words
    assert ReadSteps(chunker=None, max_file_bytes=1).dedup == dedup
    alert = defaults(AlertSettings)
    assert SpikeRule() == SpikeRule(
        alert.window_hours,
        alert.baseline_hours,
        alert.sigma,
        alert.min_items,
        alert.min_baseline_windows,
        alert.std_floor,
    )
    fetch = defaults(FetchSettings)
    policy = FetchPolicy()
    assert (policy.timeout, policy.max_bytes, policy.max_redirects, policy.user_agent) == (
        fetch.timeout,
        fetch.max_bytes,
        fetch.max_redirects,
        fetch.user_agent,
    )


def test_a_mistyped_variable_is_named_with_the_setting_meant():
    lines = unknown_variables(
        {
            "DOCPIPE_ES_URL": "http://es:9200",  # ignored before without a word: docpipe ran on the embedded server
            "DOCPIPE_WORKER_OUTAGE_SECOND": "60",
            "DOCPIPE_XYZZY": "1",
            "DOCPIPE_ELASTICSEARCH_URL": "http://es:9200",
            "DOCPIPE_MINHASH_PERMS": "64",  # a field read by its alias
            "DOCPIPE_WORKER_READ_SOFT_LIMIT": "5",  # a group's field, by its prefix
            "DOCPIPE_TEST_POISON_MARK": "x",  # the test suite's own
            "OTHER_ES_URL": "x",
        }
    )
    assert lines == [
        "DOCPIPE_ES_URL is not a docpipe setting and is ignored: did you mean DOCPIPE_ELASTICSEARCH_URL?",
        "DOCPIPE_WORKER_OUTAGE_SECOND is not a docpipe setting and is ignored: did you mean "
        "DOCPIPE_WORKER_OUTAGE_SECONDS?",
        "DOCPIPE_XYZZY is not a docpipe setting and is ignored: see the settings table in the README",
    ]


def test_every_variable_the_docs_and_compose_name_is_known():
    root = Path(__file__).resolve().parents[2]
    texts = [root / "README.md", root / "docker-compose.yml", *sorted((root / "docs").glob("*.md"))]
    named = {n for path in texts for n in re.findall(r"DOCPIPE_[A-Z0-9_]*[A-Z0-9]", path.read_text())}
    named.discard("DOCPIPE_ES_URL")  # the README's example of a typo
    assert len(named) > 100
    assert unknown_variables(dict.fromkeys(named, "")) == []
    assert {d[0] for d in DOCUMENTED} <= known_variables()
