"""The `docpipe` command: one Typer app; each module of cli/ registers the commands of one noun."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import typer  # noqa: E402

from cli import ask, documents, index, jobs, keys, ml, sources, stack, tenants, topics, watch, webhooks  # noqa: E402
from cli.errors import OneLineErrors  # noqa: E402

app = typer.Typer(
    cls=OneLineErrors, help="docpipe: documents in, a deduplicated, searchable corpus out.", no_args_is_help=True
)
for noun in (stack, jobs, documents, ml, index, watch, topics, sources, keys, ask, tenants, webhooks):
    noun.register(app)


def main() -> None:  # pragma: no cover
    sys.exit(app())
