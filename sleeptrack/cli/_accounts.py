"""``sleeptrack accounts list | set-password``: the dashboard's accounts, from the server's command line.

Accounts are usually made by signing up on ``/dashboard``; ``sleeptrack keys create --account EMAIL`` also
makes one (without a password). ``set-password`` lets such an account sign in, or resets a forgotten password
(it signs the account out everywhere).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from ._app import app, console, fail
from ._server_opts import DatabaseUrlOption, DataDirOption, server_settings

accounts_app = typer.Typer(
    name="accounts",
    help="Dashboard accounts: list them, set a password (e.g. for an account made by `keys create --account`).",
    no_args_is_help=True,
)
app.add_typer(accounts_app)


def _open(data_dir: Any, database_url: str | None) -> Any:
    settings = server_settings(data_dir, database_url)
    from sleeptrack.store import DatabaseError, PlanError, open_stores

    try:
        return open_stores(settings)
    except (DatabaseError, PlanError) as exc:
        fail(str(exc))


@accounts_app.command("list")
def list_command(
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The accounts, whether they can sign in to the dashboard, and their active keys per environment."""
    stores = _open(data_dir, database_url)
    from sqlalchemy import func, select

    from sleeptrack.store import Account, ApiKey, Environment

    try:
        with stores.db.read() as db:
            accounts = list(db.scalars(select(Account).order_by(Account.id)))
            counts: dict[tuple[int, str], int] = {}
            for account_id, env, n in db.execute(
                select(ApiKey.account_id, Environment.name, func.count())
                .join(Environment, ApiKey.environment_id == Environment.id)
                .where(ApiKey.revoked_at.is_(None))
                .group_by(ApiKey.account_id, Environment.name)
            ):
                counts[(account_id, env)] = n
            rows = [
                {
                    "email": a.email,
                    "created_at": a.created_at.isoformat(timespec="seconds"),
                    "dashboard_sign_in": bool(a.password_hash),
                    "live_keys": counts.get((a.id, "live"), 0),
                    "test_keys": counts.get((a.id, "test"), 0),
                }
                for a in accounts
            ]
    finally:
        stores.close()
    if as_json:
        print(json.dumps(rows))
        return
    table = Table("e-mail", "created (UTC)", "can sign in", "live keys", "test keys")
    for r in rows:
        table.add_row(
            r["email"],
            r["created_at"],
            "yes" if r["dashboard_sign_in"] else "no",
            str(r["live_keys"]),
            str(r["test_keys"]),
        )
    console.print(table)


@accounts_app.command("set-password")
def set_password_command(
    email: Annotated[str, typer.Argument(help="The account's e-mail.")],
    create: Annotated[bool, typer.Option("--create", help="Create the account if it does not exist.")] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")
    ] = False,
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Set the dashboard password of an account (asked twice, hidden; at least 10 characters)."""
    from sleeptrack.dashboard._security import Passwords, normalize_email, validate_email, validate_password

    email = normalize_email(email)
    if message := validate_email(email):
        fail(message)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    if message := validate_password(password, email):
        fail(message)
    hashed = Passwords().hash(password)
    stores = _open(data_dir, database_url)
    from sleeptrack.store import account_by_email, ensure_account

    try:
        with stores.db.write() as db:
            account = account_by_email(db, email)
            if account is None:
                if not create:
                    fail(f"no account {email!r}; add --create to make it")
                plan = "advanced" if "advanced" in stores.plans else next(iter(stores.plans))
                account = ensure_account(db, email, plan)
            account.password_hash = hashed
    finally:
        stores.close()
    console.print(f"password set for {email}: sign in at /dashboard (other dashboard sessions are signed out)")
