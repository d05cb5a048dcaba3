"""Due times of named schedules that are settings rather than rows of their own (beat's cron reindex).

Sources keep their cron on their own row (models_sources.Source.cron); a setting has no row, so its last
slot lives here, where a beat restart cannot forget it (pipeline/schedule.py says the rule)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.store.models import Base


class Schedule(Base):
    __tablename__ = "schedules"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)  # e.g. "reindex"
    cron: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64))
    next_run_at: Mapped[datetime]
    last_run_at: Mapped[datetime | None]
