"""Tables of the sources feature: scheduled feeds and folders, and the files a folder sync has seen."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.store.models import Base, utcnow


class SourceKind:
    FEED, FOLDER = "feed", "folder"
    ALL = (FEED, FOLDER)


class Source(Base):
    """A feed URL or a folder, polled every `every_seconds` or on its `cron` slots by the beat tick."""

    __tablename__ = "sources"
    __table_args__ = (
        UniqueConstraint("tenant", "kind", "location"),
        Index("ix_sources_due", "enabled", "next_run_at"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    location: Mapped[str] = mapped_column(String(2048))  # URL or absolute folder path
    every_seconds: Mapped[int]  # 0 when `cron` schedules the source
    # a cron expression and its IANA time zone (migration 0014); None: every `every_seconds`
    cron: Mapped[str | None] = mapped_column(String(120))
    timezone: Mapped[str | None] = mapped_column(String(64))
    timeout_seconds: Mapped[float | None]  # overrides DOCPIPE_FETCH_TIMEOUT for this feed
    enabled: Mapped[bool] = mapped_column(default=True)
    # a feed that prunes deletes the documents of items gone from it (migration 0011); a folder always does
    prune: Mapped[bool] = mapped_column(default=False, server_default=false())
    next_run_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The run lease: set when a run is claimed, cleared when it ends. A second claim
    # succeeds only once the lease is older than DOCPIPE_SOURCE_LEASE_SECONDS.
    running_since: Mapped[datetime | None]
    run_token: Mapped[str | None] = mapped_column(String(32))
    last_run_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_status: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    failures: Mapped[int] = mapped_column(default=0)  # consecutive; drives the backoff
    last_job_id: Mapped[str | None] = mapped_column(String(32))
    # conditional-request state of a feed
    etag: Mapped[str | None] = mapped_column(String(512))
    last_modified: Mapped[str | None] = mapped_column(String(128))
    body_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SourceFile(Base):
    """A file of a folder source as of its last sync, and the job that ingested that content."""

    __tablename__ = "source_files"
    source_id: Mapped[str] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(String(2048), primary_key=True)
    file_hash: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    job_id: Mapped[str | None] = mapped_column(String(32))
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)
