"""Tables of the api feature: API keys (one tenant each, stored as hashes only) and idempotent requests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.store.models import Base, utcnow


class ApiKey(Base):
    """A key is `dpk_<id>_<secret>`: the id finds the row, the sha256 of the whole key proves it."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str | None] = mapped_column(String(128))
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class IdempotentRequest(Base):
    """A POST sent with an Idempotency-Key: the first one's response, replayed to every retry of it.

    `status` is None while the first request runs; `fingerprint` (method, path and a hash of the body) tells
    a retry from a different request that reuses the key."""

    __tablename__ = "idempotent_requests"
    tenant: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[int | None]
    content_type: Mapped[str | None] = mapped_column(String(128))
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
