"""The live index version as SQL records it: which index ingest writes to, and with which model and encoder.

Workers look the live version up per task (one indexed row) instead of caching it, and keep their
loaded encoders and tokenizers cached per model path and encoder variant: after a swap the next task
simply picks the other cached model, and no worker has to restart. Changed encoder settings reach an
index only through a reindex, which builds a version with them and swaps it in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from elasticsearch import NotFoundError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pipeline.errors import RetryableError
from pipeline.reindex.config import IndexConfig, configured_encoder
from pipeline.store import repo
from pipeline.store.models import IndexVersion, utcnow


@dataclass(frozen=True)
class LiveIndex:
    name: str  # the physical index: ingest writes there, not to the alias (see still_live)
    version: int
    model_path: str
    chunk_tokens: int
    chunk_overlap: int
    config_hash: str
    encoder: str  # the variant that computes its vectors: torch, onnx-int8, ... (pipeline/encoders)


class SearchTarget(NamedTuple):
    name: str  # the live version's physical index; the read alias while no version is recorded
    model_path: str
    encoder: str  # the variant that embedded the index's vectors, and so embeds the query


def of_prefix(prefix: str):
    return IndexVersion.name.startswith(f"{prefix}-v", autoescape=True)


def live_row(session: Session, prefix: str) -> IndexVersion | None:
    return session.scalar(
        select(IndexVersion)
        .where(of_prefix(prefix), IndexVersion.state == "live")
        .order_by(IndexVersion.version.desc())
        .limit(1)
    )


def as_live(
    row: IndexVersion, default_model: str, default_tokens: int, default_overlap: int, default_encoder: str
) -> LiveIndex:
    # rows written before migration 0004 lack the model path and chunking: the settings made them. A row written
    # before 0020 lacks the encoder variant until live_index records its index's (record_encoder); till then, and
    # when that index is gone, the variant DOCPIPE_ENCODER_* name
    return LiveIndex(
        row.name,
        row.version,
        row.model_path or default_model,
        row.chunk_tokens or default_tokens,
        row.chunk_overlap if row.chunk_overlap is not None else default_overlap,
        row.config_hash,
        row.encoder or default_encoder,
    )


def live_index(
    session: Session, layout, model_path: str, chunk_tokens: int, chunk_overlap: int, encoder: str | None = None
) -> LiveIndex:
    """The live version; on a fresh cluster, create v1 with the given (configured) model, chunking and encoder
    variant (default: the one DOCPIPE_ENCODER_* name)."""
    encoder = encoder or configured_encoder()
    row = live_row(session, layout.prefix)
    if row is None:
        row = bootstrap(session, layout, IndexConfig.for_model(model_path, chunk_tokens, chunk_overlap, encoder))
    elif row.encoder is None:
        record_encoder(session, layout, row)
    return as_live(row, model_path, chunk_tokens, chunk_overlap, encoder)


def record_encoder(session: Session, layout, row: IndexVersion) -> None:
    """A version recorded before migration 0020 gets its encoder variant from its index, once."""
    row.encoder = indexed_variant(layout, row.name)
    if row.encoder is not None:
        session.flush()


def indexed_variant(layout, name: str) -> str | None:
    """The encoder variant in index `name`'s own `_meta` (no `encoder` there: PyTorch fp32); None when the index
    is gone from Elasticsearch (the settings then decide)."""
    try:
        return layout.meta_extra(name).get("encoder", "torch")
    except NotFoundError:
        return None


def bootstrap(session: Session, layout, config: IndexConfig) -> IndexVersion:
    name = layout.ensure_live(config.dims, extra=config.extra)
    try:
        row = repo.record_live_index(
            session, name, layout.version_of(name) or 1, config.hash, config.model_name, config.dims
        )
        if row.model_path is None:
            row.model_path, row.chunk_tokens, row.chunk_overlap = (
                config.model_path,
                config.chunk_tokens,
                config.chunk_overlap,
            )
        if row.encoder is None:
            row.encoder = config.encoder
        if row.state != "live":  # the read alias points there, whatever an interrupted swap left in SQL
            row.state, row.activated_at = "live", row.activated_at or utcnow()
        session.flush()
    except IntegrityError as exc:
        raise RetryableError(f"another worker recorded {name} at the same moment; retrying") from exc
    return row


def still_live(session: Session, name: str) -> bool:
    """The fence an ingest batch passes before it commits: is `name` still the live version?

    The batch's own writes are flushed first, then the version row is read under a shared lock
    (PostgreSQL) or inside the write transaction SQLite already holds. A swap takes the exclusive
    lock on that row before it catches up and flips, so either this batch commits first and the
    swap's catch-up sees it, or this batch sees the new version and redoes its documents there.
    """
    session.flush()
    state = session.scalar(select(IndexVersion.state).where(IndexVersion.name == name).with_for_update(read=True))
    return state == "live"


def search_target(
    session: Session, prefix: str, default_model: str, default_encoder: str | None = None
) -> SearchTarget:
    """(index, model path, encoder variant) a query should use: the live version and the encoder its vectors
    came from.

    Searching the physical index of the version whose model embedded the query keeps a kNN query
    consistent across a swap to a model of another width; with no version yet, the read alias. The
    defaults (the configured model and variant) serve rows that record none, as in `as_live`.
    """
    default_encoder = default_encoder or configured_encoder()
    row = live_row(session, prefix)
    if row is None:
        return SearchTarget(f"{prefix}-read", default_model, default_encoder)
    return SearchTarget(row.name, row.model_path or default_model, row.encoder or default_encoder)
