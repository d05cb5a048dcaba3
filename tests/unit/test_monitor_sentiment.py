"""Sentiment scorers: the Loughran-McDonald lexicon baseline and the model adapter's label mapping."""

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.monitor.sentiment import LexiconScorer, ModelScorer


def test_lexicon_labels_finance_news():
    scorer = LexiconScorer(0.2)
    neg, pos, neutral = scorer.score(
        [
            "Shares plunged after the company disclosed losses, a lawsuit and weak demand.",
            "The company reported strong gains and record profit, beating expectations.",
            "The annual meeting is scheduled for Tuesday in the main hall.",
        ]
    )
    assert (neg.label, pos.label, neutral.label) == ("negative", "positive", "neutral")
    assert neg.score == -1.0 and pos.score == 1.0 and neutral.score == 0.0
    assert neutral.confidence == 0.0 < neg.confidence < 1


def test_lexicon_mixed_text_inside_the_band_is_neutral():
    mixed = LexiconScorer(0.5).score(["Profits improved in one unit, but losses elsewhere widened."])[0]
    assert mixed.label == "neutral" and -0.5 <= mixed.score <= 0.5


class FakePredictor:
    labels = ["Positive", "neg", "neutral"]

    def predict(self, texts, **_):
        return np.array([[0.7, 0.1, 0.2], [0.05, 0.9, 0.05]][: len(texts)])


def test_model_scorer_maps_labels_and_scores_pos_minus_neg():
    scorer = ModelScorer("m1", FakePredictor())
    up, down = scorer.score(["a", "b"])
    assert scorer.name == "model:m1"
    assert (up.label, up.score, up.confidence) == ("positive", 0.6, 0.7)
    assert (down.label, down.score) == ("negative", -0.85)


def test_model_without_sentiment_labels_is_refused():
    class Topics(FakePredictor):
        labels = ["sport", "business"]

    with pytest.raises(ConfigError, match="negative and positive"):
        ModelScorer("m2", Topics())
