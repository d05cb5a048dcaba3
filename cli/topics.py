"""`docpipe topics add|list|remove|series`: topics whose news sentiment is followed, as entities are."""

from __future__ import annotations

import json

import typer

from cli.choices import Bucket
from cli.common import JSON, TENANT, console, fail, new_table, out, session
from cli.monitor_common import BY, SINCE, UNTIL, add_and_report, show_series

topics_app = typer.Typer(
    help="Topics: each feed item's topic (the live topic model, else the terms given here) and its sentiment.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(topics_app, name="topics")


@topics_app.command("add")
def topics_add(
    name: str,
    terms: str = typer.Option("", "--terms", help='Comma-separated words or phrases, e.g. "regulator,Basel"'),
    tenant: str = TENANT,
    as_json: bool = JSON,
) -> None:
    """Define a topic by its terms (adding it again replaces them); used while no topic model is live."""
    from pipeline.monitor import topics

    add_and_report(
        lambda db: topic_record(topics.add(db, tenant, name, terms)),
        as_json,
        lambda rec: f"topic {rec['name']} ({', '.join(rec['terms']) or 'no terms'}) for tenant {tenant}",
    )


@topics_app.command("list")
def topics_list(tenant: str = TENANT, as_json: bool = JSON) -> None:
    """The tenant's topics: defined by hand or named by its topic model."""
    from pipeline.monitor import topics

    with session() as db:
        rows = [topic_record(t) for t in topics.topics(db, tenant)]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = new_table("topic", "terms", "alerts", "in episode")
    for r in rows:
        table.add_row(r["name"], ", ".join(r["terms"]), str(r["alerts"]), "yes" if r["open"] else "")
    out.print(table)


@topics_app.command("remove")
def topics_remove(name: str, tenant: str = TENANT) -> None:
    """Forget a topic (its item tags and alerts go with it)."""
    from pipeline.monitor import topics

    with session() as db:
        if not topics.remove(db, tenant, name):
            fail(f"no topic {name} for tenant {tenant}", 1)
    console.print(f"topic {name} removed")


@topics_app.command("series")
def topics_series(
    name: str,
    by: Bucket = BY,
    since: str = SINCE,
    until: str = UNTIL,
    tenant: str = TENANT,
    as_json: bool = JSON,
) -> None:
    """Items, mean sentiment and negative share of a topic per hour or day."""
    from pipeline.monitor import topics

    show_series(
        lambda db: topics.get(db, tenant, name),
        f"no topic {name} for tenant {tenant}",
        "topic",
        lambda topic: topic.name,
        by,
        since,
        until,
        tenant,
        as_json,
    )


def topic_record(t) -> dict:
    return {
        "name": t.name,
        "terms": list(t.terms or []),
        "alerts": t.episodes,
        "open": t.open_alert_id is not None,
        "created_at": t.created_at.isoformat() if t.created_at else None,
    }
