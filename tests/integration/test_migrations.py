"""Alembic: upgrade → downgrade → upgrade on SQLite and PostgreSQL, and models == migrations."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from migrations import runner as migrate
from pipeline.store.schema import metadata
from tests.sqlurls import sql_database

pytestmark = pytest.mark.integration

TABLES = set(metadata.tables)


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _diff(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(ctx, metadata)
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_upgrade_downgrade_upgrade_and_models_match(kind, tmp_path):
    with sql_database(kind, tmp_path) as url:
        migrate.upgrade(url)
        assert _tables(url) == TABLES
        assert _diff(url) == []
        migrate.downgrade(url, "base")
        assert _tables(url) == set()
        migrate.upgrade(url)
        assert _tables(url) == TABLES
        assert _diff(url) == []
