"""`docpipe webhooks ...`: a tenant's endpoints for signed job events, and their delivery log."""

from __future__ import annotations

import json

import typer

from cli.common import JSON, TENANT, console, fail, get_settings, new_table, out, session

webhooks_app = typer.Typer(help="Endpoints that receive signed job events (docs/webhooks.md).", no_args_is_help=True)
EVENTS = typer.Option(
    None, "--event", "-e", help="An event to receive (repeatable): succeeded, partial, failed, cancelled. Default all."
)


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks_app, name="webhooks")


def _db():
    from migrations.runner import upgrade
    from pipeline.services import endpoints

    upgrade(endpoints(get_settings()).sql_url)
    return session()


def _find(db, ref: str, tenant: str | None):
    from pipeline.webhooks import find_endpoint

    return find_endpoint(db, ref, tenant) or fail(
        f"no webhook {ref} (or the prefix is ambiguous); see `docpipe webhooks list`"
    )


@webhooks_app.command("add")
def add(
    url: str,
    events: list[str] = EVENTS,
    description: str = typer.Option(None, "--description", help="A note for whoever reads the list."),
    tenant: str = TENANT,
    as_json: bool = JSON,
) -> None:
    """Register URL; prints its secret (whsec_...) once: the receiver verifies every POST with it."""
    from pipeline.errors import InvalidWebhook
    from pipeline.webhooks import add_endpoint, endpoint_record

    try:
        with _db() as db:
            rec = endpoint_record(add_endpoint(db, tenant, url, events, description), with_secret=True)
    except InvalidWebhook as exc:
        fail(str(exc))
    if as_json:
        out.print_json(json.dumps(rec))
        return
    out.print(f"added webhook {rec['id']} → {rec['url']} ({', '.join(rec['events'])}), tenant {rec['tenant']}")
    out.print(f"secret (shown only now; the receiver verifies webhook-signature with it): {rec['secret']}")


@webhooks_app.command("list")
def list_(tenant: str = typer.Option(None, "--tenant", "-t"), as_json: bool = JSON) -> None:
    """Endpoints with the events they receive."""
    from pipeline.webhooks import endpoint_record, list_endpoints

    with _db() as db:
        recs = [endpoint_record(e) for e in list_endpoints(db, tenant)]
    if as_json:
        out.print_json(json.dumps(recs))
        return
    if not recs:
        out.print("no webhooks (add one with `docpipe webhooks add URL`)")
        return
    table = new_table("id", "tenant", "url", "events", "enabled", "created")
    for r in recs:
        table.add_row(
            r["id"][:8], r["tenant"], r["url"], ", ".join(r["events"]), str(r["enabled"]), r["created_at"][:19]
        )
    out.print(table)


@webhooks_app.command("remove")
def remove(webhook_id: str, tenant: str = typer.Option(None, "--tenant", "-t")) -> None:
    """Remove an endpoint and its delivery log (pending deliveries are not sent)."""
    from pipeline.webhooks.endpoints import remove_endpoint

    with _db() as db:
        endpoint = _find(db, webhook_id, tenant)
        wid, url = endpoint.id, endpoint.url
        remove_endpoint(db, endpoint)
    console.print(f"removed webhook {wid} ({url})")


@webhooks_app.command("deliveries")
def deliveries(
    webhook_id: str,
    limit: int = typer.Option(20, "--limit", min=1, max=500, help="Newest first."),
    tenant: str = typer.Option(None, "--tenant", "-t"),
    as_json: bool = JSON,
) -> None:
    """The delivery log of an endpoint: event, state, attempts, last status and error, next retry."""
    from pipeline.webhooks.deliveries import delivery_record, list_deliveries

    with _db() as db:
        endpoint = _find(db, webhook_id, tenant)
        recs = [delivery_record(d) for d in list_deliveries(db, endpoint.id, limit)]
    if as_json:
        out.print_json(json.dumps(recs))
        return
    if not recs:
        out.print("no deliveries yet: one is made when a job of the endpoint's tenant ends")
        return
    table = new_table("created", "event", "job", "state", "attempts", "status", "error", "next retry")
    for r in recs:
        retry = (r["next_attempt_at"] or "")[:19] if r["state"] == "pending" else ""
        table.add_row(
            r["created_at"][:19],
            r["event"],
            (r["job_id"] or "")[:8],
            r["state"],
            str(r["attempts"]),
            str(r["status_code"] or ""),
            r["last_error"] or "",
            retry,
        )
    out.print(table)
