"""API keys: shown once, stored as a hash, one tenant each, revocable."""

import hashlib

import pytest

from migrations.runner import upgrade
from pipeline.store import apikeys as keys
from pipeline.store.db import session_scope
from pipeline.store.models_keys import ApiKey


@pytest.fixture()
def db(tmp_path):
    url = f"sqlite:///{tmp_path / 'k.db'}"
    upgrade(url)
    return url


def test_a_key_authenticates_as_its_tenant_and_only_its_hash_is_stored(db):
    with session_scope(db) as s:
        row, key = keys.create_key(s, "acme", "ci")
    with session_scope(db) as s:
        stored = s.get(ApiKey, row.id)
        assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert key not in (stored.key_hash, stored.id, stored.name)
        assert keys.authenticate(s, key) == "acme"
        assert keys.authenticate(s, f"  {key}\n") == "acme"


def test_tampered_unknown_and_malformed_keys_are_refused(db):
    with session_scope(db) as s:
        _, key = keys.create_key(s, "acme")
        _, other = keys.create_key(s, "globex")
    prefix, key_id, secret = key.split("_", 2)
    flipped = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    with session_scope(db) as s:
        assert keys.authenticate(s, f"{prefix}_{key_id}_{flipped}") is None
        # another key's secret under this key's id must not pass
        assert keys.authenticate(s, f"{prefix}_{key_id}_{other.split('_', 2)[2]}") is None
        assert keys.authenticate(s, f"{prefix}_000000000000_{secret}") is None
        for junk in ("", None, "Bearer x", key[:-1], key + "x", "dpk__"):
            assert keys.authenticate(s, junk) is None
        assert keys.authenticate(s, other) == "globex"


def test_revoked_keys_stop_working_and_others_keep_working(db):
    with session_scope(db) as s:
        row, key = keys.create_key(s, "acme")
        _, kept = keys.create_key(s, "acme")
    with session_scope(db) as s:
        keys.revoke_key(s, row.id)
    with session_scope(db) as s:
        first = s.get(ApiKey, row.id).revoked_at
        assert keys.revoke_key(s, row.id).revoked_at == first  # revoking again changes nothing
        assert keys.authenticate(s, key) is None
        assert keys.authenticate(s, kept) == "acme"
        assert keys.revoke_key(s, "nosuchkey000") is None
        assert [k.tenant for k in keys.list_keys(s, "acme")] == ["acme", "acme"]


@pytest.mark.parametrize("tenant", ["", "-x", "a b", "a/b", "../etc", "x" * 65, "t\x00"])
def test_tenant_names_that_could_escape_a_folder_are_refused(db, tenant):
    with session_scope(db) as s, pytest.raises(keys.InvalidTenant):
        keys.create_key(s, tenant)
