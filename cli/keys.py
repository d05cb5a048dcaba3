"""`docpipe keys create|list|revoke`: API keys, one tenant each."""

from __future__ import annotations

import json

import typer

from cli.common import JSON, console, fail, get_settings, new_table, out, session

keys_app = typer.Typer(help="API keys: one tenant each, stored hashed.", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    tenant: str = typer.Option(..., "--tenant", "-t", help="Tenant the key acts for."),
    name: str = typer.Option(None, "--name", help="A note to recognise the key by."),
    as_json: bool = JSON,
) -> None:
    """Create a key and print it (it is shown this once; only its hash is stored)."""
    from migrations.runner import upgrade
    from pipeline.errors import PermanentError
    from pipeline.services import endpoints
    from pipeline.store import apikeys as keys

    upgrade(endpoints(get_settings()).sql_url)
    try:
        with session() as db:
            row, key = keys.create_key(db, tenant, name)
            rec = {"id": row.id, "tenant": row.tenant, "name": row.name, "key": key}
    except PermanentError as exc:
        fail(str(exc))
    if as_json:
        out.print_json(json.dumps(rec))
        return
    out.print(key, markup=False, highlight=False)
    console.print(f"key {rec['id']} for tenant {tenant}: store it now, it cannot be shown again.")


@keys_app.command("list")
def keys_list(tenant: str = typer.Option(None, "--tenant", "-t"), as_json: bool = JSON) -> None:
    """Keys with their tenant and state (never the keys themselves)."""
    from pipeline.store import apikeys as keys

    with session() as db:
        recs = [
            {
                "id": k.id,
                "tenant": k.tenant,
                "name": k.name,
                "created_at": k.created_at.isoformat(),
                "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
            }
            for k in keys.list_keys(db, tenant)
        ]
    if as_json:
        out.print_json(json.dumps(recs))
        return
    table = new_table("id", "tenant", "name", "created", "state")
    for r in recs:
        table.add_row(
            r["id"],
            r["tenant"],
            r["name"] or "",
            r["created_at"][:19],
            f"revoked {r['revoked_at'][:19]}" if r["revoked_at"] else "active",
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The id `keys list` shows (or the whole key).")) -> None:
    """Revoke a key: requests made with it get 401 from now on."""
    from pipeline.store import apikeys as keys

    key_id = key_id.split("_")[1] if key_id.startswith(f"{keys.PREFIX}_") and key_id.count("_") >= 2 else key_id
    with session() as db:
        row = keys.revoke_key(db, key_id) or fail(f"no key {key_id} (see `docpipe keys list`)")
        tenant = row.tenant
    console.print(f"revoked key {key_id} of tenant {tenant}")


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
