"""`docpipe watch add|list|remove|series` and `docpipe alerts` (of entities and topics): news sentiment monitoring."""

from __future__ import annotations

import json

import typer

from cli.choices import Bucket
from cli.common import JSON, TENANT, console, fail, new_table, out, session
from cli.monitor_common import BY, SINCE, UNTIL, add_and_report, show_series

watch_app = typer.Typer(help="The watchlist of entities whose news sentiment is followed.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("alerts")(alerts)
    app.add_typer(watch_app, name="watch")


@watch_app.command("add")
def watch_add(
    ticker: str,
    names: str = typer.Option("", "--names", help='Comma-separated, e.g. "Apple,Apple Inc"'),
    tenant: str = TENANT,
    as_json: bool = JSON,
) -> None:
    """Watch an entity (adding it again replaces its names)."""
    from pipeline.monitor import watchlist

    add_and_report(
        lambda db: _entity(watchlist.add(db, tenant, ticker, names)),
        as_json,
        lambda rec: f"watching {rec['ticker']} ({', '.join(rec['names']) or 'no names'}) for tenant {tenant}",
    )


@watch_app.command("list")
def watch_list(tenant: str = typer.Option(None, "--tenant", "-t"), as_json: bool = JSON) -> None:
    """Watched entities."""
    from pipeline.monitor import watchlist

    with session() as db:
        rows = [_entity(e) for e in watchlist.entities(db, tenant)]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = new_table("tenant", "ticker", "names", "alerts", "in episode")
    for r in rows:
        table.add_row(r["tenant"], r["ticker"], ", ".join(r["names"]), str(r["episodes"]), "yes" if r["open"] else "")
    out.print(table)


@watch_app.command("suggest")
def watch_suggest(
    tenant: str = TENANT,
    limit: int = typer.Option(20, "--limit", min=1, max=200),
    min_documents: int = typer.Option(2, "--min-documents", min=1, help="Found in at least this many documents."),
    as_json: bool = JSON,
) -> None:
    """Organisations the NER model found often (docpipe extract) that no watched entity matches."""
    from pipeline.monitor.org_match import suggestions

    with session() as db:
        rows = suggestions(db, tenant, limit, min_documents)
    if as_json:
        out.print_json(json.dumps(rows))
        return
    if not rows:
        out.print(f"no suggestions for tenant {tenant} (run `docpipe extract` with a live NER model first)")
        return
    table = new_table("organisation", "documents", "mentions", title=f"unwatched organisations ({tenant})")
    for r in rows:
        table.add_row(r["name"], str(r["documents"]), str(r["mentions"]))
    out.print(table)


@watch_app.command("remove")
def watch_remove(ticker: str, tenant: str = TENANT) -> None:
    """Stop watching an entity (its mentions and alerts are removed with it)."""
    from pipeline.monitor import watchlist

    with session() as db:
        if not watchlist.remove(db, tenant, ticker):
            fail(f"{ticker} is not watched for tenant {tenant}", 1)
    console.print(f"no longer watching {ticker.upper()}")


@watch_app.command("series")
def watch_series(
    ticker: str,
    by: Bucket = BY,
    since: str = SINCE,
    until: str = UNTIL,
    tenant: str = TENANT,
    as_json: bool = JSON,
) -> None:
    """Items, mean sentiment and negative share of an entity per hour or day."""
    from pipeline.monitor import watchlist

    show_series(
        lambda db: watchlist.get(db, tenant, ticker),
        f"{ticker} is not watched for tenant {tenant}",
        "entity",
        lambda entity: entity.ticker,
        by,
        since,
        until,
        tenant,
        as_json,
    )


def alerts(
    entity: str = typer.Option(None, "--entity", "-e", help="Only this ticker."),
    topic: str = typer.Option(None, "--topic", help="Only this topic."),
    tenant: str = typer.Option(None, "--tenant", "-t"),
    limit: int = 100,
    as_json: bool = JSON,
) -> None:
    """Spike alerts, newest first."""
    from pipeline.monitor import alert_record, list_alerts

    with session() as db:
        rows = [alert_record(a) for a in list_alerts(db, tenant, entity, limit, topic)]
    if as_json:
        out.print_json(json.dumps(rows))
        return
    if not rows:
        out.print("no alerts")
        return
    table = new_table("id", "tenant", "entity", "window", "items", "negative", "baseline", "σ", "ended")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["tenant"],
            r["entity"] or f"topic {r['topic']}",
            f"{r['window_start'][:16]} → {r['window_end'][11:16]}",
            str(r["items"]),
            f"{r['negative_share']:.0%}",
            f"{r['baseline_mean']:.0%} ± {r['baseline_std']:.0%}",
            f"{r['deviations']:.1f}",
            (r["ended_at"] or "open")[:16],
        )
    out.print(table)


def _entity(e) -> dict:
    return {
        "id": e.id,
        "tenant": e.tenant,
        "ticker": e.ticker,
        "names": list(e.names or []),
        "episodes": e.episodes,
        "open": e.open_alert_id is not None,
    }
