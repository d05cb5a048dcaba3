"""Every table docpipe has: importing this registers all feature modules on Base.metadata."""

from pipeline.store import models_keys, models_ml, models_monitor, models_sources, models_tenants  # noqa: F401
from pipeline.store.models import Base

metadata = Base.metadata
