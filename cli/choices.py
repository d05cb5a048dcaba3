"""Closed sets of option values: Typer lists them in --help and refuses anything else (exit 2, one line).

They repeat the domain's constants so that `docpipe --help` need not import the domain; tests/unit/test_cli_errors.py
checks that each still equals its source.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):  # pipeline.store.models.JobState.ALL
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"


class SearchMode(StrEnum):  # pipeline.retrieve.MODES
    BM25 = "bm25"
    KNN = "knn"
    HYBRID = "hybrid"


class Augment(StrEnum):  # pipeline.infer.artefact.AUGMENTS
    NONE = "none"
    CONCAT = "concat"
    FUSION = "fusion"


class SourceKind(StrEnum):
    FEED = "feed"
    FOLDER = "folder"


class Bucket(StrEnum):
    HOUR = "hour"
    DAY = "day"
