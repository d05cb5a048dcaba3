"""Celery side of docpipe: the app, its queues, and thin tasks that call pipeline/."""
