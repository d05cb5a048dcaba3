"""`docpipe` commands of the ml feature; pipeline/cli.py calls register(app)."""
from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this feature's commands (and sub-apps) to the docpipe CLI."""
