"""Throwaway SQL databases for tests: a SQLite file, or a fresh PostgreSQL database per use."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

POSTGRES_ADMIN_URL = os.environ.get("DOCPIPE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def postgres_available() -> bool:
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:  # any driver/network error means "not here"
        return False


def require_postgres() -> None:
    if postgres_available():
        return
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required in CI but {POSTGRES_ADMIN_URL} is not reachable")
    pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL} (CI runs these)")


@contextmanager
def postgres_database() -> Iterator[str]:
    require_postgres()
    name = f"docpipe_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"{POSTGRES_ADMIN_URL.rpartition('/')[0]}/{name}"
    try:
        yield url
    finally:
        from pipeline.store.db import engine_for

        engine_for(url).dispose()  # creating an engine opens nothing, so this is always safe
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def sql_database(kind: str, tmp: Path) -> Iterator[str]:
    if kind == "postgres":
        with postgres_database() as url:
            yield url
    else:
        yield f"sqlite:///{tmp / 'docpipe.db'}"
