"""`docpipe up|down|status`, `docpipe db upgrade` and `docpipe api`: the local stack and the servers."""

from __future__ import annotations

import json

import typer

from cli.common import JSON, console, get_settings, out, print_stack

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)


def up() -> None:
    """Start the local stack: noida-db (unless URLs are configured), migrations, Celery workers."""
    from cli.localstack.launcher import up as stack_up

    stack = stack_up(get_settings(), echo=console.print)
    print_stack(stack)
    console.print("docpipe is up.")


def down() -> None:
    """Stop exactly what `docpipe up` started."""
    from cli.localstack.launcher import down as stack_down

    stopped = stack_down(get_settings())
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running.")


def status(as_json: bool = JSON) -> None:
    """What runs, with its pid and address."""
    from cli.localstack.launcher import status as stack_status

    rows = stack_status(get_settings())
    if as_json:
        out.print_json(json.dumps([r.__dict__ for r in rows]))
        return
    if not rows:
        out.print("docpipe is not running (start it with `docpipe up`).")
        return
    for r in rows:
        out.print(f"{r.name:<14} {'running' if r.alive else 'DEAD':<8} pid {r.pid:<8} {r.detail}")


def db_upgrade() -> None:
    """Run `alembic upgrade head` on the configured database."""
    from migrations.runner import upgrade
    from pipeline.services import endpoints

    url = endpoints(get_settings()).sql_url
    upgrade(url)
    console.print(f"database at head: {url.split('@')[-1]}")


def api(
    host: str = typer.Option(None, "--host", help="Default DOCPIPE_API_HOST."),
    port: int = typer.Option(None, "--port", help="Default DOCPIPE_API_PORT, else 8000."),
    workers: int = typer.Option(1, "--workers", help="uvicorn worker processes."),
) -> None:
    """Serve the REST API and the dashboard in the foreground (what `docpipe up` runs in the background)."""
    import uvicorn

    s = get_settings()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host or s.api.host,
        port=port or s.api.port or 8000,
        workers=workers,
        proxy_headers=True,
    )


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(down)
    app.command()(status)
    app.command("api")(api)
    db_app.command("upgrade")(db_upgrade)
    app.add_typer(db_app, name="db")
