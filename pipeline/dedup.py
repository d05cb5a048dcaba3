"""Exact and near-duplicate detection per tenant, persistent across jobs.

Exact copies: hash of normalised text. Near copies: MinHash signatures bucketed with LSH,
verified by estimated Jaccard. Storage sits behind DedupStore (SQL in the service).
"""

from __future__ import annotations

import hashlib
import re
import struct
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np
from rensa import RMinHash

from pipeline.config import DedupSettings, defaults
from pipeline.types import DedupVerdict

_WS = re.compile(r"\s+")
# Scripts written without spaces between words (Thai, Lao, Myanmar, Khmer; Japanese kana; CJK ideographs): each of
# their characters is a token, so a shingle is a run of characters. As words, a Chinese article was a handful of
# clauses, and two copies that differed in one figure shared no shingle at all.
_UNSPACED = (
    "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff"  # Thai, Lao, Myanmar, Khmer
    "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"  # kana, CJK ideographs
)
_WORD = re.compile(f"[{_UNSPACED}]|[^\\W{_UNSPACED}]+")
# Fine enough that the integrals' error is far below the gaps between neighbouring (b, r).
_GRID = 2000


class DedupStore(Protocol):
    """Only canonical (non-duplicate) documents are ever returned; exclude_doc never is.

    find_exact -> (doc_id, cluster_id); candidates -> (doc_id, cluster_id, signature) of docs
    sharing at least one (band, key), each once; add replaces a document's buckets; remove makes
    it no match target. tests/contract/dedup_store.py is the executable form of this contract.
    """

    def find_exact(self, tenant: str, content_hash: str, exclude_doc: str) -> tuple[str, str] | None: ...
    def candidates(
        self, tenant: str, bands: list[tuple[int, str]], exclude_doc: str
    ) -> list[tuple[str, str, list[int]]]: ...
    def add(self, tenant: str, doc_id: str, bands: list[tuple[int, str]]) -> None: ...
    def remove(self, tenant: str, doc_id: str) -> None: ...


@runtime_checkable
class RowRecorder(Protocol):
    """A store that owns the document rows too; with SQL the caller writes them instead."""

    def record(self, tenant: str, doc_id: str, verdict: DedupVerdict) -> None: ...


def normalise_for_hash(text: str) -> str:
    # Case and whitespace differences come from re-flowing or re-exporting the same text.
    # Punctuation is kept: it can carry meaning ("1.5" vs "15", a negating comma), and
    # punctuation-only edits are still caught by the near-duplicate path.
    # NFC only merges canonically equivalent code points, so it never changes meaning.
    return _WS.sub(" ", unicodedata.normalize("NFC", text).casefold()).strip()


def content_hash(text: str) -> str:
    return hashlib.sha256(normalise_for_hash(text).encode("utf-8")).hexdigest()


def shingles(text: str, k: int) -> list[str]:
    if k < 1:
        raise ValueError(f"shingle size must be >= 1, got {k}")
    words = _WORD.findall(text.lower())
    if len(words) <= k:
        # Short texts still need a non-empty set, or every one would share the empty signature.
        return [" ".join(words)]
    # zip over k shifted views avoids a slice per shingle; this is the hot loop of check().
    return list(map(" ".join, zip(*(words[i:] for i in range(k)))))


