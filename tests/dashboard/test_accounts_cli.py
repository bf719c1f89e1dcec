"""`keys create --account` then `accounts set-password`: an account made on the CLI signs in to the dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from sleeptrack.cli import app as cli
from sleeptrack.store import Settings, open_stores

from .conftest import PASSWORD, make_app, sign_in

runner = CliRunner()


def test_cli_account_gets_a_password_and_sees_its_keys(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    made = runner.invoke(
        cli,
        ["keys", "create", "--environment", "test", "--plan", "trial", "--account", "Ops@Example.com", "--json", *data],
    )
    assert made.exit_code == 0, made.output
    prefix = json.loads(made.stdout)["prefix"]
    listed = runner.invoke(cli, ["accounts", "list", "--json", *data])
    rows = {r["email"]: r for r in json.loads(listed.stdout)}
    assert rows["ops@example.com"]["dashboard_sign_in"] is False and rows["ops@example.com"]["test_keys"] == 1
    again = runner.invoke(
        cli,
        ["keys", "create", "--environment", "test", "--plan", "trial", "--account", " OPS@example.COM", *data],
    )
    assert again.exit_code == 0, again.output
    rows = {r["email"]: r for r in json.loads(runner.invoke(cli, ["accounts", "list", "--json", *data]).stdout)}
    assert list(rows) == ["ops@example.com"] and rows["ops@example.com"]["test_keys"] == 2

    missing = runner.invoke(
        cli, ["accounts", "set-password", "nobody@example.com", "--password-stdin", *data], input=PASSWORD + "\n"
    )
    assert missing.exit_code == 1 and "--create" in missing.output
    short = runner.invoke(
        cli, ["accounts", "set-password", "ops@example.com", "--password-stdin", *data], input="short\n"
    )
    assert short.exit_code == 1 and "at least 10" in short.output
    ok = runner.invoke(
        cli, ["accounts", "set-password", "ops@example.com", "--password-stdin", *data], input=PASSWORD + "\n"
    )
    assert ok.exit_code == 0, ok.output
    created = runner.invoke(
        cli,
        ["accounts", "set-password", "new@example.com", "--create", "--password-stdin", *data],
        input=PASSWORD + "\n",
    )
    assert created.exit_code == 0, created.output

    stores = open_stores(Settings(data_dir=tmp_path))
    try:
        with TestClient(make_app(stores), follow_redirects=False) as client:
            assert sign_in(client, "ops@example.com") == 303
            page = client.get("/dashboard/keys").text
            assert prefix in page and "trial" in page and re.search(r"expires|20\d\d-", page)
            client.cookies.clear()
            assert sign_in(client, "new@example.com") == 303
            assert prefix not in client.get("/dashboard/keys").text
    finally:
        stores.close()
