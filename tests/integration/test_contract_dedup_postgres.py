"""The dedup-store contract on the SQL store over PostgreSQL (DOCPIPE_TEST_POSTGRES_URL; CI always runs it)."""

import os

import pytest

from migrations.runner import upgrade
from tests.contract.dedup_store import SqlDedupStoreContract
from tests.sqlurls import postgres_database

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture(scope="module")
def postgres_url():
    if not os.environ.get("DOCPIPE_TEST_POSTGRES_URL") and not os.environ.get("CI"):
        pytest.skip("set DOCPIPE_TEST_POSTGRES_URL to run the dedup-store contract on PostgreSQL")
    with postgres_database() as url:  # in CI an unreachable server fails instead of skipping
        upgrade(url)
        yield url


class TestSqlDedupStoreOnPostgres(SqlDedupStoreContract):
    @pytest.fixture
    def dedup_sql_url(self, postgres_url):
        return postgres_url
