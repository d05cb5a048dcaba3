"""Fixtures the unit tests share."""

from __future__ import annotations

import pytest


@pytest.fixture
def url(tmp_path) -> str:
    """A SQLite database of the test's own, migrated to the schema's head."""
    from migrations.runner import upgrade

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    return url
