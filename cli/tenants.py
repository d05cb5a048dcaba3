"""`docpipe tenant language`: a tenant's settings that shape how its documents are read."""

from __future__ import annotations

import json

import typer

from cli.common import JSON, TENANT, fail, out, session

tenant_app = typer.Typer(help="A tenant's settings.", no_args_is_help=True)


@tenant_app.command("language")
def tenant_language_cmd(
    code: str = typer.Argument(None, help="ISO 639-1 code (de, fr, es, zh, ...) to fix; omit it to show the setting."),
    tenant: str = TENANT,
    clear: bool = typer.Option(False, "--clear", help="Detect each document's language again (the default)."),
    as_json: bool = JSON,
) -> None:
    """Show, fix or clear the language of a tenant's documents (docs/languages.md).

    Fixed, it replaces detection: for documents ingested from then on, and for stored ones, whose chunks take it at
    the next `docpipe reindex --force`. Cleared, new documents are detected again; stored ones keep theirs."""
    from pipeline.language import UnknownLanguage, set_tenant_language, tenant_language

    if code is not None and clear:
        fail("give a language code or --clear, not both")
    changed = 0
    try:
        with session() as db:
            if code is not None or clear:
                changed = set_tenant_language(db, tenant, code)
            current = tenant_language(db, tenant)
    except UnknownLanguage as exc:
        fail(str(exc))
    if as_json:
        out.print_json(json.dumps({"tenant": tenant, "language": current, "documents_changed": changed}))
        return
    out.print(f"tenant {tenant}: " + (f"language fixed to {current}" if current else "language detected per document"))
    if changed:
        out.print(f"{changed} stored document(s) took it; run `docpipe reindex --force` to index them by it")


def register(app: typer.Typer) -> None:
    app.add_typer(tenant_app, name="tenant")
