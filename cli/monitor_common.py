"""What `docpipe watch` and `docpipe topics` share: the add and series commands' options and bodies."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

import typer

from cli.choices import Bucket
from cli.common import fail, get_settings, new_table, out, session

if TYPE_CHECKING:  # the models load SQLAlchemy: the CLI imports them where a command uses them
    from pipeline.store.models_monitor import WatchEntity
    from pipeline.store.models_topics import Topic

Subject = TypeVar("Subject", bound="WatchEntity | Topic")  # what a series is of

BY = typer.Option(Bucket.DAY, "--by", help="Bucket size.")
SINCE = typer.Option(None, "--since", help="ISO date or time (UTC)")
UNTIL = typer.Option(None, "--until", help="ISO date or time (UTC), exclusive")


def add_and_report(add: Callable[..., dict], as_json: bool, describe: Callable[[dict], str]) -> None:
    """Upgrade the database, run add(session) (a ValueError is the user's mistake), print its record."""
    from migrations.runner import upgrade
    from pipeline.services import endpoints

    upgrade(endpoints(get_settings()).sql_url)
    try:
        with session() as db:
            rec = add(db)
    except ValueError as exc:
        fail(str(exc))
    if as_json:
        out.print_json(json.dumps(rec))
    else:
        out.print(describe(rec))


def show_series(
    find: Callable[..., Subject | None],
    missing: str,
    kind: str,
    name: Callable[[Subject], str],
    by: Bucket,
    since: str | None,
    until: str | None,
    tenant: str,
    as_json: bool,
) -> None:
    """The series of what find(session) returns (fail with `missing` when nothing): JSON under `kind`, or a table."""
    from pipeline.monitor import series

    bounds = [when(v, flag) for v, flag in ((since, "--since"), (until, "--until"))]
    with session() as db:
        subject = find(db) or fail(missing)
        rows = series(db, subject, by.value, *bounds)
    if as_json:
        out.print_json(json.dumps({kind: name(subject), "tenant": tenant, "by": by.value, "buckets": rows}))
        return
    print_series(rows, by.value, f"{name(subject)} ({tenant})")


def print_series(rows: list[dict], by: str, title: str) -> None:
    table = new_table(by, "items", "mean sentiment", "negative share", title=title)
    for r in rows:
        table.add_row(
            r["start"][: 16 if by == "hour" else 10],
            str(r["items"]),
            f"{r['mean_sentiment']:+.3f}",
            f"{r['negative_share']:.0%}",
        )
    out.print(table)


def when(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{flag} {value!r} is not an ISO date or time")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
