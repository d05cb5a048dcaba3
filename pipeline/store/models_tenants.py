"""Per-tenant settings a tenant's own data decided (e.g. the hybrid fusion tuned on its queries)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.store.models import Base, utcnow


class TenantSetting(Base):
    """One named setting of one tenant, a JSON value; the code that owns the name reads and checks it."""

    __tablename__ = "tenant_settings"
    tenant: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
