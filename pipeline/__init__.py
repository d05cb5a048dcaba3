"""docpipe domain: pure pipeline steps and the adapters they need (no Celery in here)."""
