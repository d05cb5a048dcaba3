"""Versioned rebuilds of the chunk index from SQL, swapped in with zero downtime; rollback; discard.

Design in short (details in build.py, swap.py, live.py):
- the live version, its model path, chunking and encoder variant are recorded in SQL (index_versions);
  ingest and search look them up per task/query and use the encoder cached for that path and variant;
- a build is a chain of short steps; the ledger (reindex_ledger) records what the new version holds,
  so what is left is always an anti-join against the documents table: exact, resumable, and blind
  to whatever ingest did meanwhile;
- the swap catches up under a lock that every ingest batch also takes before it commits, then moves
  both aliases in one atomic update.
"""

from pipeline.reindex.build import DONE, MORE, SWAPPED, step
from pipeline.reindex.config import IndexConfig, short
from pipeline.reindex.fill import Tools
from pipeline.reindex.inventory import list_versions
from pipeline.reindex.jobs import REINDEX_KINDS, REINDEX_TENANT, active_reindex_job, create_reindex_job
from pipeline.reindex.live import LiveIndex, SearchTarget, live_index, live_row, search_target, still_live
from pipeline.reindex.swap import cleanup, discard

__all__ = [
    "DONE",
    "MORE",
    "REINDEX_KINDS",
    "REINDEX_TENANT",
    "SWAPPED",
    "IndexConfig",
    "LiveIndex",
    "SearchTarget",
    "Tools",
    "cleanup",
    "active_reindex_job",
    "create_reindex_job",
    "discard",
    "list_versions",
    "live_index",
    "live_row",
    "search_target",
    "short",
    "step",
    "still_live",
]
