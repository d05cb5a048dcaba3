"""SQL store: models, sessions, migrations and repository functions."""
