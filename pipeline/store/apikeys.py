"""API keys: created once (the secret is shown once), stored as sha256, checked in constant time.

A key reads `dpk_<id>_<secret>`. The id is not secret: it finds the row without the
database comparing secrets, and the hash of the whole key is compared with
hmac.compare_digest, so neither the lookup nor the comparison leaks the secret's bytes.
The secret carries 256 random bits, so an unsalted fast hash is enough (nothing to brute-force).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.errors import PermanentError
from pipeline.store.models_keys import ApiKey
from pipeline.types import utcnow

PREFIX = "dpk"
# Tenants name folders (uploads) and appear in URLs and logs: keep them to a safe alphabet.
TENANT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_KEY_PATTERN = re.compile(rf"{PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})")


class InvalidTenant(PermanentError):
    def __init__(self, tenant: str):
        super().__init__(
            f"tenant {tenant!r} is not a valid name: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, at most 64"
        )


def check_tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not TENANT_PATTERN.fullmatch(tenant):
        raise InvalidTenant(str(tenant))
    return tenant


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(session: Session, tenant: str, name: str | None = None) -> tuple[ApiKey, str]:
    """A new key for `tenant`; returns the row and the key, which is not stored anywhere."""
    check_tenant(tenant)
    key_id = secrets.token_hex(6)
    while session.get(ApiKey, key_id) is not None:
        key_id = secrets.token_hex(6)
    key = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    row = ApiKey(id=key_id, tenant=tenant, name=name, key_hash=_digest(key), created_at=utcnow())
    session.add(row)
    session.flush()
    return row, key


def authenticate(session: Session, presented: str | None) -> str | None:
    """The tenant of a valid, unrevoked key; None for anything else."""
    if not presented:
        return None
    match = _KEY_PATTERN.fullmatch(presented.strip())
    if match is None:
        return None
    row = session.get(ApiKey, match.group(1))
    if row is None or row.revoked_at is not None:
        return None
    return row.tenant if hmac.compare_digest(row.key_hash, _digest(presented.strip())) else None


def list_keys(session: Session, tenant: str | None = None) -> list[ApiKey]:
    q = select(ApiKey).order_by(ApiKey.created_at)
    if tenant:
        q = q.where(ApiKey.tenant == tenant)
    return list(session.scalars(q))


def revoke_key(session: Session, key_id: str) -> ApiKey | None:
    """Revoke by id (the part after `dpk_`); revoking twice keeps the first time."""
    row = session.get(ApiKey, key_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
    return row