def _integral(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


def s_curve(s: float, b: int, r: int) -> float:
    """Probability that a pair with Jaccard s shares at least one LSH bucket."""
    return 1.0 - (1.0 - s**r) ** b


# A missed candidate is lost for good, while a false candidate only costs one signature
# comparison (every candidate is verified against the threshold), so misses weigh more.
FALSE_POSITIVE_WEIGHT = 0.2


@lru_cache(maxsize=32)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if num_perm < 1:
        raise ValueError(f"num_perm must be >= 1, got {num_perm}")
    below = np.linspace(0.0, threshold, _GRID + 1)
    above = np.linspace(threshold, 1.0, _GRID + 1)
    scored = []
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            false_pos = _integral(1.0 - (1.0 - below**r) ** b, below)
            false_neg = _integral((1.0 - above**r) ** b, above)
            scored.append((FALSE_POSITIVE_WEIGHT * false_pos + (1 - FALSE_POSITIVE_WEIGHT) * false_neg, b, r))
    _, b, r = min(scored)
    return b, r


def band_keys(signature: list[int], b: int, r: int) -> list[tuple[int, str]]:
    if len(signature) < b * r:
        raise ValueError(f"signature has {len(signature)} values, need b*r={b * r}")
    keys = []
    for band in range(b):
        chunk = signature[band * r : (band + 1) * r]
        # Fixed-width little-endian packing keeps keys identical on every platform and run.
        digest = hashlib.blake2b(struct.pack(f"<{r}Q", *chunk), digest_size=8).hexdigest()
        keys.append((band, digest))
    return keys


def estimate_jaccard(sig_a: list[int], sig_b: list[int]) -> float:
    if len(sig_a) != len(sig_b):
        raise ValueError(f"signatures differ in length: {len(sig_a)} vs {len(sig_b)}")
    if not sig_a:
        return 0.0
    return sum(1 for a, b in zip(sig_a, sig_b) if a == b) / len(sig_a)


_DEDUP = defaults(DedupSettings)


class Deduplicator:
    def __init__(
        self,
        store: DedupStore,
        threshold: float = _DEDUP.threshold,
        num_perm: int = _DEDUP.minhash_perms,
        shingle_words: int = _DEDUP.shingle_words,
        seed: int = 42,
    ):
        self.store = store
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle_words = shingle_words
        self.seed = seed
        self.bands, self.rows = lsh_params(threshold, num_perm)

    def signature(self, text: str) -> list[int]:
        # A fixed seed makes signatures comparable across processes and jobs; they are persisted.
        mh = RMinHash(num_perm=self.num_perm, seed=self.seed)
        mh.update(shingles(text, self.shingle_words))
        return [int(v) for v in mh.digest()]

    def check(self, tenant: str, doc_id: str, text: str) -> DedupVerdict:
        digest = content_hash(text)
        sig = self.signature(text)
        # exclude_doc: a re-ingested (possibly edited) document must not match its own old entry.
        exact = self.store.find_exact(tenant, digest, exclude_doc=doc_id)
        if exact is not None:
            return DedupVerdict(digest, sig, duplicate_of=exact[0], kind="exact", similarity=1.0, cluster_id=exact[1])
        found = self.store.candidates(tenant, band_keys(sig, self.bands, self.rows), exclude_doc=doc_id)
        scored = [
            (estimate_jaccard(sig, cand_sig), cand_id, cluster)
            for cand_id, cluster, cand_sig in found
            if cand_id != doc_id and len(cand_sig) == len(sig)
        ]  # other num_perm: incomparable
        # Highest similarity wins; ties go to the smaller id so the store's row order cannot matter.
        best = min(
            ((-sim, cand_id, cluster) for sim, cand_id, cluster in scored if sim >= self.threshold), default=None
        )
        if best is not None:
            return DedupVerdict(digest, sig, duplicate_of=best[1], kind="near", similarity=-best[0], cluster_id=best[2])
        return DedupVerdict(digest, sig, cluster_id=doc_id)

    def register(self, tenant: str, doc_id: str, verdict: DedupVerdict) -> None:
        if isinstance(self.store, RowRecorder):
            self.store.record(tenant, doc_id, verdict)
        if verdict.duplicate_of is None:
            self.store.add(tenant, doc_id, band_keys(verdict.signature, self.bands, self.rows))

    def run(self, tenant: str, items: Iterable[tuple[str, str]]) -> Iterator[tuple[str, DedupVerdict]]:
        """Check and register each (doc_id, text) in order.

        Registration happens before the yield, so later items in the same batch see earlier
        canonicals. A store whose rows the caller writes must have the yielded verdict
        persisted before the next item is pulled.
        """
        for doc_id, text in items:
            verdict = self.check(tenant, doc_id, text)
            self.register(tenant, doc_id, verdict)
            yield doc_id, verdict


@dataclass
class _Row:
    content_hash: str
    signature: list[int]
    cluster_id: str
    canonical: bool


class MemoryDedupStore:
    """Dict-backed DedupStore that also keeps the document rows (see RowRecorder)."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], _Row] = {}
        self._by_hash: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._buckets: dict[tuple[str, int, str], set[str]] = defaultdict(set)
        self._doc_bands: dict[tuple[str, str], list[tuple[int, str]]] = {}

    def record(self, tenant: str, doc_id: str, verdict: DedupVerdict) -> None:
        self._forget_row(tenant, doc_id)
        canonical = verdict.duplicate_of is None
        self._rows[tenant, doc_id] = _Row(
            verdict.content_hash, list(verdict.signature), verdict.cluster_id or doc_id, canonical
        )
        self._by_hash[tenant, verdict.content_hash].add(doc_id)
        if not canonical:
            self._drop_bands(tenant, doc_id)  # it may have headed a cluster before this edit

    def find_exact(self, tenant: str, content_hash: str, exclude_doc: str) -> tuple[str, str] | None:
        for doc_id in sorted(self._by_hash.get((tenant, content_hash), ())):
            row = self._rows[tenant, doc_id]
            if doc_id != exclude_doc and row.canonical:
                return doc_id, row.cluster_id
        return None

    def candidates(
        self, tenant: str, bands: list[tuple[int, str]], exclude_doc: str
    ) -> list[tuple[str, str, list[int]]]:
        hits: set[str] = set()
        for band, key in bands:
            hits.update(self._buckets.get((tenant, band, key), ()))
        hits.discard(exclude_doc)
        rows = [(d, self._rows.get((tenant, d))) for d in sorted(hits)]
        return [(d, row.cluster_id, row.signature) for d, row in rows if row and row.canonical]

    def add(self, tenant: str, doc_id: str, bands: list[tuple[int, str]]) -> None:
        self._drop_bands(tenant, doc_id)
        for band, key in bands:
            self._buckets[tenant, band, key].add(doc_id)
        self._doc_bands[tenant, doc_id] = list(bands)

    def remove(self, tenant: str, doc_id: str) -> None:
        self._drop_bands(tenant, doc_id)
        self._forget_row(tenant, doc_id)

    def _forget_row(self, tenant: str, doc_id: str) -> None:
        row = self._rows.pop((tenant, doc_id), None)
        if row is not None:
            self._by_hash[tenant, row.content_hash].discard(doc_id)

    def _drop_bands(self, tenant: str, doc_id: str) -> None:
        for band, key in self._doc_bands.pop((tenant, doc_id), ()):
            members = self._buckets.get((tenant, band, key))
            if members is not None:
                members.discard(doc_id)
                if not members:
                    del self._buckets[tenant, band, key]
