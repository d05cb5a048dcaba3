"""Before a quantised encoder serves an index, it is compared with fp32 on a sample of the tenant's chunks: the mean
cosine of the two vectors of each chunk, and how much of each chunk's top-k neighbours (within the sample) the two
agree on. The figures are stored per index version in the tenant's settings (name `encoder_quality`), so every
worker reads one verdict; below the configured minimums the encoder is refused with a ConfigError."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipeline.errors import ConfigError
from pipeline.store.models import Chunk, Document
from pipeline.store.tenants import get_setting, put_setting
from pipeline.types import utcnow

SETTING = "encoder_quality"
_passed: set[tuple[str, str, str]] = set()
_lock = threading.Lock()


@dataclass(frozen=True)
class Quality:
    encoder: str  # the quantised variant, e.g. onnx-int8
    reference: str  # what it was compared with: torch (fp32)
    chunks: int
    mean_cosine: float
    min_cosine: float
    knn_overlap: float  # mean share of each chunk's top-k neighbours both encoders find
    k: int


def measure(candidate, reference, texts: list[str], k: int = 10) -> Quality:
    """Compare two encoders on `texts` (at least two)."""
    if len(texts) < 2:
        raise ValueError("the quality comparison needs at least two texts")
    a, b = candidate.encode(texts), reference.encode(texts)
    cosines = (a * b).sum(axis=1)
    k = min(k, len(texts) - 1)
    return Quality(
        candidate.variant,
        reference.variant,
        len(texts),
        round(float(cosines.mean()), 5),
        round(float(cosines.min()), 5),
        round(knn_overlap(a, b, k), 5),
        k,
    )


def knn_overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Mean over rows of |top-k of a ∩ top-k of b| / k, each row's neighbours among the other rows."""

    def top(vectors: np.ndarray) -> np.ndarray:
        scores = vectors @ vectors.T
        np.fill_diagonal(scores, -np.inf)
        return np.argsort(-scores, axis=1, kind="stable")[:, :k]

    ta, tb = top(a), top(b)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(ta, tb, strict=True)]))


def sample_texts(session: Session, tenant: str, n: int, seed: int = 0) -> list[str]:
    """Up to `n` of the tenant's chunk texts, picked evenly by a seeded draw over its chunk rows."""
    total = session.scalar(
        select(func.count())
        .select_from(Chunk)
        .join(Document, Chunk.document_id == Document.id)
        .where(Document.tenant == tenant)
    )
    if not total:
        return []
    picks = sorted(random.Random(seed).sample(range(total), min(n, total)))
    rows = session.execute(
        select(Document.text, Chunk.char_start, Chunk.char_end)
        .join(Document, Chunk.document_id == Document.id)
        .where(Document.tenant == tenant)
        .order_by(Chunk.id)
    )
    wanted, texts = set(picks), []
    for i, (text, start, end) in enumerate(rows):
        if i in wanted:
            texts.append((text or "")[start:end])
    return [t for t in texts if t.strip()]


def verdict(quality: Quality, min_cosine: float, min_overlap: float) -> str | None:
    """Why `quality` is refused, or None when it passes."""
    if quality.mean_cosine < min_cosine:
        return f"mean cosine to fp32 {quality.mean_cosine:.4f} < {min_cosine} (DOCPIPE_ENCODER_MIN_COSINE)"
    if quality.knn_overlap < min_overlap:
        return (
            f"top-{quality.k} neighbour overlap with fp32 {quality.knn_overlap:.3f} < {min_overlap}"
            " (DOCPIPE_ENCODER_MIN_KNN_OVERLAP)"
        )
    return None


def stored(session: Session, index: str, tenant: str, encoder: str) -> Quality | None:
    """The figures stored for `encoder` (a variant) serving `index` for `tenant`, if any."""
    found = (get_setting(session, tenant, SETTING) or {}).get(index)
    if not found or found.get("encoder") != encoder:
        return None
    return Quality(**{f: found[f] for f in Quality.__dataclass_fields__})


def store(session: Session, index: str, tenant: str, quality: Quality) -> None:
    figures = get_setting(session, tenant, SETTING) or {}
    figures[index] = {**asdict(quality), "measured_at": utcnow().isoformat()}
    put_setting(session, tenant, SETTING, figures)


def tenants_with_chunks(session: Session) -> list[str]:
    """The tenants a build's encoder is judged for: those with chunks to compare on."""
    return list(session.scalars(select(Document.tenant).where(Document.chunk_count > 0).distinct()))


def to_judge(encoder, index: str, tenant: str) -> bool:
    """Whether `encoder` still needs a verdict here: it is quantised and not yet passed in this process."""
    with _lock:
        return bool(encoder.quantized) and (index, tenant, encoder.variant) not in _passed


def assess(
    sessions: Callable[[], AbstractContextManager[Session]],
    encoder,
    index: str,
    tenant: str,
    settings,
    reference: Callable[[], object],
) -> Quality | None:
    """The figures of a quantised `encoder` on `tenant`'s chunks for `index`: read when stored, else measured
    against the fp32 encoder `reference()` gives (loaded only then) and stored. Each SQL step runs in a short
    transaction of its own from `sessions()`, so none stays open while the models run, and the figures are
    committed before any refusal. None when there is nothing to judge: an unquantised encoder, one already passed
    in this process, or fewer than two chunks yet."""
    if not to_judge(encoder, index, tenant):
        return None
    with sessions() as session:
        quality = stored(session, index, tenant, encoder.variant)
        texts = sample_texts(session, tenant, settings.guard_sample) if quality is None else []
    if quality is not None:
        return quality
    if len(texts) < 2:
        return None  # nothing to compare on yet: a later task, with chunks in SQL, measures
    quality = measure(encoder, reference(), texts)
    with sessions() as session:
        store(session, index, tenant, quality)
    return quality


def judge(sessions, encoder, index: str, tenants: list[str], settings, reference, building: bool = False) -> None:
    """`assess` then `refuse_below` for each tenant: ConfigError for the first one below the minimums."""
    for tenant in tenants:
        refuse_below(assess(sessions, encoder, index, tenant, settings, reference), index, tenant, settings, building)


def refuse_below(quality: Quality | None, index: str, tenant: str, settings, building: bool = False) -> None:
    """ConfigError when `quality` falls below the configured minimums; remembers a pass for this process.
    `building`: `index` is a reindex build not yet swapped in, which the refusal leaves so."""
    if quality is None:
        return
    refused = verdict(quality, settings.min_cosine, settings.min_knn_overlap)
    if refused:
        way_back = (
            "the build is not swapped in: discard it (docpipe reindex --discard) and set DOCPIPE_ENCODER_QUANTIZE=none"
            if building
            else "roll back (docpipe index rollback), or set DOCPIPE_ENCODER_QUANTIZE=none and reindex"
        )
        raise ConfigError(
            f"the {quality.encoder} encoder may not serve {index} for tenant {tenant}: {refused} on "
            f"{quality.chunks} of its chunks; {way_back}, or lower the minimum"
        )
    with _lock:
        _passed.add((index, tenant, quality.encoder))


def passed(index: str, tenant: str, encoder: str) -> bool:
    """Whether this process has let `encoder` serve `index` for `tenant`."""
    with _lock:
        return (index, tenant, encoder) in _passed
