"""Tables of named-entity extraction: the entities found in each document, and which model tagged it when."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.store.models import Base, utcnow


class EntityRow(Base):
    """One entity in a document's text: an extract job replaces a document's rows as a whole."""

    __tablename__ = "entities"
    __table_args__ = (
        UniqueConstraint("document_id", "char_start", "char_end", "type"),
        Index("ix_entities_tenant_type_norm", "tenant", "type", "norm"),
    )
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(128))
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    chunk_id: Mapped[str] = mapped_column(String(48))  # the (first) chunk it was found in
    type: Mapped[str] = mapped_column(String(32))  # e.g. ORG, PER, LOC, TICKER
    text: Mapped[str] = mapped_column(String(512))  # as written in the document
    norm: Mapped[str] = mapped_column(String(512))  # folded for matching (pipeline/monitor/org_match.py)
    char_start: Mapped[int]  # offsets in the document's text
    char_end: Mapped[int]
    score: Mapped[float]
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EntityExtraction(Base):
    """A document's latest extraction (also when it found nothing): the job and model, the text version."""

    __tablename__ = "entity_extractions"
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    entities: Mapped[int] = mapped_column(default=0)
    extracted_at: Mapped[datetime] = mapped_column(default=utcnow)


LEGAL_FORMS = frozenset(
    "inc incorporated corp corporation co company cos ltd limited plc llc llp lp sa ag nv se spa bv kk "
    "group holdings holding".split()
)


def fold_name(name: str) -> str:
    """A name folded for matching (the `norm` column): 'The Acme Corp.' and 'ACME Corporation' both give
    'acme'; case, accents, punctuation, a leading 'the' and trailing legal forms do not count."""
    ascii_only = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_only.lower().replace("&", " and "))
    if len(words) > 1 and words[0] == "the":
        words = words[1:]
    while len(words) > 1 and words[-1] in LEGAL_FORMS:
        words = words[:-1]
    return " ".join(words)
