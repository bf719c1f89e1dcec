"""Blob store, settings, plans file and key material."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sleeptrack.store import (
    DEFAULT_PLANS,
    PACK_NAME,
    SEGMENTS,
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


def _segments(blobs: LocalBlobStore) -> list[str]:
    return sorted(p.name for p in (blobs.root / SEGMENTS).iterdir())


def test_local_blobs_added_together_share_one_segment(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "b")
    chunks = [bytes([i + 1]) * (1000 + 137 * i) for i in range(5)]
    keys = blobs.add_many([(f"1/u/{'st'[i % 2]}", f"{i:05d}-x.mel", c) for i, c in enumerate(chunks)])
    one = blobs.add("1/u/t", "00000-y.mel", b"other session")
    (segment,) = [name for name in _segments(blobs) if name.endswith(".seg")]
    # Each blob starts on a 4 KiB block (so that deleting it frees its own blocks).
    assert keys[0] == f"{SEGMENTS}/{segment}@0+1000" and keys[1] == f"{SEGMENTS}/{segment}@4096+1137"
    assert one == f"{SEGMENTS}/{segment}@{5 * 4096}+13"
    assert [blobs.get(k) for k in keys] == chunks and blobs.get(one) == b"other session"
    assert all(blobs.exists(k) for k in keys)
    assert not (tmp_path / "b" / "1").exists()  # nothing per session
    with pytest.raises(BlobNotFoundError):
        blobs.get(f"{SEGMENTS}/{segment}@{6 * 4096}+10")  # beyond the segment's end
    with pytest.raises(ValueError, match="invalid blob key"):
        blobs.get(f"{SEGMENTS}/{segment}@x+1")
    with pytest.raises(ValueError, match="written by add"):
        blobs.put(keys[0], b"no")
    with pytest.raises(ValueError, match="invalid blob key"):
        blobs.add_many([("1/u/s", "ok", b"a"), ("../x", "bad", b"b")])
    with pytest.raises(ValueError, match="not by prefix"):
        blobs.delete_prefix(SEGMENTS)
    assert blobs.add_many([]) == []


def test_local_blobs_concurrent_adds_never_mix(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "b", fsync=False)

    def add(i: int) -> list[tuple[str, bytes]]:
        group = [(i * 3 + j).to_bytes(2, "big") * (500 + 31 * i + j) for j in range(3)]
        keys = blobs.add_many([("1/u/s", f"{i:05d}-{j}.mel", d) for j, d in enumerate(group)])
        return list(zip(keys, group, strict=True))

    with ThreadPoolExecutor(8) as pool:
        added = [pair for group in pool.map(add, range(200)) for pair in group]
    assert all(blobs.get(key) == data for key, data in added)
    size = sum(p.stat().st_size for p in (tmp_path / "b" / SEGMENTS).glob("*.seg"))
    assert size == sum(len(d) + -len(d) % 4096 for _, d in added)


def test_a_group_that_cannot_be_written_whole_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = LocalBlobStore(tmp_path / "b")
    kept = blobs.add("1/u/s", "a", b"kept")
    writev = os.writev
    calls = []

    def short_write(fd: int, buffers: list[bytes]) -> int:  # the disk fills up on the group's second blob
        calls.append(buffers)
        return writev(fd, buffers if len(calls) < 2 else [buffers[0][:3]])

    monkeypatch.setattr(os, "writev", short_write)
    with pytest.raises(OSError) as caught:
        blobs.add_many([("1/u/s", "b", b"first"), ("1/u/s", "c", b"second")])
    monkeypatch.undo()
    assert caught.value.errno == errno.ENOSPC
    (segment,) = (tmp_path / "b" / SEGMENTS).glob("*.seg")
    assert segment.stat().st_size == 4096 and blobs.get(kept) == b"kept"
    assert blobs.add("1/u/s", "d", b"after").endswith("@4096+5")  # appending goes on where the group began


def test_deleting_a_blob_frees_its_bytes_only(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "b")
    a, b, c = blobs.add_many([("1/u/s", n, bytes([v]) * 200_000) for n, v in (("a", 1), ("b", 2), ("c", 3))])
    (segment,) = (tmp_path / "b" / SEGMENTS).glob("*.seg")
    before = segment.stat().st_blocks * 512
    blobs.delete(b)
    assert blobs.get(a) == bytes([1]) * 200_000 and blobs.get(c) == bytes([3]) * 200_000
    assert blobs.get(b) == bytes(200_000) and not blobs.exists(b)  # its bytes are zeroed...
    assert segment.stat().st_blocks * 512 <= before - 200_000 + 2 * 4096  # ...and their blocks freed
    blobs.delete_many([a, c, a])
    assert segment.exists()  # still the one the store appends to
    assert not blobs.exists(a) and not blobs.exists(c)


def test_segments_rotate_and_an_emptied_sealed_one_goes(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "b", segment_bytes=100_000)
    first = blobs.add_many([("1/u/s", f"{i}", bytes([7]) * 60_000) for i in range(2)])  # 2 x 61 440: past 100 000
    second = blobs.add("1/u/s", "2", bytes([8]) * 60_000)  # so this starts a new segment
    assert first[0].partition("@")[0] == first[1].partition("@")[0] != second.partition("@")[0]
    assert len(_segments(blobs)) == 3  # two segments, the first sealed
    blobs.delete_many(first)
    assert _segments(blobs) == [second.partition("@")[0].rpartition("/")[2]]
    blobs.delete(second)  # the segment being appended to stays, empty
    assert blobs.add("1/u/s", "3", b"more").endswith("@61440+4")
    blobs.close()
    assert len(_segments(blobs)) == 2  # closed: sealed


_DEAD_WRITER = """
import os, sys
from sleeptrack.store import LocalBlobStore
blobs = LocalBlobStore(sys.argv[1])
print(" ".join(blobs.add_many([("1/u/s", "a", b"recorded" * 100), ("1/u/s", "b", b"also" * 100)])))
blobs.add_many([("1/u/s", "c", b"never recorded" * 100)])
sys.stdout.flush()
os._exit(1)  # killed before its group was recorded, its segment never sealed
"""


def test_a_dead_writers_segment_is_cut_back_to_its_recorded_blobs_and_sealed(tmp_path: Path) -> None:
    root = tmp_path / "b"
    alive = LocalBlobStore(root)
    mine = alive.add("1/u/s", "x", b"a live store's segment is never touched")
    out = subprocess.run([sys.executable, "-c", _DEAD_WRITER, str(root)], capture_output=True, text=True)
    recorded = out.stdout.split()
    assert len(recorded) == 2, out.stderr
    other = LocalBlobStore(root)
    (segment,) = other.unsealed_segments()
    assert recorded[0].startswith(segment + "@")
    other.seal_segment(segment, [*recorded, mine])
    assert (root / segment).stat().st_size == 4096 + 400  # the second recorded blob's end
    assert [other.get(k) for k in recorded] == [b"recorded" * 100, b"also" * 100]
    assert other.unsealed_segments() == [] and alive.get(mine).startswith(b"a live")
    other.delete_many(recorded)
    assert not (root / segment).exists()  # sealed and emptied: gone


def test_blobs_packed_per_session_before_segments_stay_readable(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path / "b")
    pack = tmp_path / "b" / "1/u/s" / PACK_NAME
    pack.parent.mkdir(parents=True)
    pack.write_bytes(b"firstsecond")
    first, second = f"1/u/s/{PACK_NAME}@0+5", f"1/u/s/{PACK_NAME}@5+6"
    assert blobs.get(first) == b"first" and blobs.get(second) == b"second" and blobs.exists(second)
    blobs.delete(first)
    assert not blobs.exists(first) and blobs.get(second) == b"second"
    blobs.delete_prefix("1/u")
    assert not pack.exists() and not blobs.exists(second)
    blobs.delete(second)  # its pack is gone: no error


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
