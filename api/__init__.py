"""REST API and dashboard. Importing this package loads no web framework: `api.app` does."""
