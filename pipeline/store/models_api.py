"""Tables of the api feature (see pipeline/store/schema.py for how every table is registered)."""
from __future__ import annotations

from pipeline.store.models import Base  # noqa: F401
