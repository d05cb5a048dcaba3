"""The dedup-store contract on the in-memory store and on the SQL store over SQLite."""

import pytest

from migrations.runner import upgrade
from pipeline.dedup import MemoryDedupStore
from tests.contract.dedup_store import DedupStoreContract, SqlDedupStoreContract


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('dedup') / 'docpipe.db'}"
    upgrade(url)
    return url


class TestMemoryDedupStore(DedupStoreContract):
    @pytest.fixture
    def store(self):
        return MemoryDedupStore()


class TestSqlDedupStoreOnSqlite(SqlDedupStoreContract):
    @pytest.fixture
    def dedup_sql_url(self, sqlite_url):
        return sqlite_url
