"""The durable spool: chunks survive a crash at any point and are uploaded exactly once, in order."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sleeptrack.sdk import JournalMeta, Spool, SpoolCorruptError

from ._spool_worker import payload


def _meta(sid: str = "20250101000000_abcde", **kw: object) -> JournalMeta:
    now = datetime.now(UTC)
    return JournalMeta(sid, "G-user", "http://x", "fp", "MELSPECTROGRAM", now, now, **kw)  # type: ignore[arg-type]


def test_put_read_ack_and_numbering(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    j = spool.create(_meta())
    assert j.next_seq() == 0 and j.pending() == []
    for seq in range(3):
        j.put(seq, payload(seq))
    assert j.pending() == [0, 1, 2] and j.read(1) == payload(1)
    j.ack(0)
    j.ack(2)  # out of order: 1 still pending
    assert j.pending() == [1] and j.next_seq() == 3
    j.ack(1)
    assert j.pending() == [] and j.next_seq() == 3  # numbering survives an empty spool ...
    again = spool.open(j.session_id)
    assert again is not None and again.next_seq() == 3  # ... and a restart
    with pytest.raises(ValueError):
        j.put(-1, b"")


def test_journal_meta_round_trip_and_filters(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    a = spool.create(_meta("20250101000000_aaaaa", source={"kind": "file", "path": "/n.flac"}))
    spool.create(_meta("20250101000001_bbbbb"))
    a.update(state="closing", end_time=datetime(2025, 1, 1, 8, tzinfo=UTC))
    found = {j.session_id: j for j in spool.journals("http://x", "G-user", "fp")}
    assert set(found) == {"20250101000000_aaaaa", "20250101000001_bbbbb"}
    m = found["20250101000000_aaaaa"].meta
    assert m.state == "closing" and m.end_time == datetime(2025, 1, 1, 8, tzinfo=UTC) and m.source["kind"] == "file"
    assert spool.journals(user_id="G-other") == [] and spool.journals(base_url="http://y") == []
    a.remove()
    assert [j.session_id for j in spool.journals()] == ["20250101000001_bbbbb"]
    (tmp_path / "not-a-journal").mkdir()
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "journal.json").write_text("{")
    assert len(spool.journals()) == 1


def test_torn_and_corrupt_files(tmp_path: Path) -> None:
    j = Spool(tmp_path).create(_meta())
    j.put(0, payload(0))
    j.put(1, payload(1))
    (j.path / "00000002.chunk.tmp").write_bytes(b"half a chunk")  # a write cut short by a crash
    path = j.path / "00000001.chunk"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    reopened = Spool(tmp_path).open(j.session_id)
    assert reopened is not None
    assert reopened.pending() == [0, 1] and not (j.path / "00000002.chunk.tmp").exists()
    assert reopened.read(0) == payload(0)
    with pytest.raises(SpoolCorruptError):
        reopened.read(1)
    path.write_bytes(b"xx")
    with pytest.raises(SpoolCorruptError):
        reopened.read(1)


def test_files_are_private(tmp_path: Path) -> None:
    j = Spool(tmp_path).create(_meta())
    j.put(0, b"x")
    assert (j.path / "00000000.chunk").stat().st_mode & 0o077 == 0
    assert (j.path / "journal.json").stat().st_mode & 0o077 == 0


@pytest.mark.slow
def test_killed_at_random_points_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    """SIGKILL a spooling/uploading process again and again; the "server" ends with 0..N-1, in order."""
    n = 150
    log = tmp_path / "server.log"
    root = tmp_path / "spool"
    rng = random.Random(5)
    kills = 0
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    for run in range(40):
        if (tmp_path / "server.log.done").exists():
            break
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.sdk._spool_worker", str(root), str(log), str(n), str(run)],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        if run < 12:
            time.sleep(rng.uniform(0.0, 0.05))
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=120)
        assert proc.returncode in (0, -signal.SIGKILL), proc.returncode
        kills += proc.returncode == -signal.SIGKILL  # a kill that came after the worker finished is none
    assert (tmp_path / "server.log.done").exists(), "the worker never finished"
    received = [int(line) for line in log.read_text().split()]
    assert sorted(set(received)) == list(range(n))  # nothing lost
    first_seen = list(dict.fromkeys(received))
    assert first_seen == list(range(n))  # uploaded in seq_num order
    duplicates = len(received) - n
    assert duplicates <= kills  # only a chunk whose ack a kill cut short is sent twice (server dedups it)
    assert kills >= 5
