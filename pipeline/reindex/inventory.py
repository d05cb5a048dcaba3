"""`docpipe index versions`: what SQL records about each version, with its chunk count from Elasticsearch."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.index import count_chunks
from pipeline.reindex.config import short
from pipeline.reindex.live import of_prefix
from pipeline.store.models import IndexVersion


def _iso(value):
    return value.isoformat() if value else None


def list_versions(session: Session, layout) -> list[dict]:
    """Every version of the layout's prefix, oldest first; Elasticsearch indices SQL does not know
    (left by a discard racing a write, or by hand) are listed as orphans so they can be spotted."""
    on_es = set(layout.versions())
    rows = list(session.scalars(select(IndexVersion).where(of_prefix(layout.prefix)).order_by(IndexVersion.version)))
    out = []
    for r in rows:
        out.append(
            {
                "name": r.name,
                "version": r.version,
                "state": r.state,
                "live": r.state == "live",
                "config_hash": r.config_hash,
                "config": short(r.config_hash),
                "model": r.model,
                "model_path": r.model_path,
                "encoder": r.encoder,  # None: recorded before migration 0020
                "dims": r.dims,
                "chunk_tokens": r.chunk_tokens,
                "chunk_overlap": r.chunk_overlap,
                "chunks": count_chunks(layout.es, r.name) if r.name in on_es else None,
                "reason": r.reason,
                "job_id": r.job_id,
                "created_at": _iso(r.created_at),
                "activated_at": _iso(r.activated_at),
                "retired_at": _iso(r.retired_at),
            }
        )
    known = {r.name for r in rows}
    for name in sorted(on_es - known, key=layout.version_of):
        out.append(
            {
                "name": name,
                "version": layout.version_of(name),
                "state": "orphan",
                "live": False,
                "config_hash": None,
                "config": "",
                "model": None,
                "model_path": None,
                "encoder": None,
                "dims": None,
                "chunk_tokens": None,
                "chunk_overlap": None,
                "chunks": count_chunks(layout.es, name),
                "reason": None,
                "job_id": None,
                "created_at": None,
                "activated_at": None,
                "retired_at": None,
            }
        )
    return sorted(out, key=lambda v: v["version"])
