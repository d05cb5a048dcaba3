"""Every table docpipe has: importing this registers all feature modules on Base.metadata."""

from pipeline.store import (
    models_entities,  # noqa: F401
    models_keys,  # noqa: F401
    models_ml,  # noqa: F401
    models_monitor,  # noqa: F401
    models_schedules,  # noqa: F401
    models_sources,  # noqa: F401
    models_tenants,  # noqa: F401
    models_topics,  # noqa: F401
    models_webhooks,  # noqa: F401
)
from pipeline.store.models import Base

metadata = Base.metadata
