"""Alembic environment: the URL comes from docpipe's settings unless the caller set one."""

from alembic import context

from pipeline.config import get_settings
from pipeline.store.db import make_engine
from pipeline.store.schema import metadata

config = context.config
url = config.get_main_option("sqlalchemy.url") or get_settings().sql_url


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                render_as_batch=url.startswith("sqlite"),
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()  # no pooled connection outlives the migration


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
