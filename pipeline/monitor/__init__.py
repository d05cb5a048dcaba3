"""Financial sentiment monitoring: a watchlist, entity tags and sentiment per item, per-entity series,
topics, spike alerts and their webhooks. Pure functions over a session the caller passes in."""

from pipeline.monitor.alerts import SpikeRule, alert_record, evaluate, evaluate_topics, judge, list_alerts
from pipeline.monitor.entities import EntityMatcher, normalise_ticker
from pipeline.monitor.scoring import job_documents, score_documents
from pipeline.monitor.sentiment import LexiconScorer, ModelScorer, Scorer, Sentiment, has_live_model, live_scorer
from pipeline.monitor.series import series
from pipeline.monitor.topics import TermTopics, live_topic_classifier, score_topics
from pipeline.monitor.webhooks import deliver, post_json, webhook_urls

__all__ = [
    "EntityMatcher",
    "LexiconScorer",
    "ModelScorer",
    "Scorer",
    "Sentiment",
    "TermTopics",
    "SpikeRule",
    "alert_record",
    "deliver",
    "evaluate",
    "evaluate_topics",
    "has_live_model",
    "job_documents",
    "judge",
    "list_alerts",
    "live_scorer",
    "live_topic_classifier",
    "normalise_ticker",
    "post_json",
    "score_documents",
    "score_topics",
    "series",
    "webhook_urls",
]
