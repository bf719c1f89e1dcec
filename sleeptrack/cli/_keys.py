"""``sleeptrack keys create | list | revoke``: API keys of the server's accounts."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from ._app import app, console, fail
from ._server_opts import DatabaseUrlOption, DataDirOption, server_settings

keys_app = typer.Typer(
    name="keys",
    help="Create, list and revoke the server's API keys (stored hashed: a key is shown once).",
    no_args_is_help=True,
)
app.add_typer(keys_app)


class EnvironmentName(StrEnum):
    test = "test"
    live = "live"


def _open(data_dir: Any, database_url: str | None) -> Any:
    settings = server_settings(data_dir, database_url)
    from sleeptrack.store import DatabaseError, PlanError, open_stores

    try:
        return open_stores(settings)
    except (DatabaseError, PlanError) as exc:
        fail(str(exc))


def _when(value: Any) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


@keys_app.command("create")
def create_command(
    environment: Annotated[
        EnvironmentName, typer.Option(help="test or live: data tracked with a key is visible only in its environment.")
    ],
    plan: Annotated[str, typer.Option(help="Plan name from the plans file (defaults: basic, advanced, trial).")],
    account: Annotated[
        str | None, typer.Option(help="Account e-mail (default: the local account).", show_default=False)
    ] = None,
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create an API key and print it (once) with its webhook signing secret."""
    stores = _open(data_dir, database_url)
    from sleeptrack.store import DEFAULT_ACCOUNT_EMAIL, create_api_key, hash_api_key, webhook_secret

    try:
        chosen = stores.plans.get(plan)
        if chosen is None:
            fail(f"unknown plan {plan!r}; plans: {', '.join(sorted(stores.plans))}")
        with stores.db.write() as db:
            new = create_api_key(
                db,
                environment=environment.value,
                plan=chosen,
                account_email=account or DEFAULT_ACCOUNT_EMAIL,
                name=name,
            )
        secret = webhook_secret(stores.secret, hash_api_key(new.key))
    finally:
        stores.close()
    info = {
        "key": new.key,
        "id": new.id,
        "prefix": new.prefix,
        "environment": new.environment,
        "plan": new.plan,
        "account": new.account_email,
        "expires_at": _when(new.expires_at),
        "webhook_secret": secret,
    }
    if as_json:
        print(json.dumps(info))
        return
    console.print(f"[bold green]{new.key}[/]", highlight=False, soft_wrap=True)
    console.print(
        f"id {new.id} · {new.environment} · plan {new.plan} · account {new.account_email}"
        + (f" · expires {info['expires_at']}" if new.expires_at else ""),
        highlight=False,
    )
    console.print(f"webhook signing secret: {secret}", highlight=False, soft_wrap=True)
    console.print("[dim]The key is stored hashed: copy it now, it cannot be shown again.[/]")


@keys_app.command("list")
def list_command(
    account: Annotated[str | None, typer.Option(help="Only this account's keys.", show_default=False)] = None,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the keys (their public prefixes, never the keys)."""
    stores = _open(data_dir, database_url)
    from sleeptrack.store import list_keys

    try:
        with stores.db.read() as db:
            keys = list_keys(db, account)
    finally:
        stores.close()
    rows = [
        {
            "id": k.id,
            "prefix": k.prefix,
            "name": k.name,
            "account": k.account_email,
            "environment": k.environment,
            "plan": k.plan,
            "created_at": _when(k.created_at),
            "expires_at": _when(k.expires_at),
            "revoked_at": _when(k.revoked_at),
            "last_used_at": _when(k.last_used_at),
            "calls": k.calls_total,
        }
        for k in keys
    ]
    if as_json:
        print(json.dumps(rows))
        return
    if not rows:
        console.print("no keys yet: sleeptrack keys create --environment test --plan advanced")
        return
    table = Table(box=None)
    for column in ("id", "prefix", "name", "account", "environment", "plan", "created", "status", "calls"):
        table.add_column(column)
    for r in rows:
        status = "revoked" if r["revoked_at"] else (f"expires {r['expires_at']}" if r["expires_at"] else "active")
        table.add_row(
            str(r["id"]),
            str(r["prefix"]) + "…",
            str(r["name"]),
            str(r["account"]),
            str(r["environment"]),
            str(r["plan"]),
            str(r["created_at"]),
            status,
            str(r["calls"]),
        )
    console.print(table)


@keys_app.command("revoke")
def revoke_command(
    key: Annotated[str, typer.Argument(help="The key's id, its prefix (as listed) or the whole key.")],
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Revoke a key: its calls answer 401 from then on (within a few seconds on a running server)."""
    stores = _open(data_dir, database_url)
    from sleeptrack.store import find_keys, revoke_keys

    try:
        with stores.db.write() as db:
            found = find_keys(db, key.rstrip("…"))
            if not found:
                fail(f"no key matches {key!r}: see sleeptrack keys list")
            if len(found) > 1:
                fail(f"{key!r} matches {len(found)} keys; give the id instead")
            revoke_keys(db, found)
            prefix = found[0].prefix
    finally:
        stores.close()
    console.print(f"revoked {prefix}…")
