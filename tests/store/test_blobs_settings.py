"""Blob store, settings, plans file and key material."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sleeptrack.store import (
    DEFAULT_PLANS,
    PACK_NAME,
    BlobNotFoundError,
    BlobStore,
    LocalBlobStore,
    PlanError,
    Settings,
    decrypt_secret,
    encrypt_secret,
    is_session_id,
    is_user_id,
    load_plans,
    new_session_id,
    new_user_id,
    webhook_secret,
)


def test_local_blobs_put_get_delete(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "b")
    assert isinstance(blobs, BlobStore)
    blobs.put("1/u/s/00000-a.mel", b"abc")
    blobs.put("1/u/s/00001-b.mel", b"def")
    blobs.put("1/u/t/00000-c.mel", b"ghi")
    assert blobs.get("1/u/s/00000-a.mel") == b"abc" and blobs.exists("1/u/s/00001-b.mel")
    blobs.put("1/u/s/00000-a.mel", b"new")
    assert blobs.get("1/u/s/00000-a.mel") == b"new"
    assert not list((tmp_path / "b").rglob("*.tmp"))
    blobs.delete("1/u/s/00001-b.mel")
    blobs.delete("1/u/s/00001-b.mel")  # absent: no error
    with pytest.raises(BlobNotFoundError):
        blobs.get("1/u/s/00001-b.mel")
    blobs.delete_prefix("1/u/s")
    assert not blobs.exists("1/u/s/00000-a.mel") and blobs.get("1/u/t/00000-c.mel") == b"ghi"
    for bad in ("../x", "/etc/passwd", "a//b", "a/./b", ""):
        with pytest.raises(ValueError, match="invalid blob key"):
            blobs.put(bad, b"x")


def test_local_blobs_added_to_a_session_share_one_pack(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "b")
    chunks = [bytes([i]) * (1000 + 137 * i) for i in range(5)]
    keys = [blobs.add("1/u/s", f"{i:05d}-x.mel", c) for i, c in enumerate(chunks)]
    other = blobs.add("1/u/t", "00000-y.mel", b"other session")
    assert keys[0] == f"1/u/s/{PACK_NAME}@0+1000" and len(set(keys)) == 5
    assert [blobs.get(k) for k in keys] == chunks and blobs.get(other) == b"other session"
    assert all(blobs.exists(k) for k in keys)
    assert sorted(p.name for p in (tmp_path / "b" / "1/u/s").iterdir()) == [PACK_NAME]
    with pytest.raises(BlobNotFoundError):
        blobs.get(f"1/u/s/{PACK_NAME}@{sum(map(len, chunks))}+10")  # beyond the pack's end
    with pytest.raises(ValueError, match="invalid blob key"):
        blobs.get(f"1/u/s/{PACK_NAME}@x+1")
    with pytest.raises(ValueError, match="written by add"):
        blobs.put(keys[0], b"no")


def test_local_blobs_concurrent_adds_never_mix(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "b", fsync=False)

    def add(i: int) -> tuple[str, bytes]:
        data = i.to_bytes(2, "big") * (500 + 31 * i)
        return blobs.add("1/u/s", f"{i:05d}-x.mel", data), data

    with ThreadPoolExecutor(8) as pool:
        added = list(pool.map(add, range(200)))
    assert all(blobs.get(key) == data for key, data in added)
    assert (tmp_path / "b" / "1/u/s" / PACK_NAME).stat().st_size == sum(len(d) for _, d in added)


def test_deleting_a_packed_blob_frees_its_bytes_only(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "b")
    a, b, c = (blobs.add("1/u/s", n, bytes([v]) * 200_000) for n, v in (("a", 1), ("b", 2), ("c", 3)))
    pack = tmp_path / "b" / "1/u/s" / PACK_NAME
    before = pack.stat().st_blocks * 512
    blobs.delete(b)
    assert blobs.get(a) == bytes([1]) * 200_000 and blobs.get(c) == bytes([3]) * 200_000
    assert blobs.get(b) == bytes(200_000)  # its bytes are zeroed...
    assert pack.stat().st_blocks * 512 <= before - 200_000 + 2 * 4096  # ...and their blocks freed
    blobs.delete_prefix("1/u/s")
    assert not pack.exists() and not blobs.exists(a)
    blobs.delete(a)  # its pack is gone: no error


def test_a_pack_deleted_elsewhere_is_recreated(tmp_path: Path) -> None:
    blobs, elsewhere = LocalBlobStore(tmp_path / "b"), LocalBlobStore(tmp_path / "b")
    blobs.add("1/u/s", "a", b"first")
    elsewhere.delete_prefix("1/u")  # e.g. another process deleted the user
    key = blobs.add("1/u/s", "b", b"second")
    assert blobs.get(key) == b"second" and key.endswith("@0+6")


def test_default_plans() -> None:
    basic, advanced = DEFAULT_PLANS["basic"], DEFAULT_PLANS["advanced"]
    assert (basic.stages, basic.snoring, basic.realtime) == (2, False, False)
    assert (advanced.stages, advanced.snoring, advanced.realtime) == (4, True, True)
    assert all(p.rate_limit and p.quota for p in (basic, advanced))


def test_plans_file_overrides_and_adds(tmp_path: Path) -> None:
    path = tmp_path / "plans.toml"
    path.write_text(
        "[plans.basic]\nstages = 2\nrealtime = false\nsnoring = false\nrate_limit = 5\n\n"
        "[plans.lab]\nquota = 3\nvalid_days = 7\n"
    )
    plans = load_plans(path)
    assert plans["basic"].rate_limit == 5 and plans["basic"].quota is None
    assert plans["lab"].stages == 4 and plans["lab"].quota == 3 and plans["lab"].valid_days == 7
    assert plans["advanced"] == DEFAULT_PLANS["advanced"]
    assert load_plans(tmp_path / "absent.toml") == DEFAULT_PLANS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[plans.x]\nstages = 3\n", "stages"),
        ("[plans.x]\nrate_limit = 0\n", "rate_limit"),
        ("[plans.x]\nunknown = 1\n", "unknown"),
        ("plans = 1\n", r"\[plans.<name>\]"),
        ("[plans\n", "cannot read"),
    ],
)
def test_bad_plans_files_are_explained(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "plans.toml"
    path.write_text(text)
    with pytest.raises(PlanError, match=message):
        load_plans(path)


def test_settings_from_environment_and_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLEEPTRACK_DATA_DIR", str(tmp_path / "data"))
    settings = Settings()
    assert settings.data_dir == tmp_path / "data"
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'data' / 'sleeptrack.db'}"
    assert settings.resolved_blob_dir == tmp_path / "data" / "blobs"
    assert Settings(data_dir=tmp_path / "other").data_dir == tmp_path / "other"  # options win
    monkeypatch.delenv("SLEEPTRACK_DATA_DIR")
    assert "sleeptrack" in str(Settings().data_dir)


def test_server_secret_is_created_once_and_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = settings.secret()
    assert len(first) == 64 and Settings(data_dir=tmp_path).secret() == first
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600
    assert Settings(data_dir=tmp_path, secret_key="given").secret() == b"given"


def test_encryption_and_webhook_secrets() -> None:
    blob = encrypt_secret(b"s1", "st_live_abc")
    assert b"st_live_abc" not in blob
    assert decrypt_secret(b"s1", blob) == "st_live_abc"
    assert decrypt_secret(b"s2", blob) is None
    assert decrypt_secret(b"s1", blob[:5]) is None
    assert webhook_secret(b"s1", "h") == webhook_secret(b"s1", "h") != webhook_secret(b"s2", "h")
    assert webhook_secret(b"s1", "h").startswith("whsec_")


def test_ids() -> None:
    uid, sid = new_user_id(), new_session_id()
    assert is_user_id(uid) and is_session_id(sid)
    assert not is_user_id("G-2025-abc") and not is_session_id("20230608020315_hz82")
    assert not is_user_id(None) and not is_session_id("")
