"""REST API and dashboard. Importing this package loads no web framework: `pipeline.api.app` does."""
