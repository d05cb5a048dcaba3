"""Celery tasks of the monitor feature: thin wrappers around pipeline/ (see workers/tasks.py for the pattern)."""
from __future__ import annotations
