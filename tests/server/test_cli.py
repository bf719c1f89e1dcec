"""``sleeptrack keys`` and the options of ``sleeptrack serve``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sleeptrack.cli import app
from sleeptrack.store import Settings, hash_api_key, open_stores, webhook_secret

runner = CliRunner()


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    r = runner.invoke(app, ["keys", "create", "--environment", "live", "--plan", "basic", "--data-dir", str(tmp_path),
                            "--account", "ops@example.com", "--name", "phone app", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    created = json.loads(r.stdout)
    assert created["key"].startswith("st_live_") and created["plan"] == "basic" and created["environment"] == "live"
    secret = Settings(data_dir=tmp_path).secret()
    assert created["webhook_secret"] == webhook_secret(secret, hash_api_key(created["key"]))
    r = runner.invoke(app, ["keys", "create", "--environment", "test", "--plan", "advanced"],
                      env={"SLEEPTRACK_DATA_DIR": str(tmp_path)})  # fmt: skip
    assert r.exit_code == 0 and "st_test_" in r.stdout and "copy it now" in r.stdout
    r = runner.invoke(app, ["keys", "list", "--data-dir", str(tmp_path), "--json"])
    listed = json.loads(r.stdout)
    assert [k["environment"] for k in listed] == ["live", "test"]
    assert listed[0]["prefix"] == created["key"][:12] and listed[0]["name"] == "phone app"
    assert created["key"] not in r.stdout  # listings never show keys
    r = runner.invoke(app, ["keys", "revoke", created["key"][:12], "--data-dir", str(tmp_path)])
    assert r.exit_code == 0 and "revoked" in r.stdout
    r = runner.invoke(app, ["keys", "list", "--data-dir", str(tmp_path), "--account", "ops@example.com", "--json"])
    assert json.loads(r.stdout)[0]["revoked_at"] is not None
    r = runner.invoke(app, ["keys", "list", "--data-dir", str(tmp_path)])
    assert r.exit_code == 0 and "revoked" in r.stdout
    stores = open_stores(Settings(data_dir=tmp_path))
    with stores.db.read() as db:
        from sleeptrack.store import ApiKey

        hashes = {k.key_hash for k in db.query(ApiKey)}
    stores.close()
    assert hash_api_key(created["key"]) in hashes and created["key"] not in hashes


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "create", "--environment", "test", "--plan", "gold"], "unknown plan 'gold'"),
        (["keys", "revoke", "st_test_nope"], "no key matches"),
    ],
)
def test_keys_errors(tmp_path: Path, args: list[str], message: str) -> None:
    r = runner.invoke(app, [*args, "--data-dir", str(tmp_path)])
    assert r.exit_code == 1 and message in r.stderr


def test_serve_refuses_a_bad_plans_file(tmp_path: Path) -> None:
    (tmp_path / "plans.toml").write_text("[plans.x]\nstages = 3\n")
    r = runner.invoke(app, ["serve", "--data-dir", str(tmp_path), "--port", "1"])
    assert r.exit_code == 1 and "plans file" in r.stderr and "stages" in r.stderr
